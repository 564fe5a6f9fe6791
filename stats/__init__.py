"""The statistics layer: processors' histograms -> pyhf workspaces -> CLs upper limits.

Modules, one job each:

* ``model_config`` -- schema of a search's stats-model YAML (``Search.stats_file`` in the registry);
* ``histograms`` -- read a run output (``histograms.coffea``: ``{dataset: {name: Hist}}``, +
  ``metadata.json``), cut yields;
* ``workspace`` -- histograms + stats model -> pyhf workspace spec;
* ``counting`` -- counting models from numbers, and one-bin workspaces back to numbers;
* ``limits`` -- pyhf CLs limits (asymptotic / toys) with the pyhf 0.7.6 pitfalls handled;
* ``fast_scan`` -- vectorised closed-form asymptotic and exact-Poisson CLs for one-bin models;
* ``scan`` -- many hypotheses: fast path in chunks, pyhf otherwise, on processes or dask;
* ``scan_table`` -- the table of a many-hypothesis scan (Parquet / CSV) and its largest excess;
* ``look_elsewhere`` -- global significance of the largest local excess (Gross-Vitells, Rice or toys);
* ``peak_scan`` -- vectorised peak + smooth-background fits and CLs limits at every mass hypothesis;
* ``normalisation`` -- signal events / signal strength -> branching fraction or cross section;
* ``search_limits`` -- a search's run output -> limits.json, workspace.json, plots;
* ``plots`` -- CLs and Brazil plots (written atomically with ``belle_rare.core.atomic``);
* ``validation`` -- the papers' published limits from their published inputs;
* ``summary`` -- ``limit_all`` / ``print_summary`` for ``make run``;
* ``synthetic`` -- run output in the histogram convention, for tests and examples;
* ``cli`` -- ``belle-rare limit`` and ``belle-rare validate-stats``.
"""

"""What `make run` runs (analyses/demo.py): sample sizes per experiment, one results directory per experiment of a
search, and the reduced scans -- read from each search's `Demo`, without generating anything."""

from __future__ import annotations

from pathlib import Path

from belle_rare.analyses import demo
from belle_rare.processors.registry import Demo, searches


def test_a_search_on_two_experiments_gets_its_larger_samples_on_both_and_two_results_directories():
    kst = searches()["kstartautau"]
    assert kst.demo.experiments == ("belle", "belle2")
    sizes = demo.sample_sizes(4000)
    assert sizes[("belle", "sig_kstartautau")] == sizes[("belle2", "sig_kstartautau")] == 20_000
    assert sizes[("belle", "uds")] == 4000
    out = Path("OUT")
    assert demo.results_dir(out, kst, "belle") == out / "results"
    assert demo.results_dir(out, kst, "belle2") == out / "results_belle2"
    tau3mu = searches()["tau3mu"]
    assert demo.results_dir(out, tau3mu, "belle2") == out / "results"


def test_demo_experiments_and_reduced_scans():
    assert Demo("belle2").experiments == ("belle2",)
    assert Demo(("belle", "belle2")).experiments == ("belle", "belle2")
    scans = {name: s.demo.scan_config for name, s in searches().items() if s.demo is not None and s.demo.scan_config}
    assert set(scans) == {"bkscalar", "zprime"}
    assert all(path.is_file() and path.name.endswith("_demo.yaml") for path in scans.values())


def test_demo_limits_combine_the_experiments_and_fit_each_further_one(monkeypatch):
    """make run's limits: the first experiments' runs with kstartautau's Belle + Belle II combination, then the
    Belle II run alone (the analytic fit makes both affordable)."""
    from belle_rare.stats import summary

    calls = []
    monkeypatch.setattr(summary, "limit_all", lambda results, settings, searches=None, combine_with=None:
                        calls.append((results, searches, combine_with)) or [])
    demo.demo_limits(Path("OUT"))
    assert calls == [(Path("OUT/results"), None, {"kstartautau": [Path("OUT/results_belle2")]}),
                     (Path("OUT/results_belle2"), ["kstartautau"], None)]

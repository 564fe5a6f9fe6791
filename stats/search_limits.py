"""Limits of one search from its run output: histograms + stats YAML -> limits.json, workspaces, plots.

For every signal of the search's stats model (its registered ``Search.stats_file``): one limit
per channel that contains it and a combined one if there are several; for a scanned signal, that
for every hypothesis. Outputs under ``DIR/SEARCH/``:

* ``limits.json`` -- POI limits, signal-event limits and the physics quantity (branching
  fraction or cross section) with its normalisation, observed and expected (-2..+2 sigma);
* ``workspace.json`` -- all channels and signals (one measurement per signal; for a scan the
  first hypothesis), reproducible with pyhf alone; ``workspaces/<limit>.json`` -- the exact
  workspace behind each single (non-scan) limit;
* ``plots/`` -- CLs versus POI per single limit, Brazil bands per scan (PNG and PDF).

Everything is computed before anything is written, and every file is written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import hist
import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.stats import fast_scan, plots
from belle_rare.stats.errors import NoSignalError, StatsError
from belle_rare.core.histograms import physics_axes
from belle_rare.stats.histograms import RunOutput, load_run_output, run_output_dir
from belle_rare.stats.counting import OneBin, asymptotic_counting_limit, exact_counting_limit, one_bin_summary
from belle_rare.stats.limits import (
    TOY_BACKGROUND_THRESHOLD,
    LimitResult,
    choose_calculator,
    model_and_data,
    poi_bounds,
    upper_limit,
    workspace_from_spec,
)
from belle_rare.simulation.production import signal_sample_fraction
from belle_rare.stats.model_config import Published, StatsConfig, load_stats_file, with_background_estimate
from belle_rare.stats.normalisation import (
    FB_PER_NB,
    Normalisation,
    b_decay_normalisation,
    cross_section_normalisation,
    tau_decay_normalisation,
    tau_pairs,
)
from belle_rare.core.atomic import write_json
from belle_rare.stats.scan import SCAN_RULE, ScanTask, run_scan
from belle_rare.stats.shape_fit import shape_workspace
from belle_rare.stats.workspace import Hypothesis, build_workspace, hypotheses, poi_name

COMBINED = "combined"


@dataclass
class Settings:
    """Overrides of the YAML defaults (None: take the YAML value)."""

    cl: float | None = None
    calculator: str | None = None
    ntoys: int | None = None
    workers: int | None = None
    scan_method: str | None = None
    executor: str | None = None
    # toy-based limits of one-bin models: "exact" (infinite toys, fast) or "pyhf" (ToyCalculator)
    toy_engine: str = "exact"
    # data-driven backgrounds: "transfer_factor" (e.g. plain ABCD) or "factorised" instead of the YAML's choice
    background_estimate: str | None = None
    # a scan search (Search.scan): another stats YAML in the hook's schema (e.g. a reduced scan for make run),
    # one path (belle-rare limit SEARCH --scan-config) or {search: path} (limit_all over several searches)
    scan_config: Path | dict[str, Path] | None = None
    # results directories of the same search's runs on the other experiments of the stats file's
    # ``combination``: adds the combined limit (stats.combination)
    combine_with: tuple[Path, ...] = ()

    def scan_config_of(self, search: str) -> Path | None:
        """The alternative stats YAML ``scan_config`` names for ``search`` (None: its shipped one)."""
        return self.scan_config.get(search) if isinstance(self.scan_config, dict) else self.scan_config


@dataclass
class SearchLimits:
    search: str
    document: dict  # limits.json
    workspaces: dict[str, dict] = field(default_factory=dict)  # relative path -> spec
    # (file stem, result, title, physics quantity per unit POI, its axis label)
    cls_plots: list[tuple[str, LimitResult, str, float, str]] = field(default_factory=list)
    brazil_plots: list[dict] = field(default_factory=list)
    # binned fits (one 1-D fit histogram per channel): the post-fit stack with the signal at the limit
    postfit_plots: list[dict] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------------------------


def reference_value(config: StatsConfig, signal: str, run: RunOutput, hyp: Hypothesis) -> float:
    """The BR / cross section (fb) the signal histograms of this hypothesis are normalised to.

    From the YAML (``reference_value``), from a metadata key holding it directly, or -- with
    ``reference_key: cross_section_nb``, what the runner writes -- from the signal's production
    cross section: sigma x BR / (2 sigma_tautau) for tau decays, / (2 sigma_Y(4S) f) for B
    decays, x 1e6 for a cross section in fb. The generated cross section includes the branching
    fraction of the sub-decays forced in generation (phi -> K+ K- ...) and the share of the tau pairs
    the sample's gamma* slice holds; both are divided out here (simulation/production.py
    ``signal_sample_fraction``), so the limit is on the decay itself and the efficiency is per
    produced signal decay.
    """
    norm = config.signals[signal].normalisation
    if norm.reference_value is not None:
        return norm.reference_value
    values = {_per_sub_decay(signal, d, run.datasets[d], norm.reference_key, config.experiment) for d in hyp.datasets}
    if None in values or len(values) != 1:
        raise StatsError(
            f"signal '{signal}': every dataset of {hyp.label} needs the same metadata '{norm.reference_key}' "
            f"(the value its histograms are normalised to), or set normalisation.reference_value in the YAML"
        )
    value = float(values.pop())
    if not value > 0:
        raise StatsError(f"signal '{signal}': metadata '{norm.reference_key}' must be positive, got {value}")
    if norm.reference_key != "cross_section_nb":
        return value
    exp = load_experiment(config.experiment)
    if norm.parents == "tau_pairs":
        return value / (2.0 * exp.cross_section("tautau"))
    if norm.parents == "b_pairs":
        return value / (2.0 * exp.cross_section("upsilon4s") * norm.b_fraction_value(exp.upsilon4s_charged_fraction))
    return value * FB_PER_NB


def _per_sub_decay(signal: str, dataset: str, info: dict, key: str, experiment: str) -> float | None:
    """The dataset's cross section divided by its forced sub-decays' branching fraction and its gamma*
    slice share (simulation/production.py ``gamma_star_share``); other keys as they are."""
    value = info.get(key)
    if key != "cross_section_nb" or value is None:
        return value
    process = info.get("process")
    if process is None:
        raise StatsError(
            f"signal '{signal}': dataset '{dataset}' has no 'process' in the run metadata, so its forced sub-decays "
            f"cannot be divided out; re-run `belle-rare run` on its samples"
        )
    if process not in load_catalogue().processes:
        raise StatsError(f"signal '{signal}': dataset '{dataset}' comes from process '{process}', not in configs/processes.yaml")
    return float(value) / signal_sample_fraction(process, experiment)


def signal_normalisation(config: StatsConfig, signal: str, run: RunOutput, hyp: Hypothesis, signal_events: float) -> tuple[Normalisation, float]:
    """(normalisation, reference value) with the efficiency implied by the simulated signal yield."""
    norm = config.signals[signal].normalisation
    ref = reference_value(config, signal, run, hyp)
    exp = load_experiment(config.experiment)
    lumi = run.luminosity_fb
    if norm.parents == "tau_pairs":
        if norm.n_tau_pairs is not None:
            n_pairs = norm.n_tau_pairs.value * lumi / norm.n_tau_pairs.luminosity_fb
            label = f"2 N_tautau, N_tautau = {norm.n_tau_pairs.value:.4g} x {lumi:g}/{norm.n_tau_pairs.luminosity_fb:g} = {n_pairs:.4g}"
        else:
            sigma = exp.cross_section("tautau")
            n_pairs = tau_pairs(lumi, sigma)
            label = f"2 N_tautau, N_tautau = L sigma_tautau = {lumi:g} /fb x {sigma:g} nb = {n_pairs:.4g}"
        eff = signal_events / (ref * 2.0 * n_pairs)
        return tau_decay_normalisation(eff, n_pairs, label), ref
    if norm.parents == "b_pairs":
        key = norm.n_bb_key
        if key not in exp.n_bb or key not in exp.luminosity_fb:
            raise StatsError(f"signal '{signal}': no n_bb / luminosity_fb '{key}' in configs/experiments/{exp.name}.yaml")
        n_bb = exp.n_bb[key] * lumi / exp.luminosity_fb[key]
        f = norm.b_fraction_value(exp.upsilon4s_charged_fraction)
        eff = signal_events / (ref * 2.0 * n_bb * f)
        label = f"2 N_BB f, N_BB = {exp.n_bb[key]:.4g} x {lumi:g}/{exp.luminosity_fb[key]:g} = {n_bb:.4g}, f = {f:g}"
        return b_decay_normalisation(eff, n_bb, f, label), ref
    eff = signal_events / (ref * lumi)
    return cross_section_normalisation(eff, lumi), ref


# ---------------------------------------------------------------------------------------------
# limits
# ---------------------------------------------------------------------------------------------


def _targets(config: StatsConfig, signal: str) -> list[tuple[str, list[str]]]:
    channels = [c.name for c in config.channels_with(signal)]
    if len(channels) > 1 and not config.per_channel_limits:
        return [(COMBINED, channels)]
    targets = [(c, [c]) for c in channels]
    if len(channels) > 1:
        targets.append((COMBINED, channels))
    return targets


def _entry(config, run, signal, target, channels, hyp, built, cl, observed, expected, calculator, reason, method) -> dict:
    s_nom = sum(built.signal_events[signal].values())
    norm, ref = signal_normalisation(config, signal, run, hyp, s_nom)
    events_obs, events_exp = observed * s_nom, [e * s_nom for e in expected]
    published = config.signals[signal].published.get(target)
    return {
        "signal": signal,
        "label": config.signals[signal].label,
        "limit": target,
        "channels": channels,
        "hypothesis": hyp.as_dict(),
        "cl": cl,
        "calculator": calculator,
        "calculator_reason": reason,
        "method": method,
        "poi": poi_name(signal),
        "poi_limit": {"observed": observed, "expected": expected},
        "signal_events": {"per_unit_poi": s_nom, "observed": events_obs, "expected": events_exp},
        "physics": {
            "quantity": norm.quantity,
            "unit": norm.unit,
            "observed": norm.from_events(events_obs),
            "expected": [norm.from_events(e) for e in events_exp],
        },
        "normalisation": {**norm.to_dict(), "reference_value": ref, "poi_meaning": f"signal strength relative to {norm.quantity} = {ref:g}"},
        "background_events": sum(built.background_events[c] for c in channels),
        # the background rests (partly) on the MC statistical bound of empty regions (stats.mc_bound)
        "background_from_mc_bound": any(built.mc_bounds.get(c) for c in channels),
        "mc_bound": [{"channel": c, **b} for c in channels for b in built.mc_bounds.get(c, [])],
        # data-driven backgrounds: which estimate gave the limit ("used") and the cross-checks beside it
        "background_estimate": sorted({e["estimate"] for c in channels for e in built.background_estimates.get(c, []) if e["used"]}),
        "background_estimates": [{"channel": c, **e} for c in channels for e in built.background_estimates.get(c, [])],
        "observed_events": sum(built.observed_events[c] for c in channels),
        "asimov_observation": built.asimov,
        "published": published.model_dump() if published else None,
    }


def _single_limit(config, run, signal, hyp, target, channels, s: Settings, cl, out: SearchLimits, notes):
    built = build_workspace(config, run, {signal: hyp}, channels)
    notes.extend(n for n in built.notes if n not in notes)
    model, data = model_and_data(workspace_from_spec(built.spec, f"{signal}/{target}"), measurement=signal)
    calculator, reason = choose_calculator(model, s.calculator or config.calculator)
    one_bin = one_bin_summary(built.spec, signal)
    large_bound = any(built.mc_bounds.get(c) for c in channels) and sum(built.background_events[c] for c in channels) >= TOY_BACKGROUND_THRESHOLD
    if large_bound and one_bin is not None:
        # an MC bound of many events (10^4-10^8 with small samples): asymptotic, in closed form
        # (pyhf's minimiser loses CLs to NaN at such counts); the YAML's toys are for the paper's small b
        why = f"{reason}; MC-bound background {one_bin.b:.3g} >= {TOY_BACKGROUND_THRESHOLD:g}"
        res = asymptotic_counting_limit(one_bin, cl, model.config.poi_name, poi_bounds(model), why)
        method = "asymptotic CLs (closed form, MC bound)"
    elif calculator == "toybased" and one_bin is not None and s.toy_engine == "exact":
        res = exact_counting_limit(one_bin, cl, model.config.poi_name, poi_bounds(model), reason)
        method = "exact Poisson CLs"
    else:
        ntoys = s.ntoys or config.ntoys
        res = upper_limit(model, data, cl=cl, calculator=calculator, ntoys=ntoys, seed=config.seed, workers=s.workers or 1,
                          engine=config.fit_engine)
        method = f"pyhf {res.calculator}" + (" (analytic-gradient fits)" if "analytic-gradient" in res.calculator_reason else "")
    stem = f"{signal}_{target}"
    entry = _entry(config, run, signal, target, channels, hyp, built, cl, res.observed, list(res.expected), res.calculator, res.calculator_reason, method)
    entry.update(ntoys=res.ntoys, seed=res.seed, workspace=f"workspaces/{stem}.json", cls_points=res.points_dict())
    published = config.signals[signal].published.get(target)
    per_event = entry["physics"]["expected"][2] / entry["signal_events"]["expected"][2] if entry["signal_events"]["expected"][2] else None
    for key, limit in (("expected_paper_convention", expected_with_background_observed(published, one_bin, cl)),
                       ("limit_at_paper_count", limit_at_paper_count(published, one_bin, cl))):
        if limit is not None:
            entry[key] = {**limit, "physics": None if per_event is None else limit["signal_events"] * per_event}
    shape = _shape_fit_limit(config, run, signal, hyp, target, channels, built, s, cl, out, notes, entry)
    if shape is not None:
        return shape
    out.workspaces[f"workspaces/{stem}.json"] = built.spec
    physics = entry["physics"]
    per_poi = physics["observed"] / res.observed if res.observed else 1.0  # the normalisation is linear in the POI
    axis = f"{physics['quantity'].replace('_', ' ')} of {config.signals[signal].label}" + (f" [{physics['unit']}]" if physics["unit"] else "")
    out.cls_plots.append((f"cls_{stem}", res, f"{config.signals[signal].label}, {target}", per_poi, axis))
    if target == COMBINED or len(_targets(config, signal)) == 1:
        _add_postfit_plot(config, run, signal, stem, channels, built, res, out)
    return entry


def expected_with_background_observed(published: Published | None, one_bin: OneBin | None, cl: float) -> dict | None:
    """Our limit in the convention of a paper whose expected limit takes the observed count equal to
    the expected background (``published.expected_observation == "background"``; tau3mu): the limit
    on signal events with n_obs = b, our b and uncertainties (exact Poisson CLs with the continuous
    extension of the Poisson CDF for a non-integer b; closed-form asymptotic CLs when b is an MC bound
    of >= TOY_BACKGROUND_THRESHOLD events, as the limit itself). None for any other paper or model."""
    if published is None or published.expected_observation != "background" or one_bin is None or one_bin.b <= 0:
        return None
    b, rel_b = one_bin.b, one_bin.b_unc / one_bin.b
    if b >= TOY_BACKGROUND_THRESHOLD:
        events = float(fast_scan.asymptotic_limits([b], [b], [one_bin.b_unc] if one_bin.b_unc > 0 else None, cl=cl).observed[0])
        method = "asymptotic CLs (closed form), n_obs = b"
    else:
        events = float(fast_scan.poisson_limits([b], [b], rel_b, one_bin.s_rel_unc, cl=cl).observed[0])
        method = "exact Poisson CLs, n_obs = b (continuous Poisson CDF)"
    return {"observation": b, "signal_events": events, "method": method,
            "definition": "the limit with the observed count set to the expected background, the paper's expected "
                          f"limit (its b: {published.expected_background})"}


def limit_at_paper_count(published: Published | None, one_bin: OneBin | None, cl: float) -> dict | None:
    """Our limit at the count the paper observed (``published.observed_events``; taulphi 2 / 0, tau3mu 1),
    with our b and uncertainties: exact Poisson CLs. A published observed limit carries the paper's
    fluctuation of its count; this is what our efficiency and background make of that same count. None
    without a published count, for a model that is not one bin, and when b is an MC bound of >=
    TOY_BACKGROUND_THRESHOLD events (a handful of observed events against it says nothing)."""
    if published is None or published.observed_events is None or one_bin is None or not 0 <= one_bin.b < TOY_BACKGROUND_THRESHOLD:
        return None
    rel_b = one_bin.b_unc / one_bin.b if one_bin.b > 0 else 0.0
    n = published.observed_events
    events = float(fast_scan.poisson_limits([n], [one_bin.b], rel_b, one_bin.s_rel_unc, cl=cl).observed[0])
    return {"observation": n, "background": one_bin.b, "signal_events": events, "method": "exact Poisson CLs",
            "definition": f"the limit with the paper's observed count n_obs = {n} and our b: the like-with-like partner "
                          "of the published observed limit"}


def observed_partner(entry: dict) -> float | None:
    """Ours beside a published observed limit (a limits.json entry): the limit at the paper's observed count
    (``limit_at_paper_count``, counting searches) or the median smallest observed limit of a scan in
    background-only toys (``minimum_observed_limit``, zprime); None where neither was computed."""
    for key, name in (("limit_at_paper_count", "physics"), ("minimum_observed_limit", "median")):
        value = (entry.get(key) or {}).get(name)
        if value is not None:
            return value
    return None


def _add_postfit_plot(config, run, signal, stem, channels, built, res, out: SearchLimits) -> None:
    """A post-fit stack (stats.plots.plot_postfit) for a binned fit: every channel one 1-D fit histogram of
    several bins; the signal drawn at the observed limit."""
    edges = {}
    for name in channels:
        channel = next(c for c in config.channels if c.name == name)
        axes = physics_axes(run.histogram(channel.histogram))
        if channel.counting or channel.window is not None or len(axes) != 1 or axes[0].size < 2 \
                or not isinstance(axes[0], (hist.axis.Regular, hist.axis.Variable)):
            return
        edges[name] = np.asarray(axes[0].edges)
        x_label = axes[0].label or axes[0].name
    observed = {o["name"]: o["data"] for o in built.spec["observations"]}
    out.postfit_plots.append({
        "spec": built.spec, "measurement": signal, "poi": poi_name(signal), "edges": edges, "observed": observed,
        "signal_scale": res.observed, "x_label": x_label, "path": f"postfit_{stem}",
        "signal_label": f"{config.signals[signal].label} at the {100 * res.cl:g}% CL limit",
    })


def _shape_fit_limit(config, run, signal, hyp, target, channels, built, s: Settings, cl, out: SearchLimits, notes, counting: dict) -> dict | None:
    """The limit from the signal + background fit in fine (M_bc, dE) bins of the ellipse (stats.shape_fit),
    when every channel's background comes from a sideband fit that asks for it (``limit: shape``);
    the counting limit ``counting`` goes beside it as ``counting_cross_check``. None otherwise (or,
    with a note, if the shape fit fails: the counting limit stands)."""
    specs = {}
    for c in channels:
        fits = built.sideband_fits.get(c)
        channel = next(ch for ch in config.channels if ch.name == c)
        samples = [smp for smp in channel.samples if fits and smp.name in fits]
        if len(samples) != 1 or samples[0].data_driven.sideband_fit.limit != "shape":
            return None
        specs[c] = samples[0].data_driven.sideband_fit
    stem = f"{signal}_{target}"
    try:
        spec = shape_workspace(config, run, built.spec, built.sideband_fits, specs, signal, list(hyp.datasets), poi_name(signal))
        model, data = model_and_data(workspace_from_spec(spec, f"{signal}/{target} shape fit"), measurement=signal)
        calculator, _ = choose_calculator(model, s.calculator or config.calculator)
        res = upper_limit(model, data, cl=cl, calculator=calculator, ntoys=s.ntoys or config.ntoys, seed=config.seed, workers=s.workers or 1,
                          engine=config.fit_engine)
    except StatsError as err:  # FitError, LimitOutOfBounds, WorkspaceError
        notes.append(f"{target}: the (M_bc, dE) shape fit failed ({err}); the limit is the counting one")
        return None
    signal_events = {signal: {ch["name"]: float(sum(ch["samples"][0]["data"])) for ch in spec["channels"]}}
    shaped = replace(built, spec=spec, signal_events=signal_events)
    method = f"pyhf {res.calculator}, signal + background fit in {sum(len(o['data']) for o in spec['observations'])} (M_bc, dE) bins of the ellipse"
    entry = _entry(config, run, signal, target, channels, hyp, shaped, cl, res.observed, list(res.expected), res.calculator, res.calculator_reason, method)
    entry.update(ntoys=res.ntoys, seed=res.seed, workspace=f"workspaces/{stem}.json", cls_points=res.points_dict())
    entry["counting_cross_check"] = {**{k: counting[k] for k in ("method", "calculator", "poi_limit", "signal_events", "physics", "ntoys")},
                                     "workspace": f"workspaces/{stem}_counting.json"}
    out.workspaces[f"workspaces/{stem}.json"] = spec
    out.workspaces[f"workspaces/{stem}_counting.json"] = built.spec
    physics = entry["physics"]
    per_poi = physics["observed"] / res.observed if res.observed else 1.0
    axis = f"{physics['quantity'].replace('_', ' ')} of {config.signals[signal].label}" + (f" [{physics['unit']}]" if physics["unit"] else "")
    out.cls_plots.append((f"cls_{stem}", res, f"{config.signals[signal].label}, {target} (shape fit)", per_poi, axis))
    return entry


def _scan_limits(config, run, signal, hyps, s: Settings, cl, out: SearchLimits, notes) -> list[dict]:
    tasks, builds = [], []
    for hyp in hyps:
        for target, channels in _targets(config, signal):
            built = build_workspace(config, run, {signal: hyp}, channels)
            notes.extend(n for n in built.notes if n not in notes)
            tasks.append(ScanTask({"hyp": hyp, "target": target, "channels": channels}, built.spec, signal))
            builds.append(built)
    results = run_scan(
        tasks,
        cl,
        method=s.scan_method or config.scan.method,
        calculator=s.calculator or config.calculator,
        ntoys=s.ntoys or config.ntoys,
        seed=config.seed,
        executor=s.executor or config.scan.executor,
        workers=s.workers or config.scan.workers,
        scheduler=config.scan.scheduler,
    )
    entries = []
    for res, built in zip(results, builds):
        k = res.key
        reason = "; ".join(["scan: " + SCAN_RULE, *res.notes])
        entries.append(_entry(config, run, signal, k["target"], k["channels"], k["hyp"], built, cl, res.observed, res.expected, res.calculator, reason, res.method))
    # Brazil band per (limit, other parameters) against the first scan parameter
    keys = config.signals[signal].scan
    groups: dict[tuple, list[dict]] = {}
    for e in entries:
        others = tuple((k, e["hypothesis"][k]) for k in keys[1:])
        groups.setdefault((e["limit"], others), []).append(e)
    for (target, others), rows in groups.items():
        suffix = "".join(f"_{k}{v:g}" for k, v in others)
        out.brazil_plots.append(
            {
                "stem": f"brazil_{signal}_{target}{suffix}",
                "x": np.array([r["hypothesis"][keys[0]] for r in rows]),
                "observed": np.array([r["physics"]["observed"] for r in rows]),
                "expected": np.array([r["physics"]["expected"] for r in rows]).T,
                "xlabel": keys[0],
                "ylabel": f"{100 * cl:g}% CL limit on {rows[0]['physics']['quantity'].replace('_', ' ')}",
                "title": f"{config.signals[signal].label}, {target}" + "".join(f", {k} = {v:g}" for k, v in others),
            }
        )
    return entries


def _combination_runs(search: str, run: RunOutput, results_dir, others: tuple[Path, ...]) -> dict[str, str | Path]:
    """experiment -> results directory of this run and the ``--combine-with`` ones (one run per experiment)."""
    from belle_rare.stats.combination import run_experiment

    results: dict[str, str | Path] = {run.experiment: results_dir}
    for other in others:
        experiment = run_experiment(other, search)
        if experiment in results:
            raise StatsError(f"--combine-with {other}: a second run on '{experiment}' (have {results[experiment]})")
        results[experiment] = other
    return results


def _experiment_combination(search, stats_file, results, s: Settings, cl, out: SearchLimits, notes) -> list[dict]:
    """The limits combined across experiments (``results``: experiment -> run directory): entries, workspaces, CLs plots."""
    from belle_rare.stats.combination import combined_limits  # it uses this module's normalisation

    entries = []
    for c in combined_limits(search, stats_file, results, cl, ntoys=s.ntoys, workers=s.workers or 1, notes=notes):
        entries.append(c.entry)
        out.workspaces[c.entry["workspace"]] = c.spec
        physics = c.entry["physics"]
        axis = f"{physics['quantity'].replace('_', ' ')} of {c.entry['label']}" + (f" [{physics['unit']}]" if physics["unit"] else "")
        out.cls_plots.append((f"cls_{c.entry['signal']}_{c.entry['limit']}", c.result, f"{c.entry['label']}, {c.entry['limit']}", c.per_poi, axis))
        _add_combined_postfit_plot(search, stats_file, results, c, out)
    return entries


def _add_combined_postfit_plot(search, stats_file, results, c, out: SearchLimits) -> None:
    """The post-fit stack of a combined limit (stats.plots.plot_postfit on the combined workspace): one
    panel per experiment channel (``belle_eecl``: E_ECL^extra; ``belle2_ll`` ...: BDT output), the
    backgrounds after the background-only fit of every experiment at once, the signal at the combined
    observed limit; only when every channel is one 1-D fit histogram of several bins."""
    names = {ch["name"] for ch in c.spec["channels"]}
    edges, labels, panels = {}, {}, {}
    for experiment in c.entry["experiments"]:
        run = load_run_output(results[experiment], search)
        for channel in stats_file.parts[experiment].channels:
            key = f"{experiment}_{channel.name}"
            if key not in names:
                continue
            axes = physics_axes(run.histogram(channel.histogram))
            if channel.counting or channel.window is not None or len(axes) != 1 or axes[0].size < 2 \
                    or not isinstance(axes[0], (hist.axis.Regular, hist.axis.Variable)):
                return
            edges[key], labels[key] = np.asarray(axes[0].edges), axes[0].label or axes[0].name
            panels[key] = (experiment, run.luminosity_fb)
    out.postfit_plots.append({
        "spec": c.spec, "measurement": c.entry["signal"], "poi": c.entry["poi"], "edges": edges,
        "observed": {o["name"]: o["data"] for o in c.spec["observations"]}, "signal_scale": c.result.observed,
        "x_label": labels, "path": f"postfit_{c.entry['signal']}_{c.entry['limit']}", "panel_labels": panels,
        "signal_label": f"{c.entry['label']} at the {100 * c.result.cl:g}% CL limit ({c.entry['limit']})",
    })


def compute_search_limits(
    search: str, results_dir: str | Path, settings: Settings | None = None, config: StatsConfig | None = None
) -> SearchLimits:
    """All limits of ``search`` from ``DIR/SEARCH`` (nothing is written).

    ``config`` defaults to the search's registered stats model (``Search.stats_file``).
    """
    s = settings or Settings()
    stats_file = None if config is not None else load_stats_file(search)  # first: an unknown search names the installed ones
    run = load_run_output(results_dir, search)
    config = config or stats_file.part(run.experiment)  # a file with one model per experiment: the run's
    if s.background_estimate is not None:
        config = with_background_estimate(config, s.background_estimate)
    if run.experiment != config.experiment:
        raise StatsError(f"run output is for experiment '{run.experiment}', the stats model for '{config.experiment}'")
    cl = s.cl or config.cl
    # the other experiments' runs checked before any limit is computed
    combination_runs = _combination_runs(search, run, results_dir, s.combine_with) if s.combine_with else {}
    out = SearchLimits(search, {})
    notes: list[str] = [f"background dataset '{name}' ({info.get('events')} events) not run: {info.get('reason')}"
                        for name, info in sorted((run.metadata.get("left_out") or {}).items())]
    entries: list[dict] = []
    first_hyps: dict[str, Hypothesis] = {}
    for signal, spec in config.signals.items():
        hyps = hypotheses(config, run, signal)
        first_hyps[signal] = hyps[0]
        if spec.scan:
            entries += _scan_limits(config, run, signal, hyps, s, cl, out, notes)
        else:
            targets = _targets(config, signal)
            for target, channels in targets:
                try:
                    entries.append(_single_limit(config, run, signal, hyps[0], target, channels, s, cl, out, notes))
                except NoSignalError as err:
                    if len(targets) == 1 or target == COMBINED:
                        raise
                    # one category of several without simulated signal (small samples): no limit of its own
                    notes.append(f"{target}: no limit ({err})")
    if s.combine_with:
        entries += _experiment_combination(search, stats_file or load_stats_file(search), combination_runs, s, cl, out, notes)
    combined = build_workspace(config, run, first_hyps)
    out.workspaces["workspace.json"] = combined.spec
    out.document = {
        "search": search,
        "experiment": config.experiment,
        "luminosity_fb": run.luminosity_fb,
        "cl": cl,
        "observations": "Asimov background-only (no pseudo-data dataset)" if combined.asimov else "pseudo-data",
        "notes": notes,
        "workspace": "workspace.json (all channels; one measurement per signal"
        + ("; scans: first hypothesis)" if any(sp.scan for sp in config.signals.values()) else ")"),
        "limits": entries,
    }
    return out


def write_search_limits(result: SearchLimits, results_dir: str | Path, make_plots: bool = True) -> list[Path]:
    """Write limits.json, the workspaces and the plots under ``DIR/SEARCH``; returns the paths."""
    base = run_output_dir(results_dir, result.search)
    written = []
    for rel, spec in result.workspaces.items():
        write_json(base / rel, spec)
        written.append(base / rel)
    if make_plots:
        meta = (result.document.get("experiment", ""), result.document.get("luminosity_fb"))
        for stem, res, title, per_poi, axis in result.cls_plots:
            written += plots.plot_cls_curve(res, base / "plots" / stem, title, *meta, x_scale=per_poi, x_label=axis)
        for p in result.brazil_plots:
            written += plots.plot_brazil(p["x"], p["observed"], p["expected"], base / "plots" / p["stem"], p["xlabel"], p["ylabel"], p["title"], *meta)
        for p in result.postfit_plots:
            written += plots.plot_postfit(**{**p, "path": base / "plots" / p["path"]}, experiment=meta[0], lumi_fb=meta[1])
    validation = base / "validation.json"
    if validation.exists():
        write_json(validation, with_limit_rows(json.loads(validation.read_text()), result.document))
        written.append(validation)
    write_json(base / "limits.json", result.document)  # last: its presence means the set is complete
    written.append(base / "limits.json")
    return written


LIMIT_ROW_PREFIXES = ("expected limit (", "background used by the limit (", "expected limit, n_obs = b (",
                      "limit at the paper's count (")


def limit_rows(document: dict) -> list[dict]:
    """validation.json rows from limits.json: each limit's expected (median) value beside the
    published expected one (the observed where the paper gives no expected), and the background it
    used, flagged when it rests on the MC statistical bound."""
    rows = []
    for entry in document.get("limits", []):
        published = entry.get("published") or {}
        expected = (entry.get("physics") or {}).get("expected") or [None] * 5
        paper, which = ((published.get("expected"), "published expected")
                        if published.get("expected") is not None else (published.get("observed"), "published observed (no expected)"))
        bound = " on the MC statistical bound" if entry.get("background_from_mc_bound") else ""
        paper_convention = entry.get("expected_paper_convention")
        median_note = "; the paper's expected takes n_obs = b: see the n_obs = b row" if paper_convention else ""
        rows.append({"quantity": f"expected limit ({entry['limit']})", "ours": expected[2], "paper": paper, "unit": "",
                     "note": f"median expected {entry.get('cl', '')} CL limit ({entry.get('method', '')}{bound}) beside the {which}{median_note}"})
        if paper_convention:
            rows.append({"quantity": f"expected limit, n_obs = b ({entry['limit']})", "ours": paper_convention["physics"],
                         "paper": published.get("expected"), "unit": "",
                         "note": f"like with like: {paper_convention['method']} on our b = {paper_convention['observation']:.3g} "
                                 f"(the paper's b {published.get('expected_background')}){bound}"})
        if (at_count := entry.get("limit_at_paper_count")) is not None:
            rows.append({"quantity": f"limit at the paper's count ({entry['limit']})", "ours": at_count["physics"],
                         "paper": published.get("observed"), "unit": "",
                         "note": f"like with like for an observed limit: {at_count['method']} at the paper's n_obs = "
                                 f"{at_count['observation']} on our b = {at_count['background']:.3g}{bound}"})
        rows.append({"quantity": f"background used by the limit ({entry['limit']})", "ours": entry.get("background_events"),
                     "paper": None, "unit": "events",
                     "note": f"at {document.get('luminosity_fb')} /fb, estimate {', '.join(entry.get('background_estimate') or ['MC count'])}{bound}"})
    return rows


def with_limit_rows(validation: list, document: dict) -> list:
    """``validation`` without earlier limit rows, plus the rows of ``document`` (idempotent)."""
    kept = [r for r in validation if not (isinstance(r, dict) and str(r.get("quantity", "")).startswith(LIMIT_ROW_PREFIXES))]
    return kept + limit_rows(document)


def scan_hook(search: str):
    """The search's own scan (``Search.scan``, "module:function"), or None: the generic path."""
    from belle_rare.processors import registry

    return registry.get_search(search).scan_function()


def run_search_limits(
    search: str, results_dir: str | Path, settings: Settings | None = None, make_plots: bool = True, config: StatsConfig | None = None
) -> SearchLimits:
    hook = scan_hook(search) if config is None else None
    if hook is not None:
        return hook(search, Path(results_dir), settings or Settings(), make_plots)
    result = compute_search_limits(search, results_dir, settings, config)
    write_search_limits(result, results_dir, make_plots)
    return result

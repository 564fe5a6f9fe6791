"""Limits of one search combined across experiments: one POI over several runs' workspaces.

A search analysed on two experiments (kstartautau: Belle's E_ECL^extra fit and Belle II's BDT fit)
has one run per experiment, each with its own part of the stats file. For every signal both parts
share, each run's workspace (all its channels with that signal) is rebuilt as for its own combined
limit; then

* the POI becomes the same physics quantity everywhere: the signal strength relative to the first
  experiment's reference value r_0, so the signal yields of experiment e are scaled by r_0 / r_e
  (with their absolute per-bin uncertainties);
* every other parameter, channel and observation is prefixed with its experiment (``belle_...``):
  the detectors' systematics, templates and floating backgrounds are uncorrelated;
* the workspaces are joined into one model (pyhf's ``Workspace.combine`` semantics: disjoint
  channels, one measurement) and the limit is computed on it.

The normalisation of the combined limit is the sum of the experiments': events per unit of the
quantity = sum_e eps_e x exposure_e, written out per experiment in ``limits.json``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from belle_rare.stats.errors import StatsError
from belle_rare.stats.histograms import RunOutput, load_run_output, run_output_dir
from belle_rare.stats.limits import LimitResult, model_and_data, upper_limit, workspace_from_spec
from belle_rare.stats.model_config import StatsConfig, StatsFile
from belle_rare.stats.normalisation import Normalisation
from belle_rare.stats.workspace import BuiltWorkspace, Hypothesis, build_workspace, hypotheses, poi_name

# modifiers whose ``data`` are absolute yields (scale with the sample); normsys / normfactor / lumi are relative
_ABSOLUTE = ("staterror", "shapesys")


@dataclass
class ExperimentPart:
    """One experiment's share of a combined limit."""

    experiment: str
    config: StatsConfig
    run: RunOutput
    hypothesis: Hypothesis
    built: BuiltWorkspace
    normalisation: Normalisation
    reference: float  # the quantity its POI = 1 stands for


@dataclass
class CombinedLimit:
    entry: dict  # a limits.json entry
    spec: dict  # the combined workspace
    result: LimitResult
    per_poi: float  # the physics quantity per unit POI (for the CLs plot's axis)


def run_experiment(results_dir: str | Path, search: str) -> str:
    """The experiment of the run in ``DIR/SEARCH`` (its metadata.json)."""
    path = run_output_dir(results_dir, search) / "metadata.json"
    if not path.is_file():
        raise StatsError(f"{path}: missing (run the '{search}' analysis first)")
    return str(json.loads(path.read_text()).get("experiment"))


def _scaled(sample: dict, factor: float) -> dict:
    """``sample`` with its yields and absolute uncertainties multiplied by ``factor``."""
    out = copy.deepcopy(sample)
    out["data"] = [v * factor for v in out["data"]]
    for mod in out["modifiers"]:
        if mod["type"] in _ABSOLUTE:
            mod["data"] = [v * factor for v in mod["data"]]
        elif mod["type"] == "histosys":
            mod["data"] = {k: [v * factor for v in mod["data"][k]] for k in ("hi_data", "lo_data")}
    return out


def prefixed_workspace(spec: dict, experiment: str, signal: str, signal_scale: float) -> tuple[list, list, list]:
    """(channels, observations, measurement parameters other than the POI) of ``spec`` with every
    name but the POI prefixed by ``experiment`` and the signal yields scaled by ``signal_scale``."""
    poi = poi_name(signal)

    def rename(name: str) -> str:
        return name if name == poi else f"{experiment}_{name}"

    channels = []
    for channel in spec["channels"]:
        samples = []
        for sample in channel["samples"]:
            is_signal = any(m["type"] == "normfactor" and m["name"] == poi for m in sample["modifiers"])
            sample = _scaled(sample, signal_scale) if is_signal else copy.deepcopy(sample)
            for mod in sample["modifiers"]:
                mod["name"] = rename(mod["name"])
            samples.append(sample)
        channels.append({"name": rename(channel["name"]), "samples": samples})
    observations = [{"name": rename(o["name"]), "data": list(o["data"])} for o in spec["observations"]]
    measurement = next(m for m in spec["measurements"] if m["name"] == signal)
    parameters = [{**copy.deepcopy(p), "name": rename(p["name"])} for p in measurement["config"]["parameters"] if p["name"] != poi]
    # the other signals' POIs are fixed to 0 in their experiment's model: keep them so, per experiment
    return channels, observations, parameters


def _poi_upper(spec: dict, signal: str) -> float:
    measurement = next(m for m in spec["measurements"] if m["name"] == signal)
    poi = next(p for p in measurement["config"]["parameters"] if p["name"] == poi_name(signal))
    return float(poi["bounds"][0][1])


def combined_spec(parts: list[ExperimentPart], signal: str) -> dict:
    """One pyhf workspace of every part's channels with the POI of ``signal`` in units of the first
    part's reference value."""
    r0 = parts[0].reference
    channels, observations, parameters = [], [], []
    upper = []
    for part in parts:
        scale = r0 / part.reference
        ch, obs, pars = prefixed_workspace(part.built.spec, part.experiment, signal, scale)
        channels += ch
        observations += obs
        parameters += pars
        upper.append(_poi_upper(part.built.spec, signal) / scale)
    # each experiment's bracket holds any CLs limit of its own; the combination is tighter than the
    # weaker of the two: the larger bracket always holds it
    poi = {"name": poi_name(signal), "bounds": [[0.0, max(upper)]], "inits": [1.0]}
    return {"channels": channels, "observations": observations, "version": "1.0.0",
            "measurements": [{"name": signal, "config": {"poi": poi_name(signal), "parameters": [poi, *parameters]}}]}


def combined_normalisation(parts: list[ExperimentPart]) -> Normalisation:
    """Events per unit quantity summed over the experiments (eps = that / total exposure)."""
    quantities = {p.normalisation.quantity for p in parts}
    if len(quantities) != 1:
        raise StatsError(f"combination: the experiments' limits are on different quantities ({', '.join(sorted(quantities))})")
    exposure = sum(p.normalisation.exposure for p in parts)
    per_unit = sum(p.normalisation.events_per_unit for p in parts)
    label = " + ".join(f"{p.experiment}: {p.normalisation.exposure_label}" for p in parts)
    first = parts[0].normalisation
    return Normalisation(first.quantity, per_unit / exposure, exposure, f"sum of [{label}]", unit=first.unit)


def experiment_parts(search: str, stats_file: StatsFile, runs: dict[str, RunOutput], signal: str, notes: list[str]) -> list[ExperimentPart]:
    from belle_rare.stats.search_limits import signal_normalisation  # the layer's normalisation (imports this module lazily)

    parts = []
    for experiment in stats_file.combination.experiments:
        config, run = stats_file.parts[experiment], runs[experiment]
        if config.signals[signal].scan:
            raise StatsError(f"combination: signal '{signal}' is scanned in the {experiment} model; only single hypotheses combine")
        hyp = hypotheses(config, run, signal)[0]
        built = build_workspace(config, run, {signal: hyp})
        notes.extend(f"{experiment}: {n}" for n in built.notes if f"{experiment}: {n}" not in notes)
        s_nom = sum(built.signal_events[signal].values())
        norm, ref = signal_normalisation(config, signal, run, hyp, s_nom)
        parts.append(ExperimentPart(experiment, config, run, hyp, built, norm, ref))
    return parts


def combined_limits(search: str, stats_file: StatsFile, results: dict[str, str | Path], cl: float,
                    ntoys: int | None = None, workers: int = 1, notes: list[str] | None = None) -> list[CombinedLimit]:
    """The combined limit of every signal all of the combination's experiments share.

    ``results``: experiment -> results directory holding ``SEARCH/`` of that experiment's run."""
    notes = notes if notes is not None else []
    combination = stats_file.combination
    if combination is None:
        raise StatsError(f"{stats_file.path}: no 'combination' block: the '{search}' stats model combines no experiments")
    missing = [e for e in combination.experiments if e not in results]
    if missing:
        have = ", ".join(f"{e} ({d})" for e, d in results.items())
        raise StatsError(f"combination of {search}: no run for {', '.join(missing)} (runs given: {have})")
    runs = {}
    for experiment in combination.experiments:
        run = load_run_output(results[experiment], search)
        if run.experiment != experiment:
            raise StatsError(f"{run.directory}: a run on '{run.experiment}', given as the {experiment} run")
        runs[experiment] = run
    first = stats_file.parts[combination.experiments[0]]
    shared = [s for s in first.signals if all(s in stats_file.parts[e].signals for e in combination.experiments)]
    if not shared:
        raise StatsError(f"combination of {search}: no signal is in every experiment's model")
    name = "+".join(combination.experiments)
    out = []
    for signal in shared:
        parts = experiment_parts(search, stats_file, runs, signal, notes)
        spec = combined_spec(parts, signal)
        model, data = model_and_data(workspace_from_spec(spec, f"{signal}/{name}"), measurement=signal)
        res = upper_limit(model, data, cl=cl, calculator=combination.calculator, ntoys=ntoys or first.ntoys,
                          seed=first.seed, workers=workers, engine=combination.fit_engine)
        out.append(_combined_entry(parts, signal, name, spec, res, cl, combination.published.get(signal)))
    return out


def _combined_entry(parts: list[ExperimentPart], signal: str, name: str, spec: dict, res: LimitResult, cl: float, published) -> CombinedLimit:
    norm = combined_normalisation(parts)
    r0 = parts[0].reference
    s_per_poi = norm.events_per_unit * r0  # signal events at POI = 1 (= quantity r0), all experiments
    expected = list(res.expected)
    events_obs, events_exp = res.observed * s_per_poi, [e * s_per_poi for e in expected]
    built = [p.built for p in parts]
    label = parts[0].config.signals[signal].label
    entry = {
        "signal": signal,
        "label": label,
        "limit": name,
        "experiments": [p.experiment for p in parts],
        "channels": [f"{p.experiment}_{c}" for p in parts for c in p.built.signal_events[signal]],
        "hypothesis": {},
        "cl": cl,
        "calculator": res.calculator,
        "calculator_reason": f"{res.calculator_reason}; the combination's calculator",
        "method": f"pyhf {res.calculator}, {' + '.join(p.experiment for p in parts)} workspaces with one POI"
                  + (" (analytic-gradient fits)" if "analytic-gradient" in res.calculator_reason else ""),
        "poi": poi_name(signal),
        "poi_limit": {"observed": res.observed, "expected": expected},
        "signal_events": {"per_unit_poi": s_per_poi, "observed": events_obs, "expected": events_exp},
        "physics": {"quantity": norm.quantity, "unit": norm.unit, "observed": norm.from_events(events_obs),
                    "expected": [norm.from_events(e) for e in events_exp]},
        "normalisation": {
            **norm.to_dict(), "reference_value": r0,
            "poi_meaning": f"signal strength relative to {norm.quantity} = {r0:g} in every experiment",
            "per_experiment": {p.experiment: {**p.normalisation.to_dict(), "reference_value": p.reference,
                                              "luminosity_fb": p.run.luminosity_fb, "signal_scale": r0 / p.reference}
                               for p in parts},
        },
        "background_events": sum(sum(b.background_events[c] for c in b.signal_events[signal]) for b in built),
        "background_from_mc_bound": any(b.mc_bounds for b in built),
        "mc_bound": [{"channel": f"{p.experiment}_{c}", **m} for p in parts for c, ms in p.built.mc_bounds.items() for m in ms],
        "background_estimate": [],
        "background_estimates": [],
        "observed_events": sum(sum(b.observed_events[c] for c in b.signal_events[signal]) for b in built),
        "asimov_observation": any(b.asimov for b in built),
        "published": published.model_dump() if published else None,
        "workspace": f"workspaces/{signal}_{name}.json",
        "ntoys": res.ntoys,
        "seed": res.seed,
        "cls_points": res.points_dict(),
    }
    return CombinedLimit(entry, spec, res, r0)

"""The kstartautau report: signal efficiency in the papers' definition and the expected background,
beside the published numbers (validation.json, efficiency_report.txt).

Efficiency = selected / produced B0 -> K*0 tau tau decays (the tag, the tau branching fractions and
BR(K*0 -> K+ pi-) included: the signal sample forces K*0 -> K+ pi-, whose branching fraction
``configs.processes.forced_sub_branching_fraction`` multiplies in), from the weighted cutflow (the tag
candidate's weight included). Background: the simulated background datasets in the signal region at
the run's luminosity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from belle_rare.analyses.kstartautau_control import measure_control
from belle_rare.analyses.report import write_comparison
from belle_rare.configs.processes import forced_sub_branching_fraction

#: the cutflow step after which an event is in the signal region, per experiment
SIGNAL_STEP = {"belle": "E_ECL^extra signal window", "belle2": "BDT signal region"}


def sr_step(flow: dict[str, dict[str, float]]) -> str:
    """The last cut of the SR in a channel's cutflow: the step before the signal-region step."""
    steps = list(flow["weighted"])
    return steps[-2]


def measure(result: dict[str, Any]) -> list[dict[str, Any]]:
    proc = result["processor"]
    cfg, experiment = proc.config, proc.experiment
    meta, cutflow = result["metadata"], result["cutflow"]
    paper = cfg.paper[experiment]
    ds = cfg.signal_dataset
    rows: list[dict[str, Any]] = []
    signal_step = SIGNAL_STEP[experiment]
    window = (f"E_ECL^extra < {cfg.belle.signal_eecl_max} GeV" if experiment == "belle"
              else f"BDT output >= {cfg.belle2.bdt_min}")
    if ds in cutflow:
        process = meta["datasets"].get(ds, {}).get("process") or ds
        sub_br = forced_sub_branching_fraction(process)
        flows = cutflow[ds]
        produced = next(iter(flows.values()))["weighted"]["all events"]
        for label, step_of, ref in (("signal efficiency, every cut (SR)", sr_step, paper.efficiency),
                                    (f"signal efficiency, SR and {window}", lambda f: signal_step, None)):
            selected = sum(f["weighted"][step_of(f)] for f in flows.values())
            raw = sum(int(f["raw"][step_of(f)]) for f in flows.values())
            rows.append({"quantity": f"{label} ({experiment})", "ours": sub_br * selected / produced if produced else None,
                         "paper": ref, "unit": "",
                         "note": f"{raw} selected {ds} events, every channel; x BR(K*0 -> K+ pi-) = {sub_br} (per produced decay)"})
        for channel, f in flows.items():
            rows.append({"quantity": f"signal efficiency, SR and {window}, {channel}",
                         "ours": sub_br * f["weighted"][signal_step] / produced if produced else None, "paper": None, "unit": "",
                         "note": f"{int(f['raw'][signal_step])} selected events"})
    backgrounds = [d for d, info in meta["datasets"].items() if info["kind"] == "background" and d in cutflow]
    if backgrounds:
        total = sum(f["weighted"][signal_step] for d in backgrounds for f in cutflow[d].values())
        raw = sum(int(f["raw"][signal_step]) for d in backgrounds for f in cutflow[d].values())
        rows.append({"quantity": f"expected background, SR and {window} ({experiment})", "ours": total,
                     "paper": paper.background_signal_region, "unit": "events",
                     "note": f"{raw} simulated events of {', '.join(sorted(backgrounds))} at {meta['luminosity_fb']:.0f} /fb "
                             + ("(the paper: every background, 711 /fb)" if experiment == "belle" else "(not published)")})
    return rows


def write_reports(result: dict[str, Any], out_dir: Path, console: Console) -> None:
    """validation.json and efficiency_report.txt into the run's output directory."""
    experiment = result["processor"].experiment
    source = "Belle PRD 108, L011102" if experiment == "belle" else "Belle II proceedings (sec. 4)"
    # + the control sample B0 -> D- l+ nu (Belle): its branching fraction from the two control fits
    write_comparison(measure(result) + measure_control(result), out_dir, console, f"B0 -> K*0 tau tau: ours vs {source}")

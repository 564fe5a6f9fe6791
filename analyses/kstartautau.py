"""The kstartautau report: signal efficiency in the papers' definition and the expected background,
beside the published numbers (validation.json, efficiency_report.txt).

Plots (``plots/``, :func:`make_plots`): the fitted distribution of every channel -- Belle's E_ECL^extra
per topology, Belle II's BDT output per category -- with the simulated backgrounds stacked and the
signal at the published limit; the post-fit versions and the CLs curves come from ``belle-rare limit``.

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

from belle_rare.analyses import stack_plots
from belle_rare.analyses.kstartautau_control import measure_control
from belle_rare.analyses.report import save_figure, write_comparison
from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import forced_sub_branching_fraction
from belle_rare.simulation.production import signal_sample_fraction

#: the limit (stats/ configs/stats/kstartautau.yaml) whose signal window the report's paper-definition rows
#: describe: the paper-luminosity table (analyses/paper_mode.py) puts them beside that limit
LIMIT = {"belle": "eecl", "belle2": "combined"}

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
                         "paper": ref, "unit": "", **({"limit": LIMIT[experiment]} if ref is not None else {}),
                         "note": f"{raw} selected {ds} events, every channel; x BR(K*0 -> K+ pi-) = {sub_br} (per produced decay)"})
        for channel, f in flows.items():
            rows.append({"quantity": f"signal efficiency, SR and {window}, {channel}",
                         "ours": sub_br * f["weighted"][signal_step] / produced if produced else None, "paper": None, "unit": "",
                         "note": f"{int(f['raw'][signal_step])} selected events"})
    backgrounds = [d for d, info in meta["datasets"].items() if info["kind"] == "background" and d in cutflow]
    if backgrounds:
        total = sum(f["weighted"][signal_step] for d in backgrounds for f in cutflow[d].values())
        raw = sum(int(f["raw"][signal_step]) for d in backgrounds for f in cutflow[d].values())
        # the window's share of the fitted range: an empty dataset's MC bound is spread flat over the fit's bins
        share = cfg.belle.signal_eecl_max / 2.0 if experiment == "belle" else 1.0
        parts = window_background(result, backgrounds, share)
        bound = sum(p["bound"] for p in parts.values())
        sigma = (sum(p["variance"] + p["bound"] ** 2 for p in parts.values())) ** 0.5
        breakdown = ", ".join(f"{d} {p['events']:.3g} +- {p['variance'] ** 0.5:.2g} ({p['raw']})" if p["raw"]
                              else f"{d} none (bound {p['bound']:.2g})" for d, p in parts.items())
        rows.append({"quantity": f"expected background, SR and {window} ({experiment})", "ours": total + bound,
                     "paper": paper.background_signal_region, "unit": "events",
                     # the simulation-statistics error (sqrt of the summed squared weights, and each empty dataset's
                     # MC bound) and the limit whose signal window this is: the paper-luminosity table
                     # (analyses/paper_mode.py) reads both
                     "uncertainty": sigma, "limit": LIMIT[experiment], "simulated_events": raw, "mc_bound_events": bound,
                     "note": f"{raw} simulated events of {', '.join(sorted(backgrounds))} at {meta['luminosity_fb']:.0f} /fb "
                             + ("(the paper: every background, 711 /fb, fit: 122.4 +- 4.9)" if experiment == "belle" else "(not published)")
                             + f"; +- simulation statistics; the empty datasets' MC bound ({share:g} of it in the window) "
                             + f"included: {bound:.3g}; per dataset (events selected): {breakdown}"})
        if experiment == "belle2":  # the paper fits the four categories: the background of each (paper-mode table)
            for channel in cutflow[backgrounds[0]]:
                per = window_background(result, backgrounds, share, channels=[channel])
                rows.append({"quantity": f"expected background, SR and {window}, {channel}",
                             "ours": sum(p["events"] + p["bound"] for p in per.values()), "paper": None, "unit": "events",
                             "uncertainty": sum(p["variance"] + p["bound"] ** 2 for p in per.values()) ** 0.5,
                             "simulated_events": sum(p["raw"] for p in per.values()),
                             "mc_bound_events": sum(p["bound"] for p in per.values()),
                             "note": "; ".join(f"{d} {p['events']:.3g} +- {p['variance'] ** 0.5:.2g} ({p['raw']})" if p["raw"]
                                               else f"{d} none (bound {p['bound']:.2g})" for d, p in per.items())})
    return rows


def window_background(result: dict[str, Any], backgrounds: list[str], share: float,
                      channels: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Per background dataset, its weighted yield in the signal window (``yields`` region ``signal``: SR and
    E_ECL^extra < 0.2 GeV / BDT >= 0.4, every channel, nominal), the variance of that sum (sum of the
    squared per-event weights: the simulation statistics), the selected simulated events and, for a dataset
    with none, ``share`` x its MC statistical bound (stats/mc_bound.py: its largest weight per event; the
    binned fit spreads it flat over its bins, so the window holds that share of it), else 0. ``channels``:
    only these channels (default every channel of the dataset's cutflow)."""
    from belle_rare.core.histograms import summed
    from belle_rare.stats.mc_bound import weight_per_event

    hists, cutflow = result["histograms"], result["cutflow"]
    signal_step = SIGNAL_STEP[result["processor"].experiment]
    parts = {}
    for dataset in backgrounds:
        value = variance = 0.0
        chosen = [c for c in cutflow[dataset] if channels is None or c in channels]
        for channel in chosen:
            h = summed(hists, "yields", dataset, channel, region="signal", variation="nominal")
            if h is not None:
                value, variance = value + float(h.values().sum()), variance + float(h.variances().sum())
        raw = sum(int(cutflow[dataset][c]["raw"][signal_step]) for c in chosen)
        weight = weight_per_event(result["metadata"]["datasets"][dataset]) if raw == 0 else None
        parts[dataset] = {"events": value, "variance": variance, "raw": raw, "bound": share * weight if weight else 0.0}
    return parts


#: per experiment: the fitted histogram, its channels (the processor's), x label and what the paper fits
FITTED = {
    "belle": ("eecl", ("ee", "emu", "mumu", "epi", "mupi", "pipi"), r"$E_{ECL}^{extra}$ [GeV]",
              "E_ECL^extra in the SR (every cut but E_ECL^extra), one topology; the fit sums the six"),
    "belle2": ("bdt", ("ll", "lpi", "rhoX", "pipi"), "BDT output",
               "BDT output in [0.4, 1] in the SR, one category; the simultaneous fit takes the four"),
}


def simulated_branching_fraction(meta: dict[str, Any], dataset: str) -> float | None:
    """BR(B0 -> K*0 tau tau) the signal dataset's histograms stand for: sigma / (sigma(Y(4S)) f00 2), the
    forced K*0 -> K+ pi- divided out (as the stats layer's reference value; either B of a B0 B0bar pair
    decays to the signal); None if the metadata lacks the cross section."""
    info = meta["datasets"].get(dataset, {})
    sigma, process = info.get("cross_section_nb"), info.get("process") or dataset
    if sigma is None:
        return None
    exp = load_experiment(meta["experiment"])
    f00 = 1.0 - exp.upsilon4s_charged_fraction
    return float(sigma) / signal_sample_fraction(process, meta["experiment"]) / (2.0 * f00 * exp.cross_section("upsilon4s"))


def make_plots(result: dict[str, Any], plot_dir: Path) -> list[Path]:
    """``<histogram>_stack`` (PNG + PDF): the fitted distribution of each channel, the simulated backgrounds
    stacked by process at the run's luminosity, the signal overlaid at the paper's upper limit;
    ``plots/contents.json`` records the yields drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    proc = result["processor"]
    experiment, cfg, meta, hists = proc.experiment, proc.config, result["metadata"], result["histograms"]
    name, channels, xlabel, shows = FITTED[experiment]
    signal = cfg.signal_dataset
    backgrounds = [d for d, info in meta["datasets"].items() if info["kind"] == "background"]
    lumi = meta.get("luminosity_fb")
    br_ref = cfg.paper[experiment].upper_limit
    br_sim = simulated_branching_fraction({**meta, "experiment": experiment}, signal)
    scale = br_ref / br_sim if br_sim else None
    label = (rf"$B^0\to K^{{*0}}\tau\tau$, $\mathcal{{B}} = {br_ref:.1e}$ (published limit)" if scale
             else f"{signal} (normalisation unknown, as simulated)")
    columns = 3 if len(channels) > 4 else 2
    rows = -(-len(channels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 4.5 * rows), squeeze=False)
    drawn = {}
    for ax, channel in zip(axes.flat, channels):
        drawn[channel] = stack_plots.stacked_distribution(ax, hists, backgrounds, signal, name, channel, scale, label, lumi,
                                                          region="SR", variation="nominal")
        ax.set_xlabel(xlabel)
        ax.set_title(channel, fontsize="small", loc="right")
        hep.label.exp_text("Belle" if experiment == "belle" else "Belle II", "Simulation", ax=ax, loc=0)
    for ax in list(axes.flat)[len(channels):]:
        ax.set_visible(False)
    stem = f"{name}_stack"
    written = save_figure(fig, plot_dir, stem)
    contents = {stem: {"shows": shows, "channels": drawn, "signal_branching_fraction": br_ref if scale else None,
                       "postfit": f"postfit_{signal.removeprefix('sig_')}_<limit>.png and cls_*.png: written by belle-rare limit"}}
    written.append(stack_plots.write_contents(plot_dir, lumi, contents, experiment=experiment))
    return written


def write_reports(result: dict[str, Any], out_dir: Path, console: Console) -> None:
    """validation.json, efficiency_report.txt and plots/ into the run's output directory."""
    experiment = result["processor"].experiment
    source = "Belle PRD 108, L011102" if experiment == "belle" else "Belle II proceedings (sec. 4)"
    # + the control sample B0 -> D- l+ nu (Belle): its branching fraction from the two control fits
    write_comparison(measure(result) + measure_control(result), out_dir, console, f"B0 -> K*0 tau tau: ours vs {source}")
    make_plots(result, out_dir / "plots")

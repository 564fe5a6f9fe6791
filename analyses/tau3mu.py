"""tau -> 3 mu outputs beyond the histograms: efficiency, resolutions, ABCD background, validation.json, plots.

Reads the run's ``{dataset: {name: Hist}}``: the ``yields`` counting histogram (regions A-D, far)
for the ABCD estimate, the nominal (M, dE) plane ``m_de`` and ``bdt_score`` for fits and plots,
and the signal candidates (``columns["candidates"]``) for the signal-ellipse fit.

Numbers are measured on the product's own samples and written beside the paper's
(arXiv:2405.07386: efficiency 20.4 %, Table 1 widths, expected background ~0.5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hist
import numpy as np
from rich.console import Console

from belle_rare.core.histograms import summed
from belle_rare.analyses import stack_plots
from belle_rare.analyses.report import save_figure, write_comparison
from belle_rare.processors.resolution import fit_bifurcated_gaussian
from belle_rare.processors.signal_ellipse import fit_signal_ellipse
from belle_rare.processors.tau3mu import FAR_REGION, NMINUS1, REGIONS
from belle_rare.stats.factorised import FactorisedEstimate, factorised_estimate
from belle_rare.stats.mc_bound import BoundedCount, bounded_count
from belle_rare.stats.model_config import load_stats_config
from belle_rare.simulation.production import signal_sample_fraction

CHANNEL = "3mu"
FIT_HALF_WINDOW = {"m": 0.03, "de": 0.10}  # GeV around the configured peak


def _sum(hists: dict[str, dict[str, hist.Hist]], datasets: list[str], region: str | list[str]) -> tuple[float, float]:
    """Weighted (value, variance) of ``datasets`` in ``region`` (nominal yields)."""
    value = variance = 0.0
    for r in [region] if isinstance(region, str) else region:
        cell = summed(hists, "yields", datasets, CHANNEL, region=r, variation="nominal", count=sum)
        if cell is not None:
            value += float(cell.value)
            variance += float(cell.variance)
    return value, variance


def abcd(hists: dict[str, dict[str, hist.Hist]], datasets: list[str]) -> dict[str, Any]:
    """N_A = N_B x N_C / N_D (sec. 3.4) with the statistical error propagated from B, C, D."""
    n = {k: _sum(hists, datasets, REGIONS[k]) for k in "ABCD"}
    (b, vb), (c, vc), (d, vd) = n["B"], n["C"], n["D"]
    if d <= 0 or b <= 0 or c <= 0:
        expected, error = (0.0 if d > 0 else None), None
        if d > 0 and (b <= 0 or c <= 0):
            # a zero yield: quote the estimate with one event of the empty region as its error scale
            error = float(np.sqrt(vb + vc)) if (vb + vc) > 0 else None
    else:
        expected = b * c / d
        error = expected * float(np.sqrt(vb / b**2 + vc / c**2 + vd / d**2))
    return {"expected": expected, "error": error, "yields": {k: v[0] for k, v in n.items()}, "direct": n["A"][0],
            "direct_error": float(np.sqrt(n["A"][1]))}


def factorised(hists: dict[str, dict[str, hist.Hist]], datasets: list[str], meta: dict[str, Any], from_data: bool,
               area_fraction: float | None = None) -> FactorisedEstimate | None:
    """(N_A + N_C) x N_B / (N_B + N_D): the BDT efficiency factorised (stats/factorised.py), empty
    counts with the MC bound; None when a count is empty and no weight per event is known. With
    ``area_fraction`` N before the BDT is (N_A + N_B + N_C + N_D) x it (``before_from: window_area``)."""

    def count(keys: str) -> BoundedCount:
        per = {d: _sum(hists, [d], [REGIONS[k] for k in keys]) for d in datasets}
        return bounded_count("+".join(REGIONS[k] for k in keys), per, meta["datasets"])

    before = count("AC") if area_fraction is None else count("ABCD")
    passed, failed = count("B"), count("D")
    if before.value <= 0 or passed.value <= 0:
        return None
    return factorised_estimate(before, passed, failed, poisson_before=not from_data, before_scale=area_fraction or 1.0)


def measure(result: dict[str, Any]) -> list[dict[str, Any]]:
    proc = result["processor"]
    cfg = proc.config
    meta = result["metadata"]
    hists = result["histograms"]
    paper = cfg.paper
    ds = cfg.signal_datasets[CHANNEL]
    rows: list[dict[str, Any]] = []
    model_note = ("BDT from models/tau3mu_belle2.json, working point "
                  f"{proc.working_point:.4g}" if proc.model is not None
                  else "no stored model (models/tau3mu_belle2.json): BDT score filled with -1, every event fails the BDT")
    if ds in meta["datasets"] and ds in result["cutflow"]:
        counts = result["cutflow"][ds][CHANNEL]["raw"]
        n_all = counts["all events"]
        # per produced tau -> 3 mu decay (the paper's definition): x the gamma* slice share of the sample
        # (simulation/production.py signal_sample_fraction; harder-ISR tau pairs count as not selected)
        fraction = signal_sample_fraction(meta["datasets"][ds].get("process") or ds, meta["experiment"])
        for key, label, ref in (("signal region", f"signal efficiency ({CHANNEL})", paper.efficiency),
                                ("signal region (no BDT)", "signal efficiency before the BDT (ellipse only)", None),
                                ("three muon candidates (|q| = 1, one hemisphere)", "signal efficiency of the three-muon reconstruction", None)):
            per_event = counts[key] / n_all if n_all else float("nan")
            rows.append({"quantity": label, "ours": fraction * per_event,
                         "ours_error": fraction * float(np.sqrt(per_event * (1 - per_event) / n_all)) if n_all else None,
                         "paper": ref, "unit": "", "note": f"{int(counts[key])} of {int(n_all)} generated {ds} events x the "
                         f"gamma* slice share {fraction:.3f} (per produced decay)" + (f"; {model_note}" if key == "signal region" else "")})
        scale = meta["datasets"][ds]["scale"]
        # what the limit's normalisation uses: the signal region's yield with the data / MC correction weights
        # (tracking, trigger, lepton ID), as the paper's efficiency includes its corrections
        weighted = _sum(hists, [ds], [REGIONS["A"]])[0] / scale
        rows.append({"quantity": f"signal efficiency with the correction weights ({CHANNEL})",
                     "ours": fraction * weighted / n_all if n_all else None, "paper": paper.efficiency, "unit": "",
                     "note": f"the signal region's yield with the nominal data / MC correction weights / (sigma L), x the "
                             f"gamma* slice share {fraction:.3f}: the efficiency the limit's normalisation uses"})
        plane = summed(hists, "m_de", ds, CHANNEL, region=sum)
        ell = cfg.signal_region
        for axis, centre in (("m", ell.m_mean), ("de", ell.de_mean)):
            name = "M_3mu" if axis == "m" else "dE_3mu"
            try:
                if plane is None:
                    raise ValueError(f"no selected {ds} event")
                proj = plane.project(axis)
                centres = proj.axes[0].centers
                window = np.abs(centres - centre) < FIT_HALF_WINDOW[axis]
                values = proj.values()[window] / scale
                fit = fit_bifurcated_gaussian(centres[window], values)
                ours = {"mean": fit.mean, "sigma_high": fit.sigma_high, "sigma_low": fit.sigma_low}
                errs = {"mean": fit.mean_err, "sigma_high": fit.sigma_high_err, "sigma_low": fit.sigma_low_err}
                note = f"bifurcated Gaussian on {int(values.sum())} selected signal events (before the BDT)"
            except (ValueError, RuntimeError) as err:
                ours = errs = {"mean": None, "sigma_high": None, "sigma_low": None}
                note = f"fit failed: {err}"
            for part in ("mean", "sigma_high", "sigma_low"):
                key = f"{'m' if axis == 'm' else 'de'}_{part}" if part == "mean" else f"sigma_{'m' if axis == 'm' else 'de'}_{part.split('_')[1]}"
                rows.append({"quantity": f"{name} {part}", "ours": ours[part], "ours_error": errs[part], "paper": getattr(paper, key),
                             "unit": "GeV", "note": note})
    rows.extend(ellipse_rows(result))
    data = [d for d, i in meta["datasets"].items() if i["kind"] == "data"]
    backgrounds = [d for d, i in meta["datasets"].items() if i["kind"] == "background"]
    source = data or backgrounds
    est = abcd(hists, source)
    y = est["yields"]
    note = (f"ABCD N_A = N_B N_C / N_D from {'pseudo-data' if data else 'simulated background'} ({', '.join(source) or 'none'}), "
            f"scaled to {meta['luminosity_fb']:g} /fb: N_B {y['B']:.3g}, N_C {y['C']:.3g}, N_D {y['D']:.3g}; {model_note}")
    if est["expected"] is None:
        note += "; N_D = 0: no estimate (samples too small)"
    rows.append({"quantity": "expected background in the signal region", "ours": est["expected"], "ours_error": est["error"],
                 "paper": paper.expected_background, "unit": "events", "note": note})
    # N before the BDT as the stats model takes it (configs/stats/tau3mu.yaml before_from)
    fz_config = next(s.data_driven.factorised for c in load_stats_config("tau3mu").channels for s in c.samples
                     if s.data_driven is not None and s.data_driven.factorised is not None)
    area = (meta.get("sr_area_fraction") or {}).get(CHANNEL) if fz_config.before_from == "window_area" else None
    fz = factorised(hists, source, meta, bool(data), area)
    before_text = "(N_A + N_C)" if area is None else f"(N_A + N_B + N_C + N_D) x area fraction {area:.4g}"
    rows.append({"quantity": "expected background in the signal region (BDT efficiency factorised)",
                 "ours": fz.value if fz else None, "ours_error": fz.uncertainty if fz else None,
                 "paper": paper.expected_background, "unit": "events",
                 "note": (f"{before_text} x eps_BDT, eps_BDT = N_B / (N_B + N_D) = {fz.efficiency:.3g}: the limit's default estimate "
                          "(configs/stats/tau3mu.yaml)" + ("; rests on the MC statistical bound of empty regions" if fz.from_mc_bound else "")
                          if fz else "an empty count with no weight per event known: no estimate")})
    rows.append({"quantity": "simulated background in the signal region (direct count)", "ours": est["direct"],
                 "ours_error": est["direct_error"], "paper": paper.expected_background, "unit": "events",
                 "note": "region A in simulation, for comparison with the ABCD estimate"
                 + (f"; none selected: < {2.3 * max(meta['datasets'][d]['scale'] for d in backgrounds):.3g} events at 90 % CL "
                    "(2.3 x the largest per-event weight; samples too small)" if backgrounds and est["direct"] == 0 else "")})
    before, var = _sum(hists, backgrounds, [REGIONS[k] for k in "ABCD"])
    rows.append({"quantity": "simulated background in the outer window before the BDT", "ours": before, "ours_error": float(np.sqrt(var)),
                 "paper": paper.background_before_bdt, "unit": "events",
                 "note": f"{cfg.signal_region.outer_n_sigma:g} sigma region (the paper: 20 sigma box), {', '.join(backgrounds) or 'none'}"})
    return rows


def ellipse_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The signal ellipse fitted on this run's signal candidates, beside the configured one."""
    cfg = result["processor"].config
    ds = cfg.signal_datasets[CHANNEL]
    cols = result.get("columns", {}).get("candidates", {}).get(ds, {}).get(CHANNEL)
    if not cols:
        return []
    m, de, weight = (np.asarray(getattr(cols[k], "value", cols[k])) for k in ("m", "de", "weight"))
    if len(m) == 0:
        return []
    configured = cfg.signal_region
    try:
        fit = fit_signal_ellipse(m, de, weight)
    except (ValueError, RuntimeError) as err:
        return [{"quantity": "signal ellipse rotation angle", "ours": None, "paper": None, "unit": "rad",
                 "note": f"ellipse fit failed: {err}"}]
    note = (f"fit to {fit.n_events:.0f} signal candidates before the BDT (analyses/signal_ellipse.py); "
            "configs/searches/tau3mu.yaml signal_region has {:.4g}")
    rows = [{"quantity": "signal ellipse rotation angle", "ours": fit.angle, "paper": None, "unit": "rad",
             "note": f"minus arctan of the slope {fit.slope:.3f} +- {fit.slope_error:.3f} of the profile of M in dE bins (the paper's method); "
                     + note.format(configured.angle)}]
    for field, label in (("sigma_m_high", "along M, high side"), ("sigma_m_low", "along M, low side"),
                         ("sigma_de_high", "along dE, high side"), ("sigma_de_low", "along dE, low side")):
        rows.append({"quantity": f"signal ellipse width {label}", "ours": getattr(fit, field), "paper": None, "unit": "GeV",
                     "note": "bifurcated Gaussian along the rotated axis; " + note.format(getattr(configured, field))})
    return rows


def make_plots(result: dict[str, Any], plot_dir: Path) -> list[Path]:
    """The paper's kind of figures (PNG + PDF): N-1 distributions of thrust, missing-momentum angle and
    event charge in the outer window (its Fig. 1), the BDT score in the signal region and the outer window
    (Figs. 2-3), M_3mu and dE_3mu before and after the BDT (Fig. 5) and the (M, dE) plane with the
    ellipses (Fig. 4), the simulated backgrounds stacked by process at the run's luminosity, the signal
    overlaid at ``plots.signal_branching_fraction``. ``plots/contents.json`` lists what each shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    cfg = result["processor"].config
    meta = result["metadata"]
    hists = result["histograms"]
    sig = cfg.signal_datasets[CHANNEL]
    backgrounds = [d for d, i in meta["datasets"].items() if i["kind"] == "background"]
    lumi = meta.get("luminosity_fb")
    br_ref = cfg.plots.signal_branching_fraction
    sig_scale, sig_label = stack_plots.signal_scale(meta, sig, br_ref, r"$\tau\to 3\mu$")
    weighting = "PID-weighted background" if meta.get("pid_weighting") else "background with the thrown PID"
    plot_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    contents: dict[str, Any] = {}

    def save(fig: Any, name: str, drawn: dict[str, Any], shows: str) -> None:
        written.extend(save_figure(fig, plot_dir, name))
        contents[name] = {**drawn, "shows": shows, "signal_branching_fraction": br_ref if sig_scale is not None else None}

    before = [REGIONS[k] for k in "ABCD"]  # the outer window before the BDT (SR + outer)
    after = [REGIONS["A"], REGIONS["B"]]
    sel = cfg.selection
    cut_lines = {"nminus1_thrust": [sel.thrust_max], "nminus1_cos_theta_miss": list(sel.cos_theta_miss_cm),
                 "nminus1_event_charge": [sel.event_charge - 0.5, sel.event_charge + 0.5]}
    one_d = [(name, {"region": "outer"}, label, f"N-1 in the outer window: every preselection cut but this one ({weighting})", name)
             for name, (_, _, _, label) in NMINUS1.items()]
    one_d += [("bdt_score", {"region": ["SR", "outer"]}, "BDT score (-1: no model)", "after the preselection, outer window", "bdt_score")]
    for regions, when, tag in ((before, "before the BDT", "presel"), (after, "after the BDT", "bdt")):
        one_d += [("m_de", {"region": regions, "de": sum}, r"$M_{3\mu}$ [GeV]", f"M_3mu {when}, outer window", f"m3mu_{tag}"),
                  ("m_de", {"region": regions, "m": sum}, r"$\Delta E_{3\mu}$ [GeV]", f"dE_3mu {when}, outer window", f"de_{tag}")]
    for name, slices, xlabel, shows, tag in one_d:
        fig, ax = plt.subplots()
        drawn = stack_plots.stacked_distribution(ax, hists, backgrounds, sig, name, CHANNEL, sig_scale, sig_label, lumi, **slices)
        for x in cut_lines.get(name, []):
            ax.axvline(x, color="tab:red", ls="--")
        ax.set_xlabel(xlabel)
        hep.label.exp_text("Belle II", "Simulation", ax=ax, loc=0)
        save(fig, tag, drawn, shows)
    ell = cfg.signal_region
    t = np.linspace(0, 2 * np.pi, 400)
    for regions, when, tag in ((after, "after the BDT", "bdt"), (before + [FAR_REGION], "before the BDT", "presel")):
        fig, ax = plt.subplots(figsize=(7, 6))
        drawn = stack_plots.stacked_plane(ax, hists, backgrounds, sig, "m_de", CHANNEL, sig_scale, sig_label, region=regions)
        for n, style in ((ell.n_sigma, "-"), (ell.outer_n_sigma, "--")):
            u, v = np.cos(t), np.sin(t)
            u = n * u * np.where(u > 0, ell.sigma_m_high, ell.sigma_m_low)
            v = n * v * np.where(v > 0, ell.sigma_de_high, ell.sigma_de_low)
            c, s = np.cos(ell.angle), np.sin(ell.angle)
            ax.plot(ell.m_mean + c * u - s * v, ell.de_mean + s * u + c * v, style, color="magenta", label=f"{n:g} sigma")
        ax.set_xlabel(r"$M_{3\mu}$ [GeV]")
        ax.set_ylabel(r"$\Delta E_{3\mu}$ [GeV]")
        ax.set_xlim(*cfg.histograms.m3mu[1:])
        ax.set_ylim(*cfg.histograms.de[1:])
        ax.set_title(f"$\\tau\\to 3\\mu$, {when}" + (f", {lumi:g} fb$^{{-1}}$" if lumi else ""), fontsize="small")
        ax.legend(fontsize="xx-small")
        save(fig, f"m_de_plane_{tag}", drawn, f"(M_3mu, dE_3mu) {when}; {weighting}")
    written.append(stack_plots.write_contents(plot_dir, lumi, contents, pid_weighting=meta.get("pid_weighting")))
    return written


def write_reports(result: dict[str, Any], out_dir: Path, console: Console) -> None:
    """validation.json, efficiency_report.txt and plots/ into the (temporary) output directory."""
    write_comparison(measure(result), out_dir, console, "tau -> 3 mu: ours vs Belle II arXiv:2405.07386")
    make_plots(result, out_dir / "plots")

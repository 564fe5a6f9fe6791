"""tau -> l phi outputs: efficiencies, peak widths, RSB x r_MC background, validation.json, plots.

Compared with the Belle II tau -> l phi paper (190 /fb), Table 3: efficiency 6.1 % (e phi) and
6.5 % (mu phi); r_MC 0.23 / 0.12; N_exp 0.23 / 0.36. Reads the run's ``{dataset: {name: Hist}}``:
the ``yields`` counting histogram for the RSB x r_MC estimate, the nominal ``m_de``, ``m_kk`` and
``bdt_score`` for fits and plots.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hist
import numpy as np
from rich.console import Console

from belle_rare.configs.processes import forced_sub_branching_fraction
from belle_rare.simulation.production import signal_sample_fraction
from belle_rare.core.histograms import summed
from belle_rare.analyses import stack_plots
from belle_rare.analyses.report import save_figure, write_comparison
from belle_rare.processors.resolution import fit_bifurcated_gaussian
from belle_rare.processors.taulphi import CHANNELS, NMINUS1, PHI_MASS

FIT_HALF_WINDOW = {"m": 0.03, "de": 0.10}
LABELS = {"ephi": r"$\tau\to e\phi$", "muphi": r"$\tau\to\mu\phi$"}


def _sum(hists: dict[str, dict[str, hist.Hist]], datasets: list[str], channel: str, region: str) -> tuple[float, float]:
    """Weighted (value, variance) of ``datasets`` in ``region`` (nominal yields)."""
    cell = summed(hists, "yields", datasets, channel, region=region, variation="nominal", count=sum)
    return (float(cell.value), float(cell.variance)) if cell is not None else (0.0, 0.0)


def rsb_estimate(hists: dict[str, dict[str, hist.Hist]], data: list[str], simulation: list[str], channel: str, suffix: str) -> dict[str, Any]:
    """N_exp = N_RSB (data, else simulation) x r_MC, r_MC = N_SR / N_RSB in simulation; stat. errors."""
    sr, vsr = _sum(hists, simulation, channel, "SR" + suffix)
    rsb, vrsb = _sum(hists, simulation, channel, "RSB" + suffix)
    n_rsb, vn = _sum(hists, data, channel, "RSB" + suffix) if data else (rsb, vrsb)
    if rsb <= 0:
        return {"r_mc": None, "n_rsb": n_rsb, "expected": None, "error": None, "sr_mc": sr}
    r = sr / rsb
    r_err = r * np.sqrt((vsr / sr**2 if sr > 0 else 0.0) + vrsb / rsb**2)
    expected = n_rsb * r
    err = float(np.sqrt((r * np.sqrt(vn)) ** 2 + (n_rsb * r_err) ** 2))
    return {"r_mc": r, "r_mc_error": float(r_err), "n_rsb": n_rsb, "expected": expected, "error": err, "sr_mc": sr}


def measure(result: dict[str, Any]) -> list[dict[str, Any]]:
    proc = result["processor"]
    cfg = proc.config
    meta = result["metadata"]
    hists = result["histograms"]
    rows: list[dict[str, Any]] = []
    has_model = proc.model is not None
    suffix = "" if has_model else "_presel"
    model_note = (f"BDT from models/taulphi_belle2.json, working point {proc.model.working_point:.4g}" if has_model
                  else "no stored model (models/taulphi_belle2.json): BDT score -1; regions before the BDT used")
    data = [d for d, i in meta["datasets"].items() if i["kind"] == "data"]
    backgrounds = [d for d, i in meta["datasets"].items() if i["kind"] == "background"]
    for channel in CHANNELS:
        ds = cfg.signal_datasets[channel]
        paper = {k: v[channel] for k, v in cfg.paper}
        if ds in meta["datasets"] and ds in result["cutflow"]:
            counts = result["cutflow"][ds][channel]["raw"]
            n_all = counts["all events"]
            key = "signal region" if has_model else "signal region (no BDT)"
            # The paper's efficiency is selected / produced tau -> l phi decays, BR(phi -> K+ K-) included;
            # every generated event has phi -> K+ K- forced and is a tau pair of the gamma* > 10 GeV slice,
            # so ours per generated event is x sub-BR x slice share (simulation/production.py)
            process = meta["datasets"][ds].get("process") or ds
            sub_bf = signal_sample_fraction(process, meta["experiment"])
            definition = (f"selected / produced tau -> l phi decays = (selected / generated) x BR(phi -> K+ K-) "
                          f"{forced_sub_branching_fraction(process):g} (forced in {process}) x the gamma* slice share "
                          f"{sub_bf / forced_sub_branching_fraction(process):.3f}, the paper's definition")
            for k, label, ref in ((key, f"signal efficiency ({channel})", paper["efficiency"]),
                                  ("signal region (no BDT)", f"signal efficiency before the BDT ({channel})", None)):
                per_event = counts[k] / n_all if n_all else float("nan")
                err = float(np.sqrt(per_event * (1 - per_event) / n_all)) if n_all else None
                rows.append({"quantity": label, "ours": per_event * sub_bf, "ours_error": err * sub_bf if err is not None else None,
                             "paper": ref, "unit": "",
                             "note": f"{definition}; {int(counts[k])} of {int(n_all)} generated {ds} events; {model_note}"})
            rows.append({"quantity": f"signal efficiency per generated event, phi -> K+ K- forced ({channel})",
                         "ours": counts[key] / n_all if n_all else None, "paper": None, "unit": "",
                         "note": "selected / generated events of the sample (not the paper's definition)"})
            scale = meta["datasets"][ds]["scale"]
            # what the limit's normalisation uses: the signal region's yield with the data / MC correction weights
            weighted = _sum(hists, [ds], channel, "SR" if has_model else "SR_presel")[0] / scale
            rows.append({"quantity": f"signal efficiency with the correction weights ({channel})",
                         "ours": weighted / n_all * sub_bf if n_all else None, "paper": paper["efficiency"], "unit": "",
                         "note": f"{definition}, with the nominal data / MC correction weights: the efficiency the limit's "
                                 "normalisation uses"})
            plane = summed(hists, "m_de", ds, channel, region="presel")
            box = cfg.signal_region
            for axis, centre in (("m", box.m_mean), ("de", box.de_mean)):
                try:
                    if plane is None:
                        raise ValueError(f"no selected {ds} event")
                    proj = plane.project(axis)
                    c = proj.axes[0].centers
                    w = np.abs(c - centre) < FIT_HALF_WINDOW[axis]
                    fit = fit_bifurcated_gaussian(c[w], proj.values()[w] / scale)
                    vals = {"mean": (fit.mean, fit.mean_err), "sigma_high": (fit.sigma_high, fit.sigma_high_err),
                            "sigma_low": (fit.sigma_low, fit.sigma_low_err)}
                    note = "bifurcated Gaussian on the selected signal (before the BDT); no width in the paper excerpt"
                except (ValueError, RuntimeError) as err:
                    vals, note = {k: (None, None) for k in ("mean", "sigma_high", "sigma_low")}, f"fit failed: {err}"
                for part, (v, e) in vals.items():
                    rows.append({"quantity": f"{'M_tau' if axis == 'm' else 'dE'} {part} ({channel})", "ours": v, "ours_error": e,
                                 "paper": None, "unit": "GeV", "note": note})
            mkk = summed(hists, "m_kk", ds, channel, region=sum)
            if mkk is not None and mkk.values().sum() > 0:
                rows.append({"quantity": f"M(K+K-) mean ({channel})", "ours": float(np.average(mkk.axes[0].centers, weights=mkk.values())),
                             "paper": PHI_MASS, "unit": "GeV", "note": "selected signal; 'paper' column: m_phi (PDG, particle)"})
        est = rsb_estimate(hists, data, backgrounds, channel, suffix)
        src = "pseudo-data" if data else "simulated background (no pseudo-data in the input)"
        weighting = "PID-weighted" if meta.get("pid_weighting") else "thrown-PID (--no-pid-weights)"
        rows.append({"quantity": f"r_MC = N_SR / N_RSB ({channel})", "ours": est["r_mc"], "ours_error": est.get("r_mc_error"),
                     "paper": paper["r_mc"], "unit": "",
                     "note": f"{weighting} simulation ({', '.join(backgrounds) or 'none'}); {model_note}"
                     + ("; no simulated RSB event (samples too small)" if est["r_mc"] is None else "")})
        rows.append({"quantity": f"N_RSB ({channel})", "ours": est["n_rsb"], "paper": paper["n_rsb"], "unit": "events",
                     "note": f"{src}, scaled to {meta['luminosity_fb']:g} /fb"})
        rows.append({"quantity": f"expected background in the signal region ({channel})", "ours": est["expected"],
                     "ours_error": est["error"], "paper": paper["expected_background"], "unit": "events",
                     "note": f"the paper's N_RSB x r_MC from {src} (the limit uses configs/stats/taulphi.yaml's per-process "
                             f"estimate: limits.json background_estimate); direct simulated SR count {est['sr_mc']:.3g}"
                     + ("; no estimate: no simulated RSB event" if est["expected"] is None else "")
                     + (f"; none selected in the SR: < {2.3 * max(meta['datasets'][d]['scale'] for d in backgrounds):.3g} events at "
                        "90 % CL (2.3 x the largest per-event weight)" if backgrounds and est["sr_mc"] == 0 else "")})
    return rows


def make_plots(result: dict[str, Any], plot_dir: Path) -> list[Path]:
    """The paper's kind of figures per channel (PNG + PDF): N-1 distributions of the preselection cuts,
    the BDT score and M(K+K-) after the preselection, M_tau and dE before and after the BDT, and the
    (M_tau, dE) plane with the SR box and the RSB band (the paper's Fig. 4, after all selections, and
    before the BDT), the simulated backgrounds stacked by process at the run's luminosity and the signal
    overlaid at ``plots.signal_branching_fraction``. ``plots/contents.json`` lists what each shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep
    from matplotlib.patches import Rectangle

    cfg = result["processor"].config
    meta = result["metadata"]
    hists = result["histograms"]
    backgrounds = [d for d, i in meta["datasets"].items() if i["kind"] == "background"]
    lumi = meta.get("luminosity_fb")
    br_ref = cfg.plots.signal_branching_fraction
    plot_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    contents: dict[str, Any] = {}
    weighting = "PID-weighted background" if meta.get("pid_weighting") else "background with the thrown PID"

    def save(fig: Any, name: str, drawn: dict[str, Any], shows: str) -> None:
        written.extend(save_figure(fig, plot_dir, name))
        contents[name] = {**drawn, "shows": shows, "signal_branching_fraction": br_ref if sig_scale is not None else None}

    box = cfg.signal_region
    sel = cfg.selection
    cut_lines = {"nminus1_thrust": [sel.thrust_max], "nminus1_cos_theta_miss": list(sel.cos_theta_miss_cm),
                 "nminus1_n_tracks": [sel.n_tracks_min - 0.5]}
    for channel in CHANNELS:
        sig = cfg.signal_datasets[channel]
        sig_scale, sig_label = stack_plots.signal_scale(meta, sig, br_ref, LABELS[channel])
        one_d = [(name, {"region": "presel"}, label, f"N-1: every preselection cut but this one ({weighting})")
                 for name, (_, _, _, label) in NMINUS1.items()]
        one_d += [("bdt_score", {"region": "presel"}, "BDT score (-1: no model)", "after the preselection"),
                  ("m_kk", {"region": "presel"}, r"$M_{K^+K^-}$ [GeV]", "after the preselection")]
        for region, when in (("presel", "before the BDT"), ("BDT", "after the BDT")):
            one_d += [("m_de", {"region": region, "de": sum}, r"$M_{\ell\phi}$ [GeV]", f"M_tau {when}, all dE"),
                      ("m_de", {"region": region, "m": sum}, r"$\Delta E$ [GeV]", f"dE {when}, all M_tau")]
        for name, slices, xlabel, shows in one_d:
            fig, ax = plt.subplots()
            drawn = stack_plots.stacked_distribution(ax, hists, backgrounds, sig, name, channel, sig_scale, sig_label, lumi,
                                                     **slices)
            for x in cut_lines.get(name, []):
                ax.axvline(x, color="tab:red", ls="--")
            ax.set_xlabel(xlabel)
            hep.label.exp_text("Belle II", "Simulation", ax=ax, loc=0)
            tag = name if name != "m_de" else f"{'m_tau' if 'de' in slices else 'de'}_{slices['region']}"
            save(fig, f"{channel}_{tag}", drawn, shows)
        for region, when in (("BDT", "after all selections (the paper's Fig. 4)"), ("presel", "before the BDT")):
            fig, ax = plt.subplots(figsize=(7, 6))
            drawn = stack_plots.stacked_plane(ax, hists, backgrounds, sig, "m_de", channel, sig_scale, sig_label, region=region)
            hw_m, hw_de = box.sr_n_sigma_m * box.sigma_m, box.sr_n_sigma_de * box.sigma_de
            ax.add_patch(Rectangle((box.m_mean - hw_m, box.de_mean - hw_de), 2 * hw_m, 2 * hw_de, fill=False, color="red", label="SR"))
            band = box.rsb_n_sigma_de[channel] * box.sigma_de
            ax.add_patch(Rectangle((box.rsb_m_range[0], box.de_mean - band), box.rsb_m_range[1] - box.rsb_m_range[0], 2 * band,
                                   fill=False, color="green", label=f"RSB band (+-{box.rsb_n_sigma_de[channel]:g} sigma dE)"))
            ax.set_xlim(*cfg.histograms.m_tau[1:])
            ax.set_ylim(-0.2, 0.2)
            ax.set_xlabel(r"$M_{\ell\phi}$ [GeV]")
            ax.set_ylabel(r"$\Delta E$ [GeV]")
            ax.set_title(f"{LABELS[channel]}, {when}" + (f", {lumi:g} fb$^{{-1}}$" if lumi else ""), fontsize="small")
            ax.legend(fontsize="xx-small")
            save(fig, f"{channel}_m_de_plane_{region}", drawn, f"(M_tau, dE) {when}; {weighting}")
    written.append(stack_plots.write_contents(plot_dir, lumi, contents, pid_weighting=meta.get("pid_weighting")))
    return written


def write_reports(result: dict[str, Any], out_dir: Path, console: Console) -> None:
    """validation.json, efficiency_report.txt and plots/ into the (temporary) output directory."""
    write_comparison(measure(result), out_dir, console, "tau -> l phi: ours vs Belle II (190 /fb)")
    make_plots(result, out_dir / "plots")

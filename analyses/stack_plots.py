"""The papers' kind of report figures, shared by the searches: simulated backgrounds stacked by process
(scaled to the run's luminosity), the signal overlaid at a stated branching fraction.

* ``signal_scale``: the factor that takes a signal dataset's histograms (normalised to the BR its
  cross section stands for, the forced sub-decays divided out as in the stats layer) to ``br_ref``.
* ``stacked_distribution``: a 1D distribution (an N-1 plot or a projection) on ``ax``.
* ``stacked_plane``: a 2D signal-variable plane: the summed background as the colour scale, each
  process's filled bins marked in its own colour, the signal as contours holding 50 / 90 % of it.
Both return what they drew (``contents.json`` records it); a plot with no selected background says so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hist
import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.production import signal_sample_fraction
from belle_rare.core.histograms import summed


def simulated_branching_fraction(meta: dict[str, Any], dataset: str) -> float | None:
    """BR(tau -> signal) the signal histograms are normalised to: sigma / (2 sigma_tautau), the
    forced sub-decays and the gamma* slice share divided out (simulation/production.py
    ``signal_sample_fraction``, as stats/search_limits.py ``reference_value``); None if unknown."""
    info = meta["datasets"].get(dataset, {})
    sigma, process = info.get("cross_section_nb"), info.get("process")
    if sigma is None or process is None or process not in load_catalogue().processes:
        return None
    return float(sigma) / signal_sample_fraction(process, meta["experiment"]) / (2.0 * load_experiment(meta["experiment"]).cross_section("tautau"))


def signal_scale(meta: dict[str, Any], dataset: str, br_ref: float, label: str) -> tuple[float | None, str]:
    """(factor to ``br_ref``, legend label); (None, "as simulated" label) when the normalisation is unknown."""
    br_sim = simulated_branching_fraction(meta, dataset)
    if not br_sim:
        return None, f"{dataset} (normalisation unknown, as simulated)"
    return br_ref / br_sim, f"{label}, $\\mathcal{{B}} = {br_ref:.1e}$"


def summed_regions(hists: dict[str, dict[str, hist.Hist]], source: str, datasets: str | list[str], channel: str,
                   **sel: Any) -> hist.Hist | None:
    """``core.histograms.summed``, where ``region`` may also be a list of regions (their sum)."""
    regions = sel.pop("region", None)
    if not isinstance(regions, (list, tuple)):
        return summed(hists, source, datasets, channel, **({} if regions is None else {"region": regions}), **sel)
    parts = [h for r in regions if (h := summed(hists, source, datasets, channel, region=r, **sel)) is not None]
    return sum(parts[1:], parts[0]) if parts else None


def background_parts(hists: dict[str, dict[str, hist.Hist]], backgrounds: list[str], source: str, channel: str,
                     **sel: Any) -> list[tuple[str, hist.Hist]]:
    """(dataset, histogram) of every background with a selected event, smallest yield first (stack order)."""
    parts = [(d, h) for d in backgrounds if (h := summed_regions(hists, source, d, channel, **sel)) is not None
             and h.values().sum() > 0]
    return sorted(parts, key=lambda part: part[1].values().sum())


def process_colour(backgrounds: list[str], dataset: str) -> str:
    """A background's colour from its place in the search's list, so it keeps it in every panel whatever
    the stack order (C0, tab:blue, is the signal's; backgrounds take C1 ... C9, repeating after nine)."""
    return f"C{1 + backgrounds.index(dataset) % 9}"


def no_background_note(backgrounds: list[str]) -> str:
    return (f"no simulated background event selected ({', '.join(backgrounds)})" if backgrounds
            else "no background samples in the input")


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.25, text, transform=ax.transAxes, ha="center", va="center", fontsize="x-small", color="tab:red",
            bbox={"facecolor": "white", "edgecolor": "tab:red"})


def stacked_distribution(ax: Any, hists: dict[str, dict[str, hist.Hist]], backgrounds: list[str], signal: str,
                         source: str, channel: str, sig_scale: float | None, sig_label: str,
                         lumi: float | None, **sel: Any) -> dict[str, Any]:
    """Backgrounds stacked by process, the signal (x ``sig_scale``) overlaid; a log scale when the
    background tops the signal by more than 100 (one simulated event can weigh 10^4). Returns the yields drawn."""
    import mplhep as hep

    parts = background_parts(hists, backgrounds, source, channel, **sel)
    if parts:
        hep.histplot([h for _, h in parts], stack=True, histtype="fill", ax=ax,
                     color=[process_colour(backgrounds, d) for d, _ in parts],
                     label=[f"{d} ({h.values().sum():.3g})" for d, h in parts])
    else:
        _note(ax, no_background_note(backgrounds))
    sig = summed_regions(hists, source, signal, channel, **sel)
    sig_total = None
    if sig is not None:
        sig = sig * (sig_scale or 1.0)
        sig_total = float(sig.values().sum())
        hep.histplot(sig, color="tab:blue", lw=2, yerr=False, label=f"{sig_label} ({sig_total:.3g})", ax=ax)
        top_bkg = sum(h.values() for _, h in parts).max() if parts else 0.0
        if sig.values().max() > 0 and top_bkg > 100 * sig.values().max():
            ax.set_yscale("log")
            ax.set_ylim(0.1 * sig.values()[sig.values() > 0].min(), 10 * top_bkg)
    ax.set_ylabel(f"events / {lumi:g} fb$^{{-1}}$" if lumi else "events")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")
    return {"backgrounds": {d: float(h.values().sum()) for d, h in parts}, "signal": sig_total}


def stacked_plane(ax: Any, hists: dict[str, dict[str, hist.Hist]], backgrounds: list[str], signal: str,
                  source: str, channel: str, sig_scale: float | None, sig_label: str, **sel: Any) -> dict[str, Any]:
    """The summed background as the colour scale, each process's filled bins marked in its own colour,
    the signal (x ``sig_scale``) as contours holding 50 % and 90 % of its bins' content. Returns the yields drawn."""
    import mplhep as hep

    parts = background_parts(hists, backgrounds, source, channel, **sel)
    if parts:
        hep.hist2dplot(sum(h for _, h in parts), ax=ax, cmap="Greys", cbar=True, cmin=1e-12)
        for d, h in parts:
            xc, yc = np.meshgrid(h.axes[0].centers, h.axes[1].centers, indexing="ij")
            filled = h.values() > 0
            ax.scatter(xc[filled], yc[filled], s=10, marker="s", facecolors="none", edgecolors=process_colour(backgrounds, d),
                       label=f"{d} ({h.values().sum():.3g} events)")
    else:
        _note(ax, no_background_note(backgrounds))
    sig = summed_regions(hists, source, signal, channel, **sel)
    sig_total = None
    if sig is not None and sig.values().sum() > 0:
        xc, yc = np.meshgrid(sig.axes[0].centers, sig.axes[1].centers, indexing="ij")
        values = sig.values() * (sig_scale or 1.0)
        sig_total = float(values.sum())
        levels = np.unique(contour_levels(values, (0.5, 0.9)))
        if len(levels):
            ax.contour(xc, yc, values, levels=levels, colors="tab:blue")
        ax.plot([], [], color="tab:blue", label=f"{sig_label} ({sig_total:.3g} events; 50 / 90 % contours)")
    return {"backgrounds": {d: float(h.values().sum()) for d, h in parts}, "signal": sig_total}


def contour_levels(values: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    """Bin-content thresholds whose bins above hold ``fractions`` of the total (highest bins first)."""
    flat = np.sort(values[values > 0].ravel())[::-1]
    if flat.size == 0:
        return np.array([])
    cumulative = np.cumsum(flat) / flat.sum()
    return np.sort(np.array([flat[min(np.searchsorted(cumulative, f), flat.size - 1)] for f in fractions]))


def write_contents(plot_dir: Path, lumi: float | None, contents: dict[str, Any], **extra: Any) -> Path:
    """``plots/contents.json``: what each plot drew, at the run's luminosity (plus ``extra`` keys)."""
    path = plot_dir / "contents.json"
    path.write_text(json.dumps({"luminosity_fb": lumi, **extra, "plots": contents}, indent=1))
    return path

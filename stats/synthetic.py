"""Synthetic run output in the processors' histogram convention (see :mod:`stats.histograms`).

For tests and examples of the stats layer before (or without) running a processor: exact bin
contents and variances are written into ``hist.Hist`` objects, saved with ``coffea.util.save``
next to a ``metadata.json``, exactly where ``belle-rare limit SEARCH --results DIR`` looks.
"""

from __future__ import annotations

import json
from pathlib import Path

import hist
import numpy as np

from belle_rare.stats.histograms import CATEGORY_AXES, NOMINAL


def empty_histogram(*fit_axes: hist.axis.AxesMixin) -> hist.Hist:
    """A histogram with the four growing category axes, then ``fit_axes``, Weight() storage."""
    cats = [hist.axis.StrCategory([], name=name, growth=True) for name in CATEGORY_AXES]
    return hist.Hist(*cats, *fit_axes, storage=hist.storage.Weight())


def set_bins(
    h: hist.Hist,
    dataset: str,
    channel: str,
    region: str,
    values: np.ndarray | list[float] | float,
    variances: np.ndarray | list[float] | float | None = None,
    variation: str = NOMINAL,
) -> None:
    """Set the fit-variable bins of one category cell (values and variances, adding to what is there)."""
    fit_axes = list(h.axes[4:])
    shape = tuple(ax.size for ax in fit_axes)
    values = np.broadcast_to(np.asarray(values, dtype=float), shape)
    variances = values if variances is None else np.broadcast_to(np.asarray(variances, dtype=float), shape)
    # a zero-weight fill creates the categories (growth axes)
    first = {ax.name: ax.value(0) for ax in fit_axes}
    h.fill(dataset=dataset, channel=channel, region=region, variation=variation, weight=0.0, **first)
    idx = tuple(h.axes[name].index(v) for name, v in zip(CATEGORY_AXES, (dataset, channel, region, variation)))
    view = h.view(flow=False)
    view.value[idx] += values
    view.variance[idx] += variances


def write_run_output(
    results_dir: str | Path,
    search: str,
    experiment: str,
    luminosity_fb: float,
    datasets: dict[str, dict],
    histograms: dict[str, hist.Hist],
) -> Path:
    """Write ``DIR/SEARCH/histograms.coffea`` and ``metadata.json``; returns ``DIR/SEARCH``."""
    import coffea.util

    out = Path(results_dir) / search
    out.mkdir(parents=True, exist_ok=True)
    coffea.util.save(histograms, str(out / "histograms.coffea"))
    meta = {"search": search, "experiment": experiment, "luminosity_fb": luminosity_fb, "datasets": datasets}
    (out / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


# the SEARCHES.md systematics as the taulgamma processor fills them (relative, per channel)
TAULGAMMA_VARIATIONS = {
    "mugamma": {"tracking": 0.007, "photonEff": 0.020, "photonEnergy": 0.032, "luminosity": 0.014, "trigger": 0.021},
    "egamma": {"tracking": 0.007, "photonEff": 0.020, "photonEnergy": 0.032, "luminosity": 0.014, "trigger": 0.034},
}
SIGMA_TAUTAU_NB = 0.919


def taulgamma_counting_output(
    results_dir: str | Path,
    luminosity_fb: float = 988.0,
    observed: dict[str, float] | None = None,
    background: dict[str, tuple[float, float]] | None = None,
    efficiency: dict[str, float] | None = None,
    reference_br: float = 1.0e-7,
    n_tau_pairs_per_fb: float = 912.0e6 / 988.0,
    variations: dict[str, dict[str, float]] | None = None,
) -> Path:
    """A tau -> l gamma run output laid out like the taulgamma processor's and the runner's.

    ``mbc_de`` has a categorical ``tag`` axis and an M_bc axis after the category axes; regions
    "signal" (the ellipse) and "outside"; datasets ``sig_taumugamma``, ``sig_tauegamma``
    (metadata ``cross_section_nb`` = 2 sigma_tautau BR_ref, as the runner writes) and ``tautau``.
    Defaults are the paper's numbers at 988/fb: n = 5 / 5, b = 5.8 +- 0.4 / 5.1 +- 0.4 (the +- as
    simulation statistics), efficiency 3.7 % / 2.9 %; the background scales with the luminosity;
    ``observed=None`` writes no data dataset (Asimov). Signal yields are 2 N_tautau BR_ref eps;
    every simulated yield gets "<syst>Up/Down" variations of ``variations[channel]``.
    """
    scale = luminosity_fb / 988.0
    background = background or {"mugamma": (5.8, 0.4), "egamma": (5.1, 0.4)}
    efficiency = efficiency or {"mugamma": 0.037, "egamma": 0.029}
    variations = TAULGAMMA_VARIATIONS if variations is None else variations
    h = empty_histogram(
        hist.axis.StrCategory(["lepton", "pi", "rho"], name="tag"),
        hist.axis.Regular(2, 1.75, 1.80, name="mbc", label="M_bc [GeV]"),
    )
    split = np.array([[0.2, 0.2], [0.15, 0.15], [0.15, 0.15]])  # tag x M_bc, sums to 1
    n_pairs = n_tau_pairs_per_fb * luminosity_fb
    datasets: dict[str, dict] = {"tautau": {"kind": "background", "cross_section_nb": SIGMA_TAUTAU_NB, "parameters": {}}}

    def mc(dataset: str, channel: str, region: str, total: float, variance: float) -> None:
        set_bins(h, dataset, channel, region, total * split, variance * split)
        for syst, rel in variations.get(channel, {}).items():
            for suffix, f in (("Up", 1 + rel), ("Down", 1 - rel)):
                set_bins(h, dataset, channel, region, f * total * split, variance * split, variation=syst + suffix)

    for ch in ("mugamma", "egamma"):
        signal_ds = f"sig_tau{ch}"
        datasets[signal_ds] = {"kind": "signal", "cross_section_nb": 2 * SIGMA_TAUTAU_NB * reference_br, "parameters": {}}
        s = 2.0 * n_pairs * reference_br * efficiency[ch]
        mc(signal_ds, ch, "signal", s, (0.01 * s) ** 2)
        b, db = background[ch]
        b, db = b * scale, db * np.sqrt(scale)
        mc("tautau", ch, "signal", b, db**2)
        mc("tautau", ch, "outside", 10 * b, 10 * db**2)
        if observed is not None:
            datasets["data"] = {"kind": "data", "cross_section_nb": 0.0, "parameters": {}}
            set_bins(h, "data", ch, "signal", observed[ch] * split, observed[ch] * split)
    return write_run_output(results_dir, "taulgamma", "belle", luminosity_fb, datasets, {"mbc_de": h})

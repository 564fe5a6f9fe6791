"""Synthetic run output in the processors' histogram layout (see :mod:`belle_rare.core.histograms`).

For tests and examples of the stats layer before (or without) running a processor: exact bin
contents and variances are written into ``hist.Hist`` objects, one per (dataset, name) as the
processors fill them (``{dataset: {name: Hist}}``), saved with ``coffea.util.save`` next to a
``metadata.json``, exactly where ``belle-rare limit SEARCH --results DIR`` looks::

    hists = {}
    h = book(hists, "yields", count_axis())      # channel, region, variation, count
    set_bins(h, "tautau", "3mu", "SR_pass", 0.5, 0.05)
    write_run_output(DIR, "tau3mu", "belle2", 424.0, datasets, hists)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import hist
import numpy as np

from belle_rare.core.atomic import atomic_path, write_json
from belle_rare.core.histograms import NOMINAL, RunHistograms, has_variations, new_hist, physics_axes
from belle_rare.core.histograms import count_axis  # noqa: F401  (re-exported: the axis of a counting histogram)
from belle_rare.simulation.production import signal_sample_fraction

def empty_histogram(*fit_axes: hist.axis.AxesMixin, systematics: bool = True) -> hist.Hist:
    """``channel``, ``region`` (and ``variation`` if ``systematics``) growing axes, then ``fit_axes``; Weight()."""
    return new_hist(*fit_axes, systematics=systematics)


@dataclass
class Booked:
    """One histogram name of a run: the empty ``template`` each dataset's histogram starts from,
    and the run's ``{dataset: {name: Hist}}`` it fills."""

    histograms: RunHistograms
    name: str
    template: hist.Hist

    def of(self, dataset: str) -> hist.Hist:
        """The dataset's histogram (created from the template on first use)."""
        hists = self.histograms.setdefault(dataset, {})
        if self.name not in hists:
            hists[self.name] = self.template.copy()
        return hists[self.name]

    def set_bins(self, dataset, channel, region, values, variances=None, variation: str = NOMINAL) -> None:
        set_bins(self, dataset, channel, region, values, variances, variation)


def book(histograms: RunHistograms, name: str, *fit_axes: hist.axis.AxesMixin, systematics: bool = True) -> Booked:
    """Book histogram ``name`` with ``fit_axes`` in ``histograms`` (``systematics``: a ``variation`` axis)."""
    return Booked(histograms, name, empty_histogram(*fit_axes, systematics=systematics))


def set_bins(
    booked: Booked,
    dataset: str,
    channel: str,
    region: str,
    values: np.ndarray | list[float] | float,
    variances: np.ndarray | list[float] | float | None = None,
    variation: str = NOMINAL,
) -> None:
    """Set the fit-variable bins of one category cell of ``dataset``'s histogram (values and
    variances, adding to what is there)."""
    h = booked.of(dataset)
    fit_axes = physics_axes(h)
    shape = tuple(ax.size for ax in fit_axes)
    values = np.broadcast_to(np.asarray(values, dtype=float), shape)
    variances = values if variances is None else np.broadcast_to(np.asarray(variances, dtype=float), shape)
    cells = {"channel": channel, "region": region}
    if has_variations(h):
        cells["variation"] = variation
    elif variation != NOMINAL:
        raise ValueError(f"histogram '{booked.name}' has no variation axis: cannot set '{variation}'")
    # a zero-weight fill creates the categories (growth axes)
    first = {ax.name: ax.value(0) for ax in fit_axes}
    h.fill(**cells, weight=0.0, **first)
    idx = tuple(h.axes[name].index(v) for name, v in cells.items())
    view = h.view(flow=False)
    view.value[idx] += values
    view.variance[idx] += variances


def write_run_output(
    results_dir: str | Path,
    search: str,
    experiment: str,
    luminosity_fb: float,
    datasets: dict[str, dict],
    histograms: RunHistograms,
    extra_metadata: dict | None = None,
) -> Path:
    """Write ``DIR/SEARCH/histograms.coffea`` (``histograms`` as given) and ``metadata.json`` (plus
    ``extra_metadata``, e.g. the runner's ``sr_area_fraction``); returns ``DIR/SEARCH``."""
    import coffea.util

    out = Path(results_dir) / search
    with atomic_path(out / "histograms.coffea") as tmp:
        coffea.util.save(histograms, str(tmp))
    meta = {"search": search, "experiment": experiment, "luminosity_fb": luminosity_fb, "datasets": datasets, **(extra_metadata or {})}
    write_json(out / "metadata.json", meta)
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

    ``yields`` (the counting histogram the stats model reads) has the physics axis ``tag`` (the
    tag classes, categorical) after channel, region and variation; ``mbc_de`` (tag, M_bc, dE) is
    a nominal-only plane, as the processor's. Regions "signal" (the ellipse) and "outside";
    datasets ``sig_taumugamma``, ``sig_tauegamma`` (metadata ``cross_section_nb`` = 2
    sigma_tautau BR_ref x the gamma* slice share, as the runner writes) and ``tautau``.
    Defaults are the paper's numbers at 988/fb: n = 5 / 5, b = 5.8 +- 0.4 / 5.1 +- 0.4 (the +- as
    simulation statistics), efficiency 3.7 % / 2.9 %; the background scales with the luminosity;
    ``observed=None`` writes no data dataset (Asimov). Signal yields are 2 N_tautau BR_ref eps;
    every simulated yield gets "<syst>Up/Down" variations of ``variations[channel]``.
    """
    scale = luminosity_fb / 988.0
    background = background or {"mugamma": (5.8, 0.4), "egamma": (5.1, 0.4)}
    efficiency = efficiency or {"mugamma": 0.037, "egamma": 0.029}
    variations = TAULGAMMA_VARIATIONS if variations is None else variations
    histograms: RunHistograms = {}
    tag = hist.axis.StrCategory(["lepton", "pi", "rho"], name="tag", label="tag class")
    counts = book(histograms, "yields", tag)
    plane = book(
        histograms, "mbc_de", tag, hist.axis.Regular(2, 1.75, 1.80, name="mbc", label="M_bc [GeV]"),
        hist.axis.Regular(2, -0.1, 0.1, name="de", label="dE/sqrt(s)"), systematics=False,
    )
    split = np.array([0.4, 0.3, 0.3])  # tag classes, sums to 1
    plane_split = split[:, None, None] * np.full((2, 2), 0.25)
    n_pairs = n_tau_pairs_per_fb * luminosity_fb
    datasets: dict[str, dict] = {"tautau": {"kind": "background", "cross_section_nb": SIGMA_TAUTAU_NB, "parameters": {}}}

    def mc(dataset: str, channel: str, region: str, total: float, variance: float) -> None:
        set_bins(counts, dataset, channel, region, total * split, variance * split)
        set_bins(plane, dataset, channel, region, total * plane_split, variance * plane_split)
        for syst, rel in variations.get(channel, {}).items():
            for suffix, f in (("Up", 1 + rel), ("Down", 1 - rel)):
                set_bins(counts, dataset, channel, region, f * total * split, variance * split, variation=syst + suffix)

    for ch in ("mugamma", "egamma"):
        signal_ds = f"sig_tau{ch}"
        # as the runner writes it: the sample's cross section carries its gamma* slice share
        sigma = 2 * SIGMA_TAUTAU_NB * reference_br * signal_sample_fraction(signal_ds, "belle")
        datasets[signal_ds] = {"kind": "signal", "process": signal_ds, "cross_section_nb": sigma, "parameters": {}}
        s = 2.0 * n_pairs * reference_br * efficiency[ch]
        mc(signal_ds, ch, "signal", s, (0.01 * s) ** 2)
        b, db = background[ch]
        b, db = b * scale, db * np.sqrt(scale)
        mc("tautau", ch, "signal", b, db**2)
        mc("tautau", ch, "outside", 10 * b, 10 * db**2)
        if observed is not None:
            datasets["data"] = {"kind": "data", "cross_section_nb": 0.0, "parameters": {}}
            set_bins(counts, "data", ch, "signal", observed[ch] * split, observed[ch] * split)
            set_bins(plane, "data", ch, "signal", observed[ch] * plane_split, observed[ch] * plane_split)
    return write_run_output(results_dir, "taulgamma", "belle", luminosity_fb, datasets, histograms)


def taulgamma_plane_output(
    results_dir: str | Path,
    background: np.ndarray,
    weight: float,
    signal_events: float = 2.0,
    signal_sigma_scale: float = 0.5,
    flat_signal: bool = False,
    rng: np.random.Generator | None = None,
    luminosity_fb: float = 988.0,
    reference_br: float = 1.0e-7,
    data: np.ndarray | None = None,
) -> Path:
    """A tau -> l gamma run output with the processor's (M_bc, dE/sqrt(s)) plane ``mbc_de`` (200 x 150
    bins, 1.5-2.0 GeV x -0.1-0.05) and the ``yields`` it sums to, for the sideband fit.

    ``background``: expected simulated tautau events per plane bin (Poisson-drawn with ``rng``, as
    given without), each weighing ``weight``; signals: ``signal_events`` (weighted, 2000 simulated
    events) inside each channel's ellipse, Gaussian about its centre with ``signal_sigma_scale`` x the
    half-axes, or (``flat_signal``) distributed as ``background``. Events are split into "signal"
    (bin centre in the ellipse of the search config) and "outside"; tag class "lepton" only.
    ``data``: a pseudo-data plane (events per bin, weight 1), dataset ``data`` of kind data."""
    from belle_rare.processors import registry
    from belle_rare.stats.sideband_fit import PlaneGeometry

    search_config = registry.get_search("taulgamma").load_config()
    histograms: RunHistograms = {}
    tag = hist.axis.StrCategory(["lepton", "pi", "rho"], name="tag", label="tag class")
    counts = book(histograms, "yields", tag)
    plane = book(histograms, "mbc_de", tag, hist.axis.Regular(200, 1.5, 2.0, name="mbc"), hist.axis.Regular(150, -0.1, 0.05, name="de"),
                 systematics=False)
    centres = np.meshgrid(plane.template.axes["mbc"].centers, plane.template.axes["de"].centers, indexing="ij")
    datasets = {"tautau": {"kind": "background", "process": "tautau", "cross_section_nb": SIGMA_TAUTAU_NB, "scale": weight, "parameters": {}}}
    one_tag = np.array([1.0, 0.0, 0.0])

    def fill(dataset: str, channel: str, events: np.ndarray, w: float, inside: np.ndarray) -> None:
        for region, mask in (("signal", inside), ("outside", ~inside)):
            grid = np.where(mask, events, 0.0)
            set_bins(plane, dataset, channel, region, one_tag[:, None, None] * grid * w, one_tag[:, None, None] * grid * w * w)
            set_bins(counts, dataset, channel, region, one_tag * grid.sum() * w, one_tag * grid.sum() * w * w)

    for ch in ("mugamma", "egamma"):
        g = PlaneGeometry(**search_config.sideband_plane(ch))
        inside = g.contains(*centres)
        fill("tautau", ch, rng.poisson(background).astype(float) if rng is not None else background, weight, inside)
        if data is not None:
            datasets["data"] = {"kind": "data", "cross_section_nb": 0.0, "scale": 1.0, "parameters": {}}
            fill("data", ch, data, 1.0, inside)
        sig = f"sig_tau{ch}"
        if flat_signal:
            s = background * inside
        else:
            s = np.exp(-0.5 * (((centres[0] - g.mbc_mean) / (signal_sigma_scale * g.mbc_half_axis)) ** 2
                               + ((centres[1] - g.de_mean) / (signal_sigma_scale * g.de_half_axis)) ** 2)) * inside
        s = 2000.0 * s / s.sum()
        w_sig = signal_events / 2000.0
        sigma = 2 * SIGMA_TAUTAU_NB * reference_br * signal_sample_fraction(sig, "belle")  # as the runner writes it
        datasets[sig] = {"kind": "signal", "process": sig, "cross_section_nb": sigma, "scale": w_sig, "parameters": {}}
        fill(sig, ch, s, w_sig, inside)
    return write_run_output(results_dir, "taulgamma", "belle", luminosity_fb, datasets, histograms)

"""Limit curves of a scan (``stats.scan_table.ScanTable``) as plots and as a HEPData record.

* ``plot_limit_curve`` -- the papers' limit-curve plot: observed (solid), expected median (dashed) with
  the +-1 sigma (green) and +-2 sigma (yellow) bands, against the mass, one curve (channel, lifetime);
* ``plot_limit_grid`` -- several curves per panel, one panel per channel (e.g. the bkscalar paper's
  Fig. 2: B modes in columns, S decays in rows, lifetimes as colours), observed solid, expected dashed;
* ``write_hepdata`` -- a ``hepdata_lib`` Submission with one table per curve (independent variable: the
  mass; dependent: the observed limit, and the expected limit with the bands as asymmetric
  uncertainties), written to ``OUT/<search>/hepdata/`` (YAML files + ``submission.tar.gz``, validated).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from belle_rare.core.atomic import save_figure  # noqa: E402
from belle_rare.stats.plots import EXPERIMENT_LABELS  # noqa: E402
from belle_rare.stats.scan_table import EXPECTED_COLUMNS, TOY_EXPECTED_COLUMNS, ScanTable  # noqa: E402

if TYPE_CHECKING:
    from hepdata_lib import Submission

GREEN, YELLOW = "#607641", "#F5BB54"  # the stats.plots Brazil-band colours
LIFETIME_COLOURS = ("#2ca02c", "#ff7f0e", "#9467bd", "#1f77b4", "#d62728", "#8c564b", "#e377c2", "#7f7f7f")


def curve_label(channel: str, lifetime_cm: float) -> str:
    """``channel`` or ``channel, c tau = X cm`` (plain text: HEPData descriptions)."""
    return channel if math.isnan(lifetime_cm) else f"{channel}, c tau = {lifetime_cm:g} cm"


def with_gaps(x: np.ndarray, *ys: np.ndarray, factor: float = 5.0) -> tuple[np.ndarray, ...]:
    """Sorted ``x`` and ``ys`` with a NaN point inserted where consecutive x are more than ``factor`` times the
    smaller of the neighbouring spacings apart (vetoed mass windows), so lines break there instead of bridging
    the gap. Local, not the median spacing: a scan in equal steps of M^2 (or of the resolution) has steps that
    grow smoothly towards low mass, which a global yardstick would cut into isolated, invisible points."""
    order = np.argsort(x)
    x = np.asarray(x, float)[order]
    ys = tuple(np.asarray(y, float)[..., order] for y in ys)
    if len(x) < 3:
        return (x, *ys)
    step = np.diff(x)
    before = np.concatenate([[np.inf], step[:-1]])
    after = np.concatenate([step[1:], [np.inf]])
    gaps = np.flatnonzero(step > factor * np.minimum(before, after)) + 1
    x = np.insert(x, gaps, np.nan)
    return (x, *(np.insert(y, gaps, np.nan, axis=-1) for y in ys))


def _experiment_label(ax, experiment: str, lumi_fb: float | None) -> None:
    ax.text(0.0, 1.01, f"{EXPERIMENT_LABELS.get(experiment, experiment)} (simulation)", transform=ax.transAxes,
            fontsize=11, weight="bold", va="bottom")
    if lumi_fb is not None:
        ax.text(1.0, 1.01, f"{lumi_fb:g} fb$^{{-1}}$", transform=ax.transAxes, fontsize=10, ha="right", va="bottom")


def plot_limit_curve(mass: np.ndarray, observed: np.ndarray, expected: np.ndarray, path: str | Path, ylabel: str,
                     title: str = "", experiment: str = "", lumi_fb: float | None = None,
                     xlabel: str = r"$m$ [GeV/$c^2$]", logy: bool = True,
                     others: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None,
                     label: str = "") -> list[Path]:
    """One limit curve: ``expected`` (5, H) rows -2..+2 sigma. PNG + PDF, atomically. ``others``: further
    curves drawn over it without bands, label -> (mass, observed, expected median); ``label`` names the main
    curve in the legend when there are others."""
    x, obs, exp = with_gaps(np.asarray(mass), np.asarray(observed), np.asarray(expected))
    suffix = f" ({label})" if label else ""
    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(8, 6))
    try:
        ax.fill_between(x, exp[0], exp[4], color=YELLOW, lw=0, label=r"Expected $\pm 2\sigma$")
        ax.fill_between(x, exp[1], exp[3], color=GREEN, lw=0, label=r"Expected $\pm 1\sigma$")
        ax.plot(x, exp[2], "k--", lw=1.2, label="Expected" + suffix)
        ax.plot(x, obs, "k-", lw=1.2, label="Observed" + suffix)
        for (name, (m_o, obs_o, exp_o)), colour in zip((others or {}).items(), LIFETIME_COLOURS[1:]):
            x_o, o_o, e_o = with_gaps(np.asarray(m_o), np.asarray(obs_o), np.asarray(exp_o)[None, :])
            ax.plot(x_o, e_o[0], "--", color=colour, lw=1.0, label=f"Expected ({name})")
            ax.plot(x_o, o_o, "-", color=colour, lw=1.2, label=f"Observed ({name})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel, fontsize=16)
        if logy and np.all(exp[0][np.isfinite(exp[0])] > 0):
            ax.set_yscale("log")
        if title:
            ax.set_title(title, fontsize=12, pad=22)
        ax.legend(loc="best", fontsize=11)
        _experiment_label(ax, experiment, lumi_fb)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_limit_grid(table: ScanTable, path: str | Path, ylabel: str,
                    panel_of: Callable[[str], tuple[int, int]] | None = None, panel_titles: Mapping[str, str] | None = None,
                    experiment: str = "", lumi_fb: float | None = None, xlabel: str = r"$m$ [GeV/$c^2$]",
                    column: str = "observed", shaded: Mapping[str, list[tuple[float, float]]] | None = None) -> list[Path]:
    """Every curve of ``table``: one panel per channel (``panel_of(channel)`` -> (row, col); default one row),
    one colour per lifetime; ``column`` (solid) and the expected median (dashed, thin); ``shaded``: mass
    windows per channel drawn grey (e.g. vetoed regions); lines break at gaps in the hypotheses."""
    channels = sorted(table.frame["channel"].unique())
    places = {c: (panel_of(c) if panel_of else (0, i)) for i, c in enumerate(channels)}
    nrows = 1 + max(r for r, _ in places.values())
    ncols = 1 + max(c for _, c in places.values())
    lifetimes = sorted({lt for (_, lt), _ in table.curves()}, key=lambda v: (math.isnan(v), v))
    # NaN (no lifetime) is not a usable dict key (nan != nan): key the colours by the lifetime's text
    colour = {f"{lt:g}": LIFETIME_COLOURS[i % len(LIFETIME_COLOURS)] for i, lt in enumerate(lifetimes)}
    plt.style.use(mplhep.style.ROOT)
    fig, axes = plt.subplots(nrows, ncols, figsize=(6.5 * ncols, 4.2 * nrows), squeeze=False)
    try:
        used = set()
        for (channel, lifetime), rows in table.curves():
            r, c = places[channel]
            ax = axes[r, c]
            used.add((r, c))
            label = "no lifetime" if math.isnan(lifetime) else f"c$\\tau$ = {lifetime:g} cm"
            x, y, e = with_gaps(rows["mass"].to_numpy(), rows[column].to_numpy(), rows["expected"].to_numpy())
            ax.plot(x, y, "-", color=colour[f"{lifetime:g}"], lw=1.0, label=label)
            ax.plot(x, e, "--", color=colour[f"{lifetime:g}"], lw=0.6)
            for lo, hi in (shaded or {}).get(channel, []):
                ax.axvspan(lo, hi, color="0.85", lw=0, zorder=0)
            ax.set_title((panel_titles or {}).get(channel, channel), fontsize=12)
            if (rows[column] > 0).all():
                ax.set_yscale("log")
        for r in range(nrows):
            for c in range(ncols):
                ax = axes[r, c]
                if (r, c) not in used:
                    ax.set_visible(False)
                    continue
                ax.set_xlabel(xlabel, fontsize=12)
                ax.set_ylabel(ylabel, fontsize=12)
                ax.tick_params(labelsize=10)
                ax.legend(loc="best", fontsize=8, title="solid: " + column + ", dashed: expected", title_fontsize=8)
        _experiment_label(axes[0, 0], experiment, lumi_fb)
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def hepdata_submission(table: ScanTable, quantity: str, unit: str = "", cl: float = 0.95, comment: str = "",
                       mass_label: str = "M") -> "Submission":
    """A hepdata_lib Submission: one table per (channel, lifetime) curve."""
    from hepdata_lib import Submission, Table, Uncertainty, Variable

    sub = Submission()
    sub.comment = comment or f"{100 * cl:g}% CL upper limits on {quantity} (belle-rare, simulated data)"
    for (channel, lifetime), rows in table.curves():
        name = f"Limits {channel}" + ("" if math.isnan(lifetime) else f" ctau {lifetime:g} cm")
        tab = Table(name)
        tab.description = f"{100 * cl:g}% CL upper limits on {quantity} versus {mass_label}, {curve_label(channel, lifetime)}."
        tab.location = "belle-rare scan table (scan.parquet)"
        tab.keywords["cmenergies"] = [10.58]  # GeV: e+e- at the Upsilon(4S)
        mass = Variable(mass_label, is_independent=True, is_binned=False, units="GeV")
        mass.values = rows["mass"].to_numpy()
        tab.add_variable(mass)
        observed = Variable(f"Observed {quantity} upper limit", is_independent=False, is_binned=False, units=unit)
        observed.values = rows["observed"].to_numpy()
        expected = []
        for columns, label in ((EXPECTED_COLUMNS, "Expected"), (TOY_EXPECTED_COLUMNS, "Expected (background-only toys)")):
            if not set(columns) <= set(rows.columns):
                continue
            var = Variable(f"{label} {quantity} upper limit", is_independent=False, is_binned=False, units=unit)
            exp = rows[list(columns)].to_numpy().T
            var.values = exp[2]
            for sigma, (lo, hi) in ((1, (1, 3)), (2, (0, 4))):
                band = Uncertainty(f"{sigma} sigma", is_symmetric=False)
                band.values = list(zip(exp[lo] - exp[2], exp[hi] - exp[2]))
                var.add_uncertainty(band)
            expected.append(var)
        for var in (observed, *expected):
            var.add_qualifier("CL", f"{100 * cl:g}%")
            var.add_qualifier("channel", channel)
            if not math.isnan(lifetime):
                var.add_qualifier("c tau", lifetime, "cm")
            tab.add_variable(var)
        sub.add_table(tab)
    return sub


def write_hepdata(table: ScanTable, out_dir: str | Path, quantity: str, unit: str = "", cl: float = 0.95,
                  comment: str = "", validate: bool = True) -> list[Path]:
    """The record of ``table`` under ``out_dir`` (usually OUT/<search>/hepdata/): submission.yaml, one YAML
    per table and submission.tar.gz. Built in a temporary directory and moved in place, so a failure leaves
    no half-written record (hepdata_lib writes its tarball into the working directory: it runs there)."""
    out_dir = Path(out_dir)
    sub = hepdata_submission(table, quantity, unit, cl, comment)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        with contextlib.chdir(tmp):
            sub.create_files("record", validate=validate)
            os.replace("submission.tar.gz", Path("record") / "submission.tar.gz")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp / "record", out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(out_dir.iterdir())

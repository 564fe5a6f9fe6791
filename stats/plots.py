"""Limit plots: CLs versus the POI for a single limit, Brazil bands for scans (mplhep style)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from belle_rare.stats.limits import LimitResult  # noqa: E402
from belle_rare.core.atomic import save_figure  # noqa: E402

EXPERIMENT_LABELS = {"belle": "Belle", "belle2": "Belle II"}


def _label(ax, experiment: str, lumi_fb: float | None) -> None:
    text = EXPERIMENT_LABELS.get(experiment, experiment)
    ax.text(0.02, 1.01, f"{text} (simulation)", transform=ax.transAxes, fontsize=13, weight="bold", va="bottom")
    if lumi_fb is not None:
        ax.text(0.98, 1.01, f"{lumi_fb:g} fb$^{{-1}}$", transform=ax.transAxes, fontsize=12, ha="right", va="bottom")


def plot_cls_curve(result: LimitResult, path: str | Path, title: str, experiment: str = "", lumi_fb: float | None = None,
                   x_scale: float = 1.0, x_label: str | None = None) -> list[Path]:
    """CLs (observed, expected median and bands) against the POI (or POI x ``x_scale``, e.g. the branching
    fraction, labelled ``x_label``), with the CL line and the observed limit marked."""
    pts = sorted(result.points, key=lambda p: p.poi)
    x = np.array([p.poi for p in pts]) * x_scale
    # a physics axis (1e-8 ...) carries its power of ten in the label, not in the offset text
    power = int(np.floor(np.log10(abs(x_scale * result.observed)))) if x_scale != 1.0 and result.observed > 0 else 0
    x_scale_shown = x_scale / 10.0**power
    x = x / 10.0**power
    obs = np.array([p.cls_obs for p in pts])
    exp = np.array([p.cls_exp for p in pts])  # columns -2..+2 sigma
    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(8, 6))
    try:
        ax.fill_between(x, exp[:, 0], exp[:, 4], color="#F5BB54", label=r"Expected $\pm 2\sigma$")
        ax.fill_between(x, exp[:, 1], exp[:, 3], color="#607641", label=r"Expected $\pm 1\sigma$")
        ax.plot(x, exp[:, 2], "k--", label="Expected")
        ax.plot(x, obs, "k-", marker="o", ms=3, label="Observed")
        alpha = 1.0 - result.cl
        ax.axhline(alpha, color="red", lw=1, label=f"{100 * result.cl:g}% CL")
        ax.axvline(result.observed * x_scale_shown, color="gray", lw=0.8, ls=":")
        ax.set_xlabel((x_label or result.poi) + (f" [$10^{{{power}}}$]" if power else ""), fontsize=18)
        ax.set_ylabel(r"CL$_s$")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{title} ({result.calculator})", fontsize=12, pad=22)
        ax.legend(loc="upper right", fontsize=11)
        _label(ax, experiment, lumi_fb)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_brazil(
    x: np.ndarray,
    observed: np.ndarray,
    expected: np.ndarray,
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str,
    experiment: str = "",
    lumi_fb: float | None = None,
    logy: bool = True,
) -> list[Path]:
    """Observed limit and expected median with +-1/+-2 sigma bands versus a scan parameter.

    ``expected`` has shape (5, len(x)), rows -2..+2 sigma.
    """
    order = np.argsort(x)
    x, observed, expected = np.asarray(x)[order], np.asarray(observed)[order], np.asarray(expected)[:, order]
    plt.style.use(mplhep.style.ROOT)
    fig, ax = plt.subplots(figsize=(8, 6))
    try:
        ax.fill_between(x, expected[0], expected[4], color="#F5BB54", label=r"Expected $\pm 2\sigma$")
        ax.fill_between(x, expected[1], expected[3], color="#607641", label=r"Expected $\pm 1\sigma$")
        ax.plot(x, expected[2], "k--", label="Expected")
        ax.plot(x, observed, "k-", marker="o", ms=3, label="Observed")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy and np.all(expected[0] > 0):
            ax.set_yscale("log")
        ax.set_title(title, fontsize=12, pad=22)
        ax.legend(loc="best", fontsize=11)
        _label(ax, experiment, lumi_fb)
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def postfit_yields(spec: dict, measurement: str, poi: str) -> dict[str, dict[str, np.ndarray]]:
    """channel -> sample -> yields after the background-only fit (POI fixed to 0) of ``spec``'s
    observations; the signal sample at POI = 1 under the key ``"signal"`` (its pre-fit yields)."""
    import pyhf

    from belle_rare.core.blas_threads import one_blas_thread
    from belle_rare.stats.limits import model_and_data, workspace_from_spec

    model, data = model_and_data(workspace_from_spec(spec, "post-fit"), measurement=measurement)
    init = model.config.suggested_init()
    fixed = model.config.suggested_fixed()
    index = model.config.poi_index
    init[index], fixed[index] = 0.0, True
    with one_blas_thread():
        best = pyhf.infer.mle.fit(data, model, init_pars=init, fixed_params=fixed)
    at_one = np.array(best, float)
    at_one[index] = 1.0
    fitted = np.asarray(model.main_model.expected_data(best, return_by_sample=True))
    signal = np.asarray(model.main_model.expected_data(at_one, return_by_sample=True))
    out: dict[str, dict[str, np.ndarray]] = {}
    for channel in model.config.channels:
        sl = model.config.channel_slices[channel]
        per: dict[str, np.ndarray] = {}
        for k, sample in enumerate(model.config.samples):
            values = fitted[k, sl]
            if sample in _signal_samples(spec, channel, poi):
                per["signal"] = signal[k, sl]
            elif values.any():
                per[sample] = values
        out[channel] = per
    return out


def _signal_samples(spec: dict, channel: str, poi: str) -> set[str]:
    ch = next(c for c in spec["channels"] if c["name"] == channel)
    return {s["name"] for s in ch["samples"] if any(m["type"] == "normfactor" and m["name"] == poi for m in s["modifiers"])}


def plot_postfit(spec: dict, measurement: str, poi: str, edges: dict[str, np.ndarray], observed: dict[str, list[float]],
                 signal_scale: float, signal_label: str, x_label: str | dict[str, str], path: str | Path,
                 experiment: str = "", lumi_fb: float | None = None,
                 panel_labels: dict[str, tuple[str, float | None]] | None = None) -> list[Path]:
    """Per channel: the backgrounds after the background-only fit stacked, the observation (or Asimov
    data) as points, the signal at ``signal_scale`` x its POI = 1 yields on top (the Belle paper's
    fig. 2: the signal at the limit). One panel per channel of ``edges``; PNG and PDF.
    ``panel_labels``: channel -> (experiment, luminosity) where the panels differ (a combination)."""
    post = postfit_yields(spec, measurement, poi)
    channels = [c for c in edges if c in post]
    plt.style.use(mplhep.style.ROOT)
    ncols = min(len(channels), 2)
    nrows = -(-len(channels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(8 * ncols, 6 * nrows), squeeze=False)
    try:
        for ax in axes.ravel()[len(channels):]:
            ax.set_visible(False)
        for ax, channel in zip(axes.ravel(), channels):
            per = post[channel]
            backgrounds = [(name, v) for name, v in per.items() if name != "signal"]
            bottom = np.zeros(len(edges[channel]) - 1)
            for k, (name, values) in enumerate(backgrounds):
                ax.stairs(bottom + values, edges[channel], baseline=bottom, fill=True, color=f"C{k + 1}",
                          label=f"{name} ({values.sum():.3g})")
                bottom = bottom + values
            if "signal" in per:
                sig = per["signal"] * signal_scale
                ax.stairs(bottom + sig, edges[channel], baseline=bottom, color="tab:red", lw=2,
                          label=f"{signal_label} ({sig.sum():.3g})")
            data = np.asarray(observed[channel], float)
            centres = 0.5 * (edges[channel][1:] + edges[channel][:-1])
            ax.errorbar(centres, data, yerr=np.sqrt(np.maximum(data, 0)), fmt="ko", ms=4, label="observed")
            # a combination's panels differ (Belle's E_ECL^extra, Belle II's BDT output): one label per channel
            ax.set_xlabel(x_label[channel] if isinstance(x_label, dict) else x_label, fontsize=16)
            ax.set_ylabel("events / bin", fontsize=16)
            ax.set_ylim(0, 1.6 * max(float((bottom + per.get("signal", 0) * signal_scale).max()), float(data.max()), 1e-9))
            ax.set_title(channel, fontsize=13, pad=22)
            ax.legend(fontsize=10, loc="upper right", ncol=2)
            _label(ax, *(panel_labels or {}).get(channel, (experiment, lumi_fb)))
        fig.tight_layout()
        return save_figure(fig, path)
    finally:
        plt.close(fig)

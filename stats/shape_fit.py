"""The signal + background fit in fine (M_bc, dE) bins of the signal ellipse (taulgamma, the paper's
eq. 3.1), as a pyhf workspace built beside the counting one.

The paper fits s and b to the candidates inside the ellipse with the signal PDF (smoothed signal
simulation) and the background PDF of the sideband fit. Here the ellipse is cut into the plane
histogram's bins (grouped by ``SHAPE_REBIN``): every bin that overlaps the ellipse is a pyhf bin.

* signal: the signal simulation's plane in the region of the events inside the ellipse (the same
  events as the counting yield), the POI as normfactor, the counting sample's systematics as
  normsys (their relative effect on the ellipse yield) and the template's simulation statistics
  as one normsys (the paper smooths its signal PDF; a staterror per bin makes the fits crawl);
* background: the fitted density of every fitted dataset integrated over (bin x ellipse), plus
  the plain counts / MC bound of the datasets too small to fit spread uniformly over the
  ellipse's area (their shape is unknown), normalised to the sideband estimate; its uncertainty a
  normsys of the fit's relative uncertainty, the MC bound a log-normal normsys of 100 %, and the
  background's normsys (PDF modelling) as in the counting model;
* observation: pseudo-data's plane inside the ellipse, else the Asimov background.

Sum over the bins = the counting model: the shape fit only adds where in the ellipse things are.
"""

from __future__ import annotations

import math

import numpy as np

from belle_rare.stats import histograms as H
from belle_rare.stats.errors import StatsError
from belle_rare.stats.histograms import RunOutput
from belle_rare.stats.model_config import SidebandFit, StatsConfig
from belle_rare.stats.sideband_fit import PlaneGeometry, SidebandEstimate
from belle_rare.stats.workspace import sideband_planes

# histogram bins merged per shape-fit bin (M_bc, dE): 5 MeV x 0.002 for the 2.5 MeV x 0.001 plane,
# ~100 bins over the 2 sigma ellipse (toys stay affordable; the signal core keeps a few bins per sigma)
SHAPE_REBIN = (2, 2)
# sub-points per histogram bin and axis for the bin x ellipse overlaps
SUBDIVISIONS = 8


def _grouped_edges(edges: np.ndarray, factor: int) -> np.ndarray:
    return edges[::factor] if (len(edges) - 1) % factor == 0 else np.append(edges[::factor], edges[-1])


def ellipse_overlap(geometry: PlaneGeometry, mbc_edges: np.ndarray, de_edges: np.ndarray) -> np.ndarray:
    """Fraction of each (M_bc, dE) bin's area inside the ellipse (sub-sampled, shape n_mbc x n_de)."""
    k = SUBDIVISIONS
    sub_m = (mbc_edges[:-1, None] + (np.arange(k) + 0.5)[None, :] / k * np.diff(mbc_edges)[:, None])  # n_m x k
    sub_d = (de_edges[:-1, None] + (np.arange(k) + 0.5)[None, :] / k * np.diff(de_edges)[:, None])
    dm = ((sub_m - geometry.mbc_mean) / geometry.mbc_half_axis) ** 2
    dd = ((sub_d - geometry.de_mean) / geometry.de_half_axis) ** 2
    inside = (dm[:, None, :, None] + dd[None, :, None, :]) < 1.0  # n_m x n_d x k x k
    return inside.mean(axis=(2, 3))


def background_density(est: SidebandEstimate, geometry: PlaneGeometry, mbc_edges: np.ndarray, de_edges: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Expected background in each bin x ellipse (n_mbc x n_de): (fitted datasets + plain counts, MC
    bound). The fitted densities are taken uniform within a bin and normalised to the exact ellipse
    integral; the plain counts and the bound, of unknown shape, are spread by area."""
    overlap = ellipse_overlap(geometry, mbc_edges, de_edges)
    area = np.outer(np.diff(mbc_edges), np.diff(de_edges)) * overlap
    fraction = area / area.sum()
    fitted = sum((f.bin_yields(mbc_edges, de_edges) * overlap for f in est.fits), np.zeros_like(overlap))
    if fitted.sum() > 0:
        fitted *= est.fitted / fitted.sum()
    bound = (est.bound.mean if est.bound else 0.0) * fraction
    return fitted + est.counted_value * fraction, bound


def shape_workspace(config: StatsConfig, run: RunOutput, counting: dict, fits: dict[str, dict], spec_of: dict[str, SidebandFit],
                    signal: str, signal_datasets: list[str], poi: str) -> dict:
    """The fine-bin workspace of the channels of ``counting`` (the counting spec built for these
    channels), each with its used sideband fit ``fits[channel]`` = {sample: (estimate, geometry)}."""
    channels, observations = [], []
    for ch_spec in counting["channels"]:
        name = ch_spec["name"]
        channel = next(c for c in config.channels if c.name == name)
        (bkg_name, (est, geometry)), = fits[name].items()
        sf = spec_of[name]
        h = run.histogram(sf.histogram)
        axes = {ax.name: ax for ax in H.physics_axes(h)}
        m_edges = _grouped_edges(np.asarray(axes[sf.mbc_axis].edges), SHAPE_REBIN[0])
        d_edges = _grouped_edges(np.asarray(axes[sf.de_axis].edges), SHAPE_REBIN[1])
        overlap = ellipse_overlap(geometry, m_edges, d_edges)
        bins = overlap.ravel() > 0
        b_fit, b_bound = (x.ravel()[bins] for x in background_density(est, geometry, m_edges, d_edges))

        def plane_in_ellipse(datasets: list[str]) -> tuple[np.ndarray, np.ndarray]:
            inside = sf.model_copy(update={"regions": [channel.region]})
            planes = sideband_planes(run, inside, channel.channel_value, datasets)
            v = np.zeros((len(m_edges) - 1, len(d_edges) - 1))
            var = np.zeros_like(v)
            for p in planes.values():
                v += _regroup(p.values, SHAPE_REBIN)
                var += _regroup(p.variances, SHAPE_REBIN)
            return v.ravel()[bins], var.ravel()[bins]

        s, s_var = plane_in_ellipse(signal_datasets)
        if not s.sum() > 0:
            raise StatsError(f"{name}: no signal simulation inside the ellipse in '{sf.histogram}' for the shape fit")
        counting_samples = {smp["name"]: smp for smp in ch_spec["samples"]}
        sig_count = next(smp for smp in ch_spec["samples"] if any(m["type"] == "normfactor" and m["name"] == poi for m in smp["modifiers"]))
        sig_mods: list[dict] = [{"name": poi, "type": "normfactor", "data": None}]
        nominal = sig_count["data"][0]
        for m in sig_count["modifiers"]:
            if m["type"] == "histosys":  # its relative effect on the ellipse yield
                hi, lo = m["data"]["hi_data"][0] / nominal, m["data"]["lo_data"][0] / nominal
                sig_mods.append({"name": m["name"], "type": "normsys", "data": {"hi": hi, "lo": max(lo, 1e-3)}})
            elif m["type"] == "normsys":
                sig_mods.append(m)
        if np.any(s_var > 0):
            # the template's simulation statistics as one normalisation (the paper smooths its signal
            # PDF): a staterror per bin would add ~100 parameters and make every fit crawl
            rel = math.sqrt(s_var.sum()) / s.sum()
            sig_mods.append({"name": f"signal_mc_stat_{name}", "type": "normsys", "data": {"hi": 1 + rel, "lo": max(1 - rel, 1e-3)}})
        bkg_count = counting_samples[bkg_name]
        rel_fit = math.sqrt(est.fit_and_count_variance) / max(est.fitted + est.counted_value, 1e-300)
        bkg_mods: list[dict] = [{"name": f"sideband_fit_{name}", "type": "normsys",
                                 "data": {"hi": 1 + rel_fit, "lo": max(1 - rel_fit, 1e-3)}}]
        bkg_mods += [m for m in bkg_count["modifiers"] if m["type"] == "normsys"]
        samples = [{"name": sig_count["name"], "data": s.tolist(), "modifiers": sig_mods}]
        samples.append({"name": bkg_name, "data": b_fit.tolist(), "modifiers": bkg_mods})
        if b_bound.sum() > 0:
            # the MC bound (100 %): log-normal (x2 / x0.5 at 1 sigma), its Gamma(1) shape has no multi-bin pyhf form
            samples.append({"name": f"{bkg_name}_mc_bound", "data": b_bound.tolist(),
                            "modifiers": [{"name": f"mc_bound_{name}_{bkg_name}", "type": "normsys", "data": {"hi": 2.0, "lo": 0.5}}]})
        data_sets = channel.observation.select(run.datasets)
        observed = plane_in_ellipse(data_sets)[0] if data_sets else b_fit + b_bound
        channels.append({"name": name, "samples": samples})
        observations.append({"name": name, "data": [float(x) for x in observed]})
    measurements = [{"name": m["name"], "config": m["config"]} for m in counting["measurements"] if m["name"] == signal]
    return {"channels": channels, "observations": observations, "measurements": measurements, "version": "1.0.0"}


def _regroup(a: np.ndarray, factor: tuple[int, int]) -> np.ndarray:
    """Sum blocks of ``factor`` bins (a last, partial block is kept)."""
    fm, fd = factor
    nm, nd = a.shape
    pm, pd = (-nm) % fm, (-nd) % fd
    padded = np.pad(a, ((0, pm), (0, pd)))
    return padded.reshape((nm + pm) // fm, fm, (nd + pd) // fd, fd).sum(axis=(1, 3))

"""The Belle control sample of B0 -> K*0 tau tau: B0 -> D- l+ nu, D- -> K*0 pi- (PRD 108, L011102).

Its branching fraction from binned extended maximum-likelihood fits of the control region (the tau tau
selection with the D window reversed and no M_miss^2 cut; ``processors/kstartautau.py``), as the paper
did: E_ECL^extra in the subsample M_miss^2 < 0.5 GeV^2 (region ``control_low``; the paper: (2.45 +- 0.17) %)
and M_miss^2 in the whole control region (``control``; the paper: (2.37 +- 0.15) %), beside the value the
generator used (Pythia 8.317's table: 2.07 % per lepton flavour) and the paper's world average 2.31 %.

Templates (the run's histograms, already at its luminosity, epi + mupi summed, nominal):

* signal: every simulated B0 -> D- l+ nu in the region at the generator's branching fraction -- the forced
  control sample (``ctl_dlnu``: D- -> K*0 pi-, its sub-decays' branching fraction in its cross section) and
  the truth-matched ``_dlnu`` twin of the region in the generic B Bbar samples (their D decays of Pythia's
  table, which has no D- -> K*0 pi- channel: no double counting); against the run's pseudo-data the generic
  part only (the pseudo-data is drawn from the generic samples: it has no D- -> K*0 pi-);
* backgrounds, each with a floating normalisation: B Bbar (generic B0 B0bar and B+ B-, minus their true
  B0 -> D- l+ nu, ratio fixed by the samples) and every other background (continuum, tau pairs) together.

Data: the run's pseudo-data (a ``data`` dataset) if it has one, else the Asimov sum of the templates -- then
the fit returns the generator's value by construction and its error is the statistical precision
expected at the run's luminosity (the paper's 711 /fb for a Belle run). Template statistics are not in
the likelihood (the paper's control fits quote statistical errors only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from belle_rare.configs.processes import load_catalogue
from belle_rare.core.histograms import NOMINAL

#: the forced control-sample process (configs/processes.yaml)
CONTROL_PROCESS = "ctl_dlnu"
#: generic B Bbar processes (their true B0 -> D- l+ nu is the control signal)
BB_PROCESSES = ("mixed", "charged")
#: the paper's control-sample results (PRD 108, L011102): BR from E_ECL^extra (M_miss^2 < 0.5), from M_miss^2
PAPER_BR = {"eecl": (2.45e-2, 0.17e-2), "mmiss2": (2.37e-2, 0.15e-2)}
#: the world average the paper compares with (PDG 2020)
WORLD_AVERAGE = (2.31e-2, 0.10e-2)
#: the two fits: histogram name, region
FITS = {"eecl": ("eecl", "control_low"), "mmiss2": ("mmiss2", "control")}
TRUE_SUFFIX = "_dlnu"
#: |d(-ln L)/d parameter| below which a fit is at its minimum (units: events per unit normalisation)
GRADIENT_TOLERANCE = 1e-3


@dataclass
class TemplateFit:
    """The fitted signal strength (per the generator's branching fraction), its error and the
    backgrounds' fitted normalisations."""

    mu: float
    mu_error: float
    background_norms: dict[str, float]
    converged: bool


def poisson_nll(expected: np.ndarray, observed: np.ndarray) -> float:
    """-ln L of independent Poisson bins (constant terms dropped; non-integer observations allowed)."""
    expected = np.maximum(expected, 1e-12)
    return float(np.sum(expected - observed * np.log(expected)))


def fit_templates(observed: np.ndarray, signal: np.ndarray, backgrounds: dict[str, np.ndarray]) -> TemplateFit:
    """Binned extended maximum-likelihood fit: observed = mu signal + sum_k theta_k background_k, mu and
    every theta free (theta >= 0); mu's error from the inverse Hessian of -ln L (Fisher information of
    the Poisson bins, exact for this linear model: sum_i x_i x_j / nu_i)."""
    observed = np.asarray(observed, float)
    used = {k: np.asarray(b, float) for k, b in backgrounds.items() if np.sum(b) > 0}
    names = list(used)
    columns = np.stack([np.asarray(signal, float), *used.values()], axis=1)  # bins x parameters

    def nll(par: np.ndarray) -> float:
        return poisson_nll(columns @ par, observed)

    def grad(par: np.ndarray) -> np.ndarray:
        nu = np.maximum(columns @ par, 1e-12)
        return columns.T @ (1.0 - observed / nu)

    start = np.ones(columns.shape[1])
    bounds = [(-10.0, None)] + [(0.0, None)] * len(names)
    res = optimize.minimize(nll, start, jac=grad, bounds=bounds, method="L-BFGS-B",
                            options={"maxiter": 1000, "ftol": 1e-14, "gtol": 1e-10})
    nu = np.maximum(columns @ res.x, 1e-12)
    fisher = columns.T @ (columns / nu[:, None])
    cov = np.linalg.pinv(fisher)
    # converged: the Karush-Kuhn-Tucker conditions of this convex problem (L-BFGS-B's line search can stop
    # "abnormally" at the minimum); a gradient in events, zero for the free parameters, >= 0 at a bound
    g = grad(res.x)
    at_bound = np.array([False] + [x <= 0.0 for x in res.x[1:]])
    kkt = bool(np.all(np.where(at_bound, g > -GRADIENT_TOLERANCE, abs(g) < GRADIENT_TOLERANCE)))
    return TemplateFit(mu=float(res.x[0]), mu_error=float(np.sqrt(max(cov[0, 0], 0.0))),
                       background_norms=dict(zip(names, map(float, res.x[1:]))), converged=kkt)


def _values(h: Any, region: str, channels: list[str]) -> np.ndarray | None:
    """The nominal contents of ``region`` summed over ``channels`` (None if the histogram has none)."""
    if region not in h.axes["region"] or not any(c in h.axes["channel"] for c in channels):
        return None
    out = None
    for c in channels:
        if c not in h.axes["channel"]:
            continue
        sel = {"channel": c, "region": region}
        if "variation" in h.axes.name:
            sel["variation"] = NOMINAL
        v = h[sel].values(flow=False)
        out = v if out is None else out + v
    return out


def build_templates(histograms: dict[str, dict[str, Any]], datasets: dict[str, dict[str, Any]], name: str, region: str,
                    channels: list[str]) -> tuple[np.ndarray | None, np.ndarray, dict[str, np.ndarray], list[str]]:
    """(data or None, signal, backgrounds by group, the datasets read) for one fit."""
    data, signal, forced, bkg = None, None, None, {"B Bbar": None, "other": None}
    read: list[str] = []

    def add(total: np.ndarray | None, v: np.ndarray | None) -> np.ndarray | None:
        return total if v is None else (v.copy() if total is None else total + v)

    for ds, info in datasets.items():
        h = histograms.get(ds, {}).get(name)
        if h is None:
            continue
        everything = _values(h, region, channels)
        if everything is None:
            continue
        read.append(ds)
        true = _values(h, region + TRUE_SUFFIX, channels)
        true = np.zeros_like(everything) if true is None else true
        if info.get("kind") == "data":
            data = add(data, everything)
        elif info.get("process") == CONTROL_PROCESS:
            forced = add(forced, everything)
        elif info.get("kind") == "background":
            signal = add(signal, true)
            group = "B Bbar" if info.get("process") in BB_PROCESSES else "other"
            bkg[group] = add(bkg[group], everything - true)
    # the forced D- -> K*0 pi- decays are signal unless the data is the pseudo-data, which is drawn from the
    # generic samples only (configs/processes.yaml pseudo_data) and so cannot hold that channel (not in Pythia's table)
    if data is None and forced is not None:
        signal = add(signal, forced)
    if signal is None or not np.any(signal):
        raise ValueError("no control-sample signal template (ctl_dlnu or generic B Bbar) in the run")
    backgrounds = {k: v for k, v in bkg.items() if v is not None}
    return data, signal, backgrounds, read


def generator_branching_fraction() -> float:
    """BR(B0 -> D- l+ nu) per lepton flavour the generator used: the control process's reference branching
    fraction (Pythia's table, summed over its forced channels) over its number of forced channels."""
    proc = load_catalogue().get(CONTROL_PROCESS)
    assert proc.forced_decay is not None and proc.reference_branching_fraction is not None
    return proc.reference_branching_fraction / len(proc.forced_decay.channels)


def measure_control(result: dict[str, Any]) -> list[dict[str, Any]]:
    """validation.json rows (``key: control_sample``): BR(B0 -> D- l+ nu) from the E_ECL^extra and the
    M_miss^2 fits, beside the generator's value and the paper's; none for Belle II or without a control region."""
    proc = result["processor"]
    if proc.experiment != "belle" or proc.cuts.control is None:
        return []
    channels = list(proc.cuts.control.channels)
    datasets = result["metadata"]["datasets"]
    br_gen = generator_branching_fraction()
    rows = []
    for fit_name, (hist_name, region) in FITS.items():
        try:
            data, signal, backgrounds, read = build_templates(result["histograms"], datasets, hist_name, region, channels)
        except ValueError as err:
            rows.append({"key": "control_sample", "quantity": f"BR(B0 -> D- l+ nu), {hist_name} fit", "ours": None,
                         "paper": PAPER_BR[fit_name][0], "unit": "", "note": str(err)})
            continue
        asimov = data is None
        observed = signal + sum(backgrounds.values(), np.zeros_like(signal)) if asimov else data
        fit = fit_templates(observed, signal, backgrounds)
        what = "E_ECL^extra, M_miss^2 < 0.5 GeV^2" if fit_name == "eecl" else "M_miss^2, whole control region"
        paper, paper_err = PAPER_BR[fit_name]
        rows.append({
            "key": "control_sample",
            "quantity": f"BR(B0 -> D- l+ nu) from the {what} fit",
            "ours": fit.mu * br_gen, "ours_error": fit.mu_error * br_gen, "generator": br_gen, "fit_converged": fit.converged,
            "paper": paper, "paper_error": paper_err, "world_average": WORLD_AVERAGE[0], "unit": "",
            "note": (f"{'Asimov (no pseudo-data in the run): the error is the expected statistical precision' if asimov else 'pseudo-data'}; "
                     f"+- {fit.mu_error * br_gen:.2e} (stat.); generator (Pythia 8.317 table) {br_gen:.4f}; "
                     f"signal {signal.sum():.1f} / data {observed.sum():.1f} events in {region} (epi + mupi); "
                     f"{_norms(fit.background_norms)}; paper {paper:.4f} +- {paper_err:.4f} (stat.), "
                     f"world average {WORLD_AVERAGE[0]:.4f}; datasets {', '.join(read)}"),
        })
    return rows


def _norms(norms: dict[str, float]) -> str:
    """The fitted background normalisations, or that no background reached the control region."""
    groups = [f"{name} x {norms[name]:.2f}" for name in ("B Bbar", "other") if name in norms]
    return ", ".join(groups) if groups else "no simulated background in the region (signal-only fit)"

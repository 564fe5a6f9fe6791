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
expected at the run's luminosity (the paper's 711 /fb for a Belle run). The simulation's own statistics
enter as one constrained factor per bin on the summed template (Barlow-Beeston lite, as pyhf's
``staterror``: gamma_i ~ Gauss(1, sigma_i), sigma_i = sqrt(sum w^2) / sum w of the bin's simulated events);
the rows quote that fit's error and, beside it, the data-only error the paper's statistical errors compare
with. With few simulated events in the region (``make run``: the generic part is a handful of events) the
first is much the larger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    #: the fit's per-bin template factors gamma_i (empty without template statistics)
    template_factors: np.ndarray = field(default_factory=lambda: np.zeros(0))


def poisson_nll(expected: np.ndarray, observed: np.ndarray) -> float:
    """-ln L of independent Poisson bins (constant terms dropped; non-integer observations allowed)."""
    expected = np.maximum(expected, 1e-12)
    return float(np.sum(expected - observed * np.log(expected)))


def fit_templates(observed: np.ndarray, signal: np.ndarray, backgrounds: dict[str, np.ndarray],
                  template_variance: np.ndarray | None = None) -> TemplateFit:
    """Binned extended maximum-likelihood fit: observed = gamma_i (mu signal + sum_k theta_k background_k), mu and
    every theta free (theta >= 0). ``template_variance`` (per bin, the summed templates' sum w^2): each bin with
    simulated events gets a factor gamma_i constrained by Gauss(1, sigma_i), sigma_i = sqrt(variance) / the
    nominal total (Barlow-Beeston lite); without it, gamma = 1. mu's error from the inverse of the expected
    information at the fit (Poisson bins and the gamma constraints; for the linear model without gammas
    exactly sum_i x_i x_j / nu_i)."""
    observed = np.asarray(observed, float)
    used = {k: np.asarray(b, float) for k, b in backgrounds.items() if np.sum(b) > 0}
    names = list(used)
    columns = np.stack([np.asarray(signal, float), *used.values()], axis=1)  # bins x parameters
    n_par = columns.shape[1]
    nominal = columns.sum(axis=1)
    if template_variance is None:
        constrained = np.zeros(len(nominal), dtype=bool)
        sigma = np.zeros(0)
    else:
        variance = np.asarray(template_variance, float)
        constrained = (nominal > 0) & (variance > 0)
        sigma = np.sqrt(variance[constrained]) / nominal[constrained]

    def split(par: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gamma = np.ones(len(nominal))
        gamma[constrained] = par[n_par:]
        return par[:n_par], gamma

    def nll(par: np.ndarray) -> float:
        norms, gamma = split(par)
        penalty = 0.5 * np.sum(((par[n_par:] - 1.0) / sigma) ** 2) if len(sigma) else 0.0
        return poisson_nll(gamma * (columns @ norms), observed) + penalty

    def grad(par: np.ndarray) -> np.ndarray:
        norms, gamma = split(par)
        unscaled = columns @ norms
        pull = 1.0 - observed / np.maximum(gamma * unscaled, 1e-12)
        return np.concatenate([columns.T @ (gamma * pull), (unscaled * pull)[constrained] + (par[n_par:] - 1.0) / sigma**2])

    start = np.ones(n_par + len(sigma))
    bounds = [(-10.0, None)] + [(0.0, None)] * len(names) + [(1e-6, None)] * len(sigma)
    res = optimize.minimize(nll, start, jac=grad, bounds=bounds, method="L-BFGS-B",
                            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10})
    norms, gamma = split(res.x)
    unscaled = columns @ norms
    nu = np.maximum(gamma * unscaled, 1e-12)
    # d nu_i / d(norms, gammas): gamma_i x the template columns, and unscaled_i on gamma_i's own bin
    jacobian = np.concatenate([gamma[:, None] * columns, np.diag(unscaled)[:, constrained]], axis=1)
    fisher = jacobian.T @ (jacobian / nu[:, None])
    fisher[n_par:, n_par:] += np.diag(1.0 / sigma**2)
    cov = np.linalg.pinv(fisher)
    # converged: the Karush-Kuhn-Tucker conditions (L-BFGS-B's line search can stop "abnormally" at the
    # minimum); a gradient in events, zero for the free parameters, >= 0 at a bound
    g = grad(res.x)
    at_bound = np.array([False] + [x <= 0.0 for x in res.x[1:n_par]] + [x <= 1e-6 for x in res.x[n_par:]])
    kkt = bool(np.all(np.where(at_bound, g > -GRADIENT_TOLERANCE, abs(g) < GRADIENT_TOLERANCE)))
    return TemplateFit(mu=float(res.x[0]), mu_error=float(np.sqrt(max(cov[0, 0], 0.0))),
                       background_norms=dict(zip(names, map(float, res.x[1:n_par]))), converged=kkt,
                       template_factors=np.asarray(res.x[n_par:]))


def _values(h: Any, region: str, channels: list[str], variances: bool = False) -> np.ndarray | None:
    """The nominal contents (or their sum w^2) of ``region`` summed over ``channels`` (None if the histogram has none)."""
    if region not in h.axes["region"] or not any(c in h.axes["channel"] for c in channels):
        return None
    out = None
    for c in channels:
        if c not in h.axes["channel"]:
            continue
        sel = {"channel": c, "region": region}
        if "variation" in h.axes.name:
            sel["variation"] = NOMINAL
        v = h[sel].variances(flow=False) if variances else h[sel].values(flow=False)
        out = v if out is None else out + v
    return out


def build_templates(histograms: dict[str, dict[str, Any]], datasets: dict[str, dict[str, Any]], name: str, region: str,
                    channels: list[str]) -> tuple[np.ndarray | None, np.ndarray, dict[str, np.ndarray], list[str], np.ndarray]:
    """(data or None, signal, backgrounds by group, the datasets read, the summed templates' sum w^2) for one fit."""
    data, signal, forced, bkg = None, None, None, {"B Bbar": None, "other": None}
    variance, forced_variance = None, None
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
            forced_variance = add(forced_variance, _values(h, region, channels, variances=True))
        elif info.get("kind") == "background":
            signal = add(signal, true)
            group = "B Bbar" if info.get("process") in BB_PROCESSES else "other"
            bkg[group] = add(bkg[group], everything - true)
            variance = add(variance, _values(h, region, channels, variances=True))
    # the forced D- -> K*0 pi- decays are signal unless the data is the pseudo-data, which is drawn from the
    # generic samples only (configs/processes.yaml pseudo_data) and so cannot hold that channel (not in Pythia's table)
    if data is None and forced is not None:
        signal = add(signal, forced)
        variance = add(variance, forced_variance)
    if signal is None or not np.any(signal):
        raise ValueError("no control-sample signal template (ctl_dlnu or generic B Bbar) in the run")
    backgrounds = {k: v for k, v in bkg.items() if v is not None}
    return data, signal, backgrounds, read, np.zeros_like(signal) if variance is None else variance


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
            data, signal, backgrounds, read, variance = build_templates(result["histograms"], datasets, hist_name, region, channels)
        except ValueError as err:
            rows.append({"key": "control_sample", "quantity": f"BR(B0 -> D- l+ nu), {hist_name} fit", "ours": None,
                         "paper": PAPER_BR[fit_name][0], "unit": "", "note": str(err)})
            continue
        asimov = data is None
        observed = signal + sum(backgrounds.values(), np.zeros_like(signal)) if asimov else data
        fit = fit_templates(observed, signal, backgrounds, template_variance=variance)
        data_only = fit_templates(observed, signal, backgrounds)
        what = "E_ECL^extra, M_miss^2 < 0.5 GeV^2" if fit_name == "eecl" else "M_miss^2, whole control region"
        paper, paper_err = PAPER_BR[fit_name]
        rows.append({
            "key": "control_sample",
            "quantity": f"BR(B0 -> D- l+ nu) from the {what} fit",
            "ours": fit.mu * br_gen, "ours_error": fit.mu_error * br_gen, "ours_error_data_only": data_only.mu_error * br_gen,
            "generator": br_gen, "fit_converged": fit.converged and data_only.converged,
            "paper": paper, "paper_error": paper_err, "world_average": WORLD_AVERAGE[0], "unit": "",
            "note": (f"{'Asimov (no pseudo-data in the run): the errors are the expected precision' if asimov else 'pseudo-data'}; "
                     f"+- {fit.mu_error * br_gen:.2e} with the template statistics (Barlow-Beeston lite), "
                     f"+- {data_only.mu_error * br_gen:.2e} data only (the paper's stat. errors compare with this); "
                     f"generator (Pythia 8.317 table) {br_gen:.4f}; "
                     f"signal {signal.sum():.1f} / data {observed.sum():.1f} events in {region} (epi + mupi); "
                     f"{_norms(fit.background_norms)}; paper {paper:.4f} +- {paper_err:.4f} (stat.), "
                     f"world average {WORLD_AVERAGE[0]:.4f}; datasets {', '.join(read)}"),
        })
    return rows


def _norms(norms: dict[str, float]) -> str:
    """The fitted background normalisations, or that no background reached the control region."""
    groups = [f"{name} x {norms[name]:.2f}" for name in ("B Bbar", "other") if name in norms]
    return ", ".join(groups) if groups else "no simulated background in the region (signal-only fit)"

"""Particle-identification likelihood ratios drawn per true species.

Each PID variable is ``expit(z)`` with ``z ~ N(mu, latent_width)``; ``mu`` is chosen per track so
that P(PID > standard cut) equals the configured efficiency for the track's true species and
momentum. Efficiencies and fake rates at the standard cut are therefore reproduced exactly (up to
binomial fluctuations), and looser / tighter cuts move smoothly around them.

Because ``mu`` is known per track, the probability to pass any cut ``c`` is analytic:
P(PID > c) = Phi((mu - logit(c)) / latent_width). ``pid_columns`` records it for the
working points the configuration lists (``pid.working_points``), as ``<variable>_passProb_<cut>``
(``Track_muonID_passProb_0p9``), so that analyses can weight a background candidate by its
probability to pass the PID requirement instead of using the one thrown value (PIDCalib-style
PID weighting; processors/pid_weighting.py).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit, ndtr, ndtri

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.params import PID_SPECIES, Pid, PidVariable


def species_index(pdg: np.ndarray) -> np.ndarray:
    """Index into PID_SPECIES of each |pdg|; anything else (beam background) counts as a pion."""
    apdg = np.abs(pdg)
    index = np.full(len(apdg), PID_SPECIES.index("pi"), dtype=np.int64)
    for i, code in enumerate(pdgtab.TRACKED):
        index[apdg == code] = i
    return index


def rows_by_species(species: np.ndarray) -> list[np.ndarray]:
    """Rows of each PID_SPECIES entry (computed once and shared by all PID variables)."""
    return [np.flatnonzero(species == i) for i in range(len(PID_SPECIES))]


def efficiency_at_cut(
    variable: PidVariable, species: np.ndarray, momentum: np.ndarray, rows: list[np.ndarray] | None = None
) -> np.ndarray:
    """P(variable > cut) for each track, from the table of its true species."""
    rows = rows_by_species(species) if rows is None else rows
    eff = np.empty(len(species))
    for name, where in zip(PID_SPECIES, rows):
        eff[where] = getattr(variable.efficiency, name)(momentum[where])
    return eff


def latent_means(
    variable: PidVariable, species: np.ndarray, momentum: np.ndarray, latent_width: float,
    rows: list[np.ndarray] | None = None,
) -> np.ndarray:
    """The per-track mean of logit(PID): P(PID > variable.cut) is then the table's efficiency."""
    eff = efficiency_at_cut(variable, species, momentum, rows)
    # ndtri(0) = -inf and ndtri(1) = +inf give PID values of exactly 0 and 1
    with np.errstate(invalid="ignore"):
        return logit(variable.cut) + latent_width * ndtri(eff)


def pass_probability_branch(variable: str, cut: float) -> str:
    """Column name of P(variable > cut): ``muonID_passProb_0p9`` (the ``0.`` of the cut becomes ``0p``)."""
    return f"{variable}_passProb_{format(cut, 'g').replace('.', 'p').replace('-', 'm')}"


def _latent_means_by_variable(pdg: np.ndarray, momentum: np.ndarray, cfg: Pid) -> dict[str, np.ndarray]:
    """Per configured PID variable, the per-track latent mean (species rows found once for all)."""
    species = species_index(pdg)
    rows = rows_by_species(species)
    return {name: latent_means(variable, species, momentum, cfg.latent_width, rows) for name, variable in cfg.variables.items()}


def _pass_probabilities(means: dict[str, np.ndarray], cfg: Pid) -> dict[str, np.ndarray]:
    """P(variable > cut) = Phi((mu - logit(cut)) / latent_width) for every configured working point
    (and each variable's standard cut): the exact distribution the PID values are drawn from."""
    out = {}
    with np.errstate(invalid="ignore"):
        for name, mu in means.items():
            for cut in cfg.cuts_of(name):
                out[pass_probability_branch(name, cut)] = ndtr((mu - logit(cut)) / cfg.latent_width)
    return out


def pid_columns(
    pdg: np.ndarray, momentum: np.ndarray, cfg: Pid, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """All configured PID variables for tracks of true species ``pdg`` and measured momentum, and
    their pass probabilities at every configured working point (:func:`pass_probabilities`)."""
    means = _latent_means_by_variable(pdg, momentum, cfg)
    values = {name: expit(mu + cfg.latent_width * rng.standard_normal(len(pdg))) for name, mu in means.items()}
    return values, _pass_probabilities(means, cfg)


def pass_probabilities(pdg: np.ndarray, momentum: np.ndarray, cfg: Pid) -> dict[str, np.ndarray]:
    """P(variable > cut) per track for every configured working point, without drawing PID values."""
    return _pass_probabilities(_latent_means_by_variable(pdg, momentum, cfg), cfg)

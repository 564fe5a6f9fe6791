"""A background estimate with a selection efficiency factorised out: b = N(before the cut) x eps.

ABCD estimates the signal-region background after a cut (tau3mu: the BDT) as
``b = N_B x N_C / N_D``; with affordable simulation the cut-pass regions (A, B) are nearly empty
and ``N_B`` rests on the Monte Carlo statistical bound (:mod:`stats.mc_bound`). Factorising the
efficiency instead counts the signal region *before* the cut, where there is statistics, and
measures the cut's pass fraction in control regions:

    b = N_before x eps,   eps = P / (P + F),

``P`` / ``F`` the pass / fail counts of the control regions (with the regions of ABCD,
``P = N_B``, ``F = N_D``, ``N_before = N_A + N_C``: b = (N_A + N_C) N_B / (N_B + N_D), which
equals N_B N_C / N_D when A / C = B / D -- the independence ABCD itself assumes). A looser control
region (more pass events) makes eps precise at the price of a stronger independence assumption:
the cut's pass fraction must not depend on where in the control region the event lies.

Uncertainties, P and F independent (disjoint regions):
``var(eps) / eps^2 = (F / (P + F))^2 (var P / P^2 + var F / F^2)``; ``N_before`` is a Poisson
count (``1 / N``) plus, for simulation, its ``Weight()`` variance. An empty count is the MC bound
(mean and variance of :class:`BoundedCount`), so eps stays finite and non-zero. Used for the
tau3mu BDT efficiency; the same estimate serves any ``N_control x ratio`` background (taulphi's
r_MC is a pass fraction of the same form).

With small samples the signal region itself may be empty before the cut while a wider window
around it is not: ``N_before = N_window x A_SR / A_window`` (``before_scale``), a flat background
across the window (the assumption of the papers' sideband methods). Its relative uncertainty is
that of ``N_window`` (Poisson ``1 / N_window`` plus its variance; the bound only if the whole
window is empty). When the window contains the control regions, ``N_window`` and eps share
events; for Poisson counts the total P + F and the fraction P / (P + F) are independent, so the
two relative uncertainties still add in quadrature.

Per dataset (``summed_estimate``): b = sum_d N_d x eps_d, each process's count before the cut times its
own pass fraction, measured where that process has statistics. The MC variances of the parts add;
the Poisson term of the data count is that of the summed count before the cut, 1 / sum_d N_d. A
dataset with no event before the cut in the window carries its bound there (its weight per event)
times its own eps, which is far below the bound of the region after the cut when the cut is tight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from belle_rare.stats.errors import StatsError
from belle_rare.stats.mc_bound import BoundedCount


@dataclass(frozen=True)
class FactorisedEstimate:
    """b = N_before x P / (P + F) with the relative uncertainties of its two factors."""

    before: BoundedCount
    passed: BoundedCount
    failed: BoundedCount
    poisson_before: bool  # add 1 / N_before (a simulated count standing for the data's Poisson count)
    before_scale: float = 1.0  # N_before = before x this (a window count x the area fraction of the SR)
    plain: bool = False  # a plain simulated count in the signal region after the cut (plain_count): eps 1, no scale

    @property
    def efficiency(self) -> float:
        return self.passed.value / (self.passed.value + self.failed.value)

    @property
    def value(self) -> float:
        return self.before.value * self.before_scale * self.efficiency

    @property
    def rel_before(self) -> float:
        n = self.before.value
        return math.sqrt((1.0 / n if self.poisson_before else 0.0) + self.before.variance / n**2)

    @property
    def rel_efficiency(self) -> float:
        p, f = self.passed.value, self.failed.value
        rel2 = self.passed.variance / p**2 + (self.failed.variance / f**2 if f > 0 else 0.0)
        return (f / (p + f)) * math.sqrt(rel2)

    @property
    def rel_simulation(self) -> float:
        """The relative uncertainty from the simulated statistics alone (no Poisson term of the data)."""
        return math.hypot(math.sqrt(self.before.variance) / self.before.value, self.rel_efficiency)

    @property
    def uncertainty(self) -> float:
        return self.value * math.hypot(self.rel_before, self.rel_efficiency)

    @property
    def from_mc_bound(self) -> bool:
        return any(c.bound is not None for c in (self.before, self.passed, self.failed))

    def as_dict(self) -> dict:
        return {
            "value": self.value, "uncertainty": self.uncertainty, "simulation_rel_uncertainty": self.rel_simulation,
            "n_before": self.before.value * self.before_scale, "n_before_rel_uncertainty": self.rel_before,
            "efficiency": self.efficiency, "efficiency_rel_uncertainty": self.rel_efficiency,
            "control_pass": self.passed.value, "control_fail": self.failed.value,
            "from_mc_bound": self.from_mc_bound, "plain_count": self.plain,
        }


def plain_count(count: BoundedCount) -> FactorisedEstimate:
    """A dataset's plain simulated count in the signal region after the cut, as a part of a summed
    estimate: the count itself (efficiency 1, no area scale), its simulated variance, no Poisson term."""
    return FactorisedEstimate(count, BoundedCount(1.0, 0.0, None), BoundedCount(0.0, 0.0, None), poisson_before=False,
                              plain=True)


def factorised_estimate(before: BoundedCount, passed: BoundedCount, failed: BoundedCount, poisson_before: bool,
                        before_scale: float = 1.0) -> FactorisedEstimate:
    """The estimate (``before`` x ``before_scale`` x eps); StatsError if a count that must be positive
    is not (no weight known for a bound)."""
    if not 0 < before_scale <= 1:
        raise StatsError(f"factorised estimate: area fraction {before_scale} of the signal region in its window is not in (0, 1]")
    if before.value <= 0:
        raise StatsError("factorised estimate: no event before the cut in the signal region (and no bound)")
    if passed.value <= 0:
        raise StatsError("factorised estimate: no event passing the cut in the control regions (and no bound)")
    return FactorisedEstimate(before, passed, failed, poisson_before, before_scale)


@dataclass(frozen=True)
class SummedFactorisedEstimate:
    """b = sum_d N_d x before_scale x eps_d (one :class:`FactorisedEstimate` per dataset, each
    without the Poisson term), with the Poisson term of the summed count before the cut. Parts that are
    plain counts (:func:`plain_count`) add their value and simulated variance and stand for no data count."""

    parts: dict[str, FactorisedEstimate]
    poisson_before: bool

    @property
    def value(self) -> float:
        return sum(p.value for p in self.parts.values())

    @property
    def n_before(self) -> float:
        """The summed count before the cut of the factorised parts (unscaled: the count the data would see)."""
        return sum(p.before.value for p in self.parts.values() if not p.plain)

    @property
    def efficiency(self) -> float:
        """The effective pass fraction b / (N_before x scale)."""
        scaled = sum(p.before.value * p.before_scale for p in self.parts.values())
        return self.value / scaled

    @property
    def rel_before(self) -> float:
        mc2 = sum((p.value * p.rel_before) ** 2 for p in self.parts.values()) / self.value**2
        # the data count's Poisson term, on the factorised parts' share: (b_f / b)^2 / N_f (1 / N_before without plain parts)
        factorised = sum(p.value for p in self.parts.values() if not p.plain)
        n = self.n_before
        poisson = (factorised / self.value) ** 2 / n if self.poisson_before and n > 0 else 0.0
        return math.sqrt(poisson + mc2)

    @property
    def rel_efficiency(self) -> float:
        return math.sqrt(sum((p.value * p.rel_efficiency) ** 2 for p in self.parts.values())) / self.value

    @property
    def rel_simulation(self) -> float:
        """The relative uncertainty from the simulated statistics alone (no Poisson term of the data)."""
        return math.sqrt(sum((p.value * p.rel_simulation) ** 2 for p in self.parts.values())) / self.value

    @property
    def uncertainty(self) -> float:
        return self.value * math.hypot(self.rel_before, self.rel_efficiency)

    @property
    def from_mc_bound(self) -> bool:
        return any(p.from_mc_bound for p in self.parts.values())

    def as_dict(self) -> dict:
        return {
            "value": self.value, "uncertainty": self.uncertainty, "simulation_rel_uncertainty": self.rel_simulation,
            "n_before": sum(p.before.value * p.before_scale for p in self.parts.values()),
            "n_before_rel_uncertainty": self.rel_before, "efficiency": self.efficiency,
            "efficiency_rel_uncertainty": self.rel_efficiency, "from_mc_bound": self.from_mc_bound,
            "per_dataset": {d: {**p.as_dict(), "n_before_from_mc_bound": p.before.bound is not None}
                            for d, p in sorted(self.parts.items())},
        }


def summed_estimate(parts: dict[str, tuple[BoundedCount, BoundedCount, BoundedCount]], poisson_before: bool,
                    before_scale: float = 1.0, plain: dict[str, BoundedCount] | None = None) -> SummedFactorisedEstimate:
    """``parts``: dataset -> (before, passed, failed) counts; the datasets with a positive count before
    the cut and passing it enter (StatsError if none does, and no ``plain`` count either). ``plain``:
    dataset -> its plain count in the signal region after the cut, taken as it is (:func:`plain_count`)."""
    estimates = {d: factorised_estimate(b, p, f, poisson_before=False, before_scale=before_scale)
                 for d, (b, p, f) in parts.items() if b.value > 0 and p.value > 0}
    estimates.update({d: plain_count(c) for d, c in (plain or {}).items() if c.value > 0})
    if not estimates:
        raise StatsError("factorised estimate per dataset: no dataset with a count before the cut and a pass fraction")
    return SummedFactorisedEstimate(estimates, poisson_before)

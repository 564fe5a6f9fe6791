"""The Monte Carlo statistical bound: what an empty simulated region says about its yield.

A dataset whose simulated events each weigh ``w`` (events at the run's luminosity per simulated
event) and of which none reached a region has not shown that the region is empty: it has shown
that the expected yield ``mu`` there is small compared with ``w``. With ``n`` simulated events
seen, ``n ~ Poisson(mu / w)``; with a flat prior on ``mu`` the posterior of ``mu / w`` is
Gamma(n + 1, 1), of mean and variance ``n + 1``. For ``n = 0`` each such dataset therefore
contributes

    b_d = w_d,   sigma_d = w_d,

and a region summed over the datasets that could populate it (the sample's datasets) gets
``b = sum_d w_d``, ``sigma^2 = sum_d w_d^2`` from its empty datasets, on top of the unchanged
yields of the datasets that did fill it. In pyhf this is a sample of its own with a ``shapesys``
(Poisson) constraint whose auxiliary count is ``tau = b^2 / sigma^2`` -- one pseudo-event for a
single dataset: the likelihood of the bound is then ``gamma e^(-gamma)`` in ``gamma = b_true / b``,
the Gamma(n + 1) shape with its mode at the nominal ``b``. As ``w -> 0`` (more simulation) the
bound goes to zero and the limit to the zero-background one; with few simulated events it is
large and the limit is honestly weak.

The weight per event is the metadata ``max_event_weight`` of a dataset if the runner writes one
(weighted / biased samples), else its ``scale`` (the runner's luminosity weight per processed
event: the largest weight an event carries up to the O(1) corrections). A dataset of kind
``data`` has ``scale`` 1: an empty data count gets the same Gamma(0 + 1) treatment with w = 1.
A dataset without either key (hand-made run output) has no known weight and no bound.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

WEIGHT_KEYS = ("max_event_weight", "scale")


def weight_per_event(info: Mapping) -> float | None:
    """The largest weight one simulated event of this dataset carries, or None if unknown."""
    for key in WEIGHT_KEYS:
        value = info.get(key)
        if value is not None and float(value) > 0:
            return float(value)
    return None


@dataclass(frozen=True)
class McBound:
    """The bound of one region from the datasets that could populate it and did not."""

    region: str
    weights: dict[str, float]  # empty dataset -> weight per simulated event

    @property
    def mean(self) -> float:
        """sum_d w_d (n + 1) with n = 0: the mean of each dataset's Gamma(1) posterior."""
        return float(sum(self.weights.values()))

    @property
    def variance(self) -> float:
        return float(sum(w * w for w in self.weights.values()))

    @property
    def uncertainty(self) -> float:
        return math.sqrt(self.variance)

    @property
    def effective_events(self) -> float:
        """(sum w)^2 / sum w^2: the pseudo-events of the Poisson constraint (1 for one dataset)."""
        return self.mean**2 / self.variance

    @property
    def largest_weight(self) -> float:
        return max(self.weights.values())

    def as_dict(self) -> dict:
        return {
            "region": self.region,
            "bound": self.mean,
            "uncertainty": self.uncertainty,
            "effective_events": self.effective_events,
            "largest_weight_per_event": self.largest_weight,
            "weight_per_event": dict(sorted(self.weights.items())),
        }


def mc_bound(region: str, counts: Mapping[str, float], datasets: Mapping[str, Mapping]) -> McBound | None:
    """The bound of ``region`` from the datasets with a zero count there (None if there is none).

    ``counts``: the region's yield of each dataset that could populate it; ``datasets``: the run
    metadata (name -> info) giving each one's weight per event. A dataset with a positive yield
    keeps it (its own ``Weight()`` variance is its uncertainty); one of unknown weight adds nothing.
    """
    weights = {}
    for name, count in counts.items():
        if count > 0:
            continue
        w = weight_per_event(datasets.get(name, {}))
        if w is not None:
            weights[name] = w
    return McBound(region, weights) if weights else None


@dataclass(frozen=True)
class BoundedCount:
    """A region's count: the filled datasets' yield and variance plus the bound of the empty ones."""

    filled: float
    filled_variance: float
    bound: McBound | None

    @property
    def value(self) -> float:
        return self.filled + (self.bound.mean if self.bound else 0.0)

    @property
    def variance(self) -> float:
        return self.filled_variance + (self.bound.variance if self.bound else 0.0)


def bounded_count(region: str, yields: Mapping[str, tuple[float, float]], datasets: Mapping[str, Mapping]) -> BoundedCount:
    """``yields``: dataset -> (value, variance) of one region; the empty ones get the bound."""
    filled = sum(v for v, _ in yields.values() if v > 0)
    filled_var = sum(var for v, var in yields.values() if v > 0)
    return BoundedCount(filled, filled_var, mc_bound(region, {d: v for d, (v, _) in yields.items()}, datasets))


def fill_empty_fraction(passed: Mapping[str, tuple[float, float]], failed: Mapping[str, tuple[float, float]]
                        ) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]], list[str]]:
    """Pass / fail yields of a cut's efficiency with the empty side of a dataset filled from the
    other: a dataset with ``n`` (effective) events failing and none passing has shown a pass fraction
    with the Beta(1, n + 1) posterior (flat prior), of mean 1 / (n + 2): its pass yield is
    ``F / (n + 1)`` +- 100 %, not the bound of a region nothing of the dataset reached (the fail
    count already says how much of it there is). Symmetric for an empty fail side. Datasets empty on
    both sides are left as they are (the bound). Returns the new yields and the datasets filled."""
    passed, failed, filled = dict(passed), dict(failed), []
    for name in sorted(set(passed) | set(failed)):
        p, f = passed.get(name, (0.0, 0.0)), failed.get(name, (0.0, 0.0))
        for empty, other, side in ((p, f, passed), (f, p, failed)):
            if empty[0] <= 0 < other[0]:
                n = other[0] ** 2 / other[1] if other[1] > 0 else 1.0  # effective events (Kish)
                value = other[0] / (n + 1.0)
                side[name] = (value, value**2)
                filled.append(name)
    return passed, failed, filled

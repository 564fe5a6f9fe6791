"""PID weighting (PIDCalib-style): background candidates weighted by their probability to pass the
PID requirements instead of being cut on the one thrown PID value.

The detector response stores, per track, P(variable > cut) for each configured working point
(``Track_<variable>_passProb_<cut>``, ``simulation/detector/pid.py``). A search in PID-weighted mode
drops its PID cuts from the candidate building and multiplies the event weight by the probability
that the chosen candidate passes them:

* a required ID on each of n signal-side tracks: the product of their pass probabilities;
* "all n pass the loose cut and at least k pass the tight cut" of one variable (tau3mu: muonID > 0.5
  for three, > 0.9 for two): the loose and tight outcomes of one track are nested (one latent value),
  so each track is tight with p_tight, loose-only with p_loose - p_tight, failing otherwise, and
  ``at_least_tight`` sums the products over the allowed patterns (a short loop over the n tracks);
* a veto (no other track passes): 1 - p per vetoed track.

Tracks (and the PID variables of one track) are independent in the PID model, so these are exact
for one candidate. Several candidates per event (``any_candidate``): the event weight is
1 - prod_c (1 - p_c), exact for candidates without common tracks and to first order in the pass
probabilities otherwise (the fake-rate regime PID weighting is for); candidates sharing tracks are
positively correlated (Harris-FKG: each "passes" is increasing in the tracks' outcomes), so it is
an upper bound of P(some candidate passes), and max_c p_c a lower bound. The kinematics are the
most probable candidate's (the thrown PID picks among the passing ones: the two differ only in
events with several candidates). The mean weighted yield equals the thrown-PID yield; its variance is
smaller because every candidate contributes instead of the ~1 % of tracks that fake a lepton.
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np

from belle_rare.core.errors import UserError
from belle_rare.simulation.detector.pid import pass_probability_branch

#: weight source name of the PID weight (a Weights entry without up/down variations)
PID_WEIGHT = "pidWeight"


def pass_probability(tracks: ak.Array, variable: str, cut: float) -> ak.Array:
    """P(``variable`` > ``cut``) of every track (jagged), from the stored pass-probability branch."""
    return tracks[pass_probability_field(tracks.fields, variable, cut)]


def pass_probability_field(fields: list[str], variable: str, cut: float) -> str:
    """The track field holding P(``variable`` > ``cut``); a UserError if the input lacks it."""
    name = pass_probability_branch(variable, cut)
    if name not in fields:
        raise UserError(f"PID weighting needs the branch Track_{name}: add {cut} to pid.working_points.{variable} "
                        "in the detector YAML and regenerate the samples")
    return name


def branches(requirements: list[tuple[str, float]]) -> tuple[str, ...]:
    """Input branches of the pass probabilities of ``(variable, cut)`` requirements."""
    return tuple(f"Track_{pass_probability_branch(v, c)}" for v, c in requirements)


def at_least_tight(loose: list[Any], tight: list[Any], n_tight: int) -> Any:
    """P(every track passes the loose cut and at least ``n_tight`` pass the tight cut).

    ``loose[i]`` / ``tight[i]``: pass probabilities of track i (tight <= loose, one variable); numpy
    or awkward arrays of one shape. Dynamic programming over the tracks on the count of tight ones.
    """
    # prob[k]: P(tracks so far all loose, exactly k of them tight)
    prob = [ak.ones_like(loose[0]) if isinstance(loose[0], ak.Array) else np.ones_like(loose[0])]
    for p_loose, p_tight in zip(loose, tight):
        only_loose = p_loose - p_tight
        nxt = [prob[0] * only_loose]
        for k in range(1, len(prob) + 1):
            term = prob[k - 1] * p_tight
            nxt.append(term + prob[k] * only_loose if k < len(prob) else term)
        prob = nxt
    return sum(prob[k] for k in range(n_tight, len(prob)))


def any_candidate(cand_prob: ak.Array, valid: ak.Array) -> np.ndarray:
    """P(at least one valid candidate passes) per event as 1 - prod(1 - p_c) (see the module
    docstring: exact without shared tracks, an upper bound with them)."""
    return ak.to_numpy(1.0 - ak.prod(ak.where(valid, 1.0 - cand_prob, 1.0), axis=1))


def veto(p_pass: ak.Array, vetoed: ak.Array) -> np.ndarray:
    """P(no ``vetoed`` track passes): the product of 1 - p over them, per event."""
    return ak.to_numpy(ak.prod(ak.where(vetoed, 1.0 - p_pass, 1.0), axis=1))

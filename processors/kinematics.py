"""Columnar four-vector kinematics for e+e- B-factory events.

Everything works on awkward arrays (flat per event or jagged per particle), numpy arrays or
plain floats, given as separate components: ``px, py, pz, E`` in GeV. Event-level quantities
(beam four-momentum, boost vector, sqrt(s)) broadcast onto jagged collections automatically.
Frames: the laboratory, and the centre-of-mass (CM) frame of the e+e- system, reached by
``to_cm`` with the boost vector of ``cm_boost``. Event shapes (thrust, Fox-Wolfram) live in
``processors.event_shape``.

The four-vector primitives (``P4``, ``Vec3``, boosts and frames, sums, masses, angles) live in
``belle_rare.core.fourvector``, shared with the detector simulation, and are re-exported here
unchanged; this module adds the B-factory signal variables.

Why not coffea's LorentzVector behaviours (``.boost``, ``+``, ``.mass``): alone, the CM boost, pair
masses and thrust inputs are ~1.45x faster with them (``benchmarks/bench_fourvectors.py``), but the
whole processors are slower: ``.venv/bin/python benchmarks/bench_taulgamma.py --events 20000`` gave
5,433 / 5,519 events/s/core hand-written vs 4,780 / 4,851 with the three searches on vector records
(-12 %). Each ``.E``, ``.p``, record ``+`` or ``ak.sum`` costs ~0.5 ms of vector dispatch (a plain
field 0.02 ms), and the selections make hundreds of such small calls.
"""

from __future__ import annotations

import numpy as np

from belle_rare.core.fourvector import (  # noqa: F401  (re-exported: the processors' API)
    P4,
    Array,
    Vec3,
    angle_between,
    boost,
    cm_boost,
    cos_angle,
    cos_theta,
    invariant_mass,
    mass,
    mass2,
    momentum,
    p4_add,
    p4_sum,
    sqrt_s,
    to_cm,
    to_lab,
)

# ---------------------------------------------------------------------------------------------
# B-factory signal variables


def mbc_deltae(px: Array, py: Array, pz: Array, E: Array, sqrt_s: Array) -> tuple[Array, Array]:
    """(M_bc, Delta E) of CM-frame candidates.

    M_bc = sqrt((sqrt(s)/2)^2 - |p*|^2), clipped at 0 so it is never NaN;
    Delta E = E* - sqrt(s)/2.
    """
    e_beam = 0.5 * sqrt_s
    mbc = np.sqrt(np.maximum(e_beam * e_beam - (px * px + py * py + pz * pz), 0.0))
    return mbc, E - e_beam


def delta_e_over_sqrt_s(E: Array, sqrt_s: Array) -> Array:
    """Delta E / sqrt(s) = (E* - sqrt(s)/2) / sqrt(s), the tau -> l gamma (Belle 2021) variable."""
    return (E - 0.5 * sqrt_s) / sqrt_s


def missing_four_momentum(beam: P4, visible: P4) -> P4:
    """Missing four-momentum: beams minus the visible sum (both in the same frame)."""
    return P4(beam.px - visible.px, beam.py - visible.py, beam.pz - visible.pz, beam.E - visible.E)


def missing_mass2(beam: P4, visible: P4) -> Array:
    """Missing mass squared (signed; a Lorentz invariant, so lab and CM agree)."""
    return mass2(*missing_four_momentum(beam, visible))


def recoil_mass2(beam: P4, system: P4) -> Array:
    """Squared mass recoiling against ``system`` (e.g. a mu pair); signed, frame independent."""
    return missing_mass2(beam, system)


def recoil_mass(beam: P4, system: P4) -> Array:
    """Mass recoiling against ``system``: sqrt of ``recoil_mass2`` clipped at zero."""
    return np.sqrt(np.maximum(recoil_mass2(beam, system), 0.0))

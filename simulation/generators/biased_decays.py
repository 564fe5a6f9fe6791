"""Biased production carried as weights: enhanced tau decay channels and central Bhabha scattering.

A rare topology (a tau decaying to three prongs, a Bhabha pair scattered into the barrel) is
generated more often than nature makes it, and every event carries the ratio of the true to the
biased probability of what was generated, so that weighted rates are unbiased (importance sampling;
the weights average to one over the generated sample). The weight goes into the truth record's
``weight`` field, written as ``__weight__`` and applied by every search processor.

Tau channels: with ``TauDecays:mode = 0`` Pythia picks a tau's decay channel with probability
proportional to its table entry, so channel c with branching fraction b_c, enhanced by f_c, is picked
with q_c = f_c b_c / sum_j f_j b_j, and a tau decaying through c weighs b_c / q_c. The channel is
recognised from the tau's direct decay products (as a multiset, charge-conjugated for the tau+);
the weights of both taus multiply. The tau-pair spin correlations (tau_spin.py) rotate decays
after the channel choice and do not change it.
"""

from __future__ import annotations

from functools import lru_cache

import awkward as ak
import numpy as np
import particle

from belle_rare.configs.processes import BhabhaCentralEnhancement, TauDecayEnhancement

TAU = 15


@lru_cache(maxsize=None)
def _conjugate(pdg: int) -> int:
    """The antiparticle's PDG code (the same code for self-conjugate particles)."""
    try:
        return int(particle.Particle.from_pdgid(pdg).invert().pdgid)
    except Exception:
        return -pdg


def channel_probabilities(table: list[tuple[float, int, list[int]]], enhancement: TauDecayEnhancement) -> tuple[np.ndarray, np.ndarray]:
    """True (b_c) and biased (q_c) probabilities of each channel of the ``tau_decays`` table."""
    b = np.array([bf for bf, _, _ in table], float)
    enhanced = [sorted(c) for c in enhancement.channels]
    f = np.array([enhancement.factor if sorted(products) in enhanced else 1.0 for _, _, products in table])
    return b / b.sum(), f * b / np.sum(f * b)


def enhanced_table(table: list[tuple[float, int, list[int]]], enhancement: TauDecayEnhancement | None) -> list[tuple[float, int, list[int]]]:
    """The ``tau_decays`` table with the enhanced channels' entries multiplied by the factor."""
    if enhancement is None:
        return table
    enhanced = [sorted(c) for c in enhancement.channels]
    return [(bf * (enhancement.factor if sorted(products) in enhanced else 1.0), me, products) for bf, me, products in table]


def tau_channels(mc: ak.Array, table: list[tuple[float, int, list[int]]]) -> tuple[np.ndarray, np.ndarray]:
    """(event index, channel index) of every decayed tau in ``mc``; channel -1 when its products match no entry."""
    counts = ak.to_numpy(ak.num(mc.pdg))
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    evt = np.repeat(np.arange(len(counts)), counts)
    pdg = ak.to_numpy(ak.flatten(mc.pdg)).astype(np.int64)
    status = np.abs(ak.to_numpy(ak.flatten(mc.status)))
    mother = ak.to_numpy(ak.flatten(mc.mother)).astype(np.int64)
    gmother = np.where(mother >= 0, mother + offsets[evt], 0)
    # direct decay products (Pythia status 91-99) of a tau
    product = (mother >= 0) & (status >= 91) & (status <= 99) & (np.abs(pdg[gmother]) == TAU)
    if not any(22 in products for _, _, products in table):  # FSR photons (decay_fsr.py) are no channel's product
        product &= pdg != 22
    tau_of = gmother[product]
    # products in the tau- convention (the table lists tau- decays)
    codes = pdg[product]
    unique = np.unique(codes)  # a handful of codes: the loop is over particle species, not particles
    conjugates = np.array([_conjugate(int(c)) for c in unique], np.int64)
    is_plus = pdg[tau_of] == -TAU
    codes = np.where(is_plus, conjugates[np.searchsorted(unique, codes)], codes) if codes.size else codes
    # multiset of products -> count vector over the codes the table uses (+ one slot for any other)
    known = sorted({c for _, _, products in table for c in products})
    slot = np.searchsorted(known, codes)
    slot = np.where((slot < len(known)) & (np.asarray(known)[np.minimum(slot, len(known) - 1)] == codes), slot, len(known))
    taus, row = np.unique(tau_of, return_inverse=True)
    vectors = np.zeros((len(taus), len(known) + 1), np.int64)
    np.add.at(vectors, (row, slot), 1)
    reference = np.zeros((len(table), len(known) + 1), np.int64)
    for c, (_, _, products) in enumerate(table):
        np.add.at(reference[c], np.searchsorted(known, products), 1)
    match = np.all(vectors[:, None, :] == reference[None, :, :], axis=2)  # (taus, channels)
    channel = np.where(match.any(axis=1), np.argmax(match, axis=1), -1)
    return evt[taus], channel


def tau_decay_weights(mc: ak.Array, table: list[tuple[float, int, list[int]]], enhancement: TauDecayEnhancement) -> np.ndarray:
    """Per-event weight prod_taus b_c / q_c for events generated with ``enhanced_table``."""
    event, channel = tau_channels(mc, table)
    if np.any(channel < 0):
        raise RuntimeError(f"{int(np.sum(channel < 0))} tau decay(s) match no channel of the tau_decays table: cannot weight them")
    b, q = channel_probabilities(table, enhancement)
    weight = np.ones(len(mc))
    np.multiply.at(weight, event, b[channel] / q[channel])
    return weight


def central_fraction(sqrt_s: float, cos_min: float, cos_max: float, central: float) -> float:
    """Share of the Bhabha cross section (cos_min < cos theta* < cos_max) with |cos theta*| < ``central``."""
    from belle_rare.simulation.generators.bhabha import cross_section

    return cross_section(sqrt_s, max(-central, cos_min), min(central, cos_max)) / cross_section(sqrt_s, cos_min, cos_max)


def bhabha_central_weights(cos_theta: np.ndarray, fraction: float, enhancement: BhabhaCentralEnhancement) -> np.ndarray:
    """Weights of Bhabha events sampled from the cross section x ``factor`` inside the central region.

    With F the central share of the cross section and k the factor, the biased density is
    k dsigma / Z inside and dsigma / Z outside (Z = k F + 1 - F): the weight is Z / k inside, Z outside.
    """
    z = enhancement.factor * fraction + 1.0 - fraction
    inside = np.abs(cos_theta) < enhancement.cos_theta_max
    return np.where(inside, z / enhancement.factor, z)

"""Hadronic B tagging (FEI for Belle II, NeuroBayes full reconstruction for Belle), parametrised.

Every event with a B pair (two B0/B+ daughters of the Upsilon(4S)) gets one tag candidate built
from the B that is *not* the signal side (``truth.signal_index`` or its B ancestor; a random B for
generic B Bbar). Its probability of existing is carried by ``weight`` (per B charge), not by
dropping events. A configured fraction of candidates is misreconstructed: ARGUS-like Mbc and flat
deltaE. Events without a B pair and with enough tracks get a fake (continuum-like) candidate
weighted by the fake-tag rate.

Mbc and deltaE use the *nominal* beams (as reconstruction does), while the truth record carries
each event's actual beams, so the beam-energy spread enters Mbc and deltaE as in data.

Constituents (``Track_inTag``, ``Photon_inTag``, ``Btag_nTracks``, ``Btag_nPhotons``), so that the
rest of the event (ROE, E_ECL^extra) is defined. Only *usable* objects enter a tag: tracks passing
the FEI impact-parameter precut (K_S / Lambda daughters exempt) and photon-collection clusters above
the region-dependent FEI (Belle: goodBelleGamma) energy cut.

* Correct tags use every usable object descending from the tag B (truth ancestry), photons only if
  the cluster's true species is a photon (split-off clusters carry their hadron's mcPDG and stay in
  the ROE). Whatever was not reconstructed (K_L, neutrinos, lost tracks) is simply missing. A
  fraction ``partial_fraction`` of them also misses its softest photon, whose CM four-momentum is
  then taken out of the tag's (deltaE shifts down by its energy).
* Misreconstructed tags use each usable tag-B object with probability ``wrong_keep_probability``
  and each other usable object (signal side, the other B, beam background, split-offs) with
  ``wrong_take_probability``, so signal-side particles can be lost to the tag.
* Fake tags (no B pair) take each usable object with ``wrong_take_probability``.
Misreconstructed and fake tags get at least ``fake_min_tracks`` tracks where the event has them
(own tracks first), then as many tracks (one more if parity demands) with charges summing to the
tag's charge: surplus-sign tracks dropped, usable tracks of the missing sign added (else
|sum| <= 1). A correct tag's charge is the true B charge; its tracks sum to it only when every
charged descendant was reconstructed and usable.

Weights: correct candidates sum to the configured efficiency per B Bbar event of their charge,
misreconstructed ones to ``misreconstructed_per_correct`` times it (``Tagging.candidate_weight``).

The tag kinematics stay parametric (Mbc, deltaE, direction from the truth B or the ARGUS / flat
shapes), not summed from the constituents, and the tag B decays as the generator decided (not only
in the FEI's hadronic channels), so correct-tag multiplicities are those of generic B decays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.core.fourvector import P4, to_cm, to_lab
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.calorimeter import REGION_BACKWARD, REGION_BARREL, REGION_FORWARD
from belle_rare.simulation.detector.composites import Candidates, mother_pdg
from belle_rare.simulation.detector.flat import FlatTruth, event_counts
from belle_rare.simulation.detector.kinematics import direction
from belle_rare.simulation.detector.params import TagConstituents, Tagging

#: truth mothers whose daughter tracks the FEI takes from the V0 lists (no IP precut)
V0_MOTHERS = (310, 3122)

#: points of the numerical inverse CDF used to sample the ARGUS shape (a sampling precision, not physics)
ARGUS_GRID_POINTS = 4096

#: x_d = Delta m_d / Gamma_d, PDG (pdglive S042DG, HFLAV average): 0.769 +- 0.004
X_D = 0.769
#: time-integrated B0 mixing probability x_d^2 / (2 (1 + x_d^2)) = 0.186: for a coherent Upsilon(4S) B0 B0bar
#: pair, the probability that the two B decay with the same flavour (PDG, "B0-B0bar mixing")
CHI_D = X_D**2 / (2.0 * (1.0 + X_D**2))


def sample_argus(n: int, m_min: float, m0: float, c: float, rng: np.random.Generator) -> np.ndarray:
    """Masses from the ARGUS shape m sqrt(1 - x^2) exp(c (1 - x^2)), x = m/m0, on [m_min, m0]."""
    m = np.linspace(m_min, m0, ARGUS_GRID_POINTS)
    x2 = (m / m0) ** 2
    pdf = m * np.sqrt(np.maximum(1.0 - x2, 0.0)) * np.exp(c * (1.0 - x2))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (pdf[1:] + pdf[:-1]) * np.diff(m))])
    return np.interp(rng.random(n), cdf / cdf[-1], m)


def b_pair_rows(flat: FlatTruth) -> tuple[np.ndarray, np.ndarray]:
    """Mask of rows that are B mesons from the Upsilon(4S), and the mask of events with exactly two."""
    pdg, mother = flat["pdg"], flat["mother"]
    has_mother = mother >= 0
    mother_pdg = np.zeros(len(pdg), dtype=np.int64)
    mother_pdg[has_mother] = pdg[flat.global_index(flat.event[has_mother], mother[has_mother])]
    is_b = np.isin(np.abs(pdg), pdgtab.B_MESONS) & (mother_pdg == pdgtab.UPSILON_4S)
    bb_event = np.bincount(flat.event[is_b], minlength=flat.n_events) == 2
    return is_b & bb_event[flat.event], bb_event


def b_ancestor(flat: FlatTruth, start: np.ndarray, is_b: np.ndarray) -> np.ndarray:
    """Flat row of the Upsilon(4S) B each ``start`` row descends from (itself if a B), -1 if none.

    Walks all chains one generation per step (vectorised over events; the loop is over
    generations, bounded by the longest event record).
    """
    mother = flat["mother"]
    row = start.copy()
    event = flat.event[row]
    for _ in range(int(np.max(np.diff(flat.offsets), initial=0)) + 1):
        climb = ~is_b[row] & (mother[row] >= 0)
        if not climb.any():
            break
        row[climb] = flat.global_index(event[climb], mother[row[climb]])
    return np.where(is_b[row], row, -1)


def final_flavour_rows(flat: FlatTruth, rows: np.ndarray) -> np.ndarray:
    """For B0 that oscillate (a B0 daughter of a B0 in the record), the row of the decaying state."""
    pdg, mother = flat["pdg"], flat["mother"]
    has_mother = np.flatnonzero(mother >= 0)
    mother_rows = flat.global_index(flat.event[has_mother], mother[has_mother])
    mixes = np.isin(np.abs(pdg[has_mother]), pdgtab.B_MESONS) & (np.abs(pdg[mother_rows]) == np.abs(pdg[has_mother]))
    successor = np.arange(len(pdg))
    successor[mother_rows[mixes]] = has_mother[mixes]
    return successor[rows]


def _tag_kinematics(mbc: np.ndarray, delta_e: np.ndarray, unit: np.ndarray, e_beam: float, beta: np.ndarray) -> P4:
    """Lab four-vector of a tag with CM energy e_beam + deltaE and CM momentum sqrt(e_beam^2 - Mbc^2) along ``unit``."""
    p_cm = np.sqrt(np.maximum(e_beam**2 - mbc**2, 0.0))
    return to_lab(p_cm * unit[:, 0], p_cm * unit[:, 1], p_cm * unit[:, 2], e_beam + delta_e, *beta)


@dataclass
class TagInputs:
    """The reconstructed objects a tag can be built from: the Track and Photon collections.

    ``track_event`` / ``photon_event`` give each row's event (rows grouped by event) and the
    dicts are the columns the response writes (Track: ``charge``, ``dr``, ``dz``, ``mcIndex``;
    Photon: ``E``, ``px``, ``py``, ``pz``, ``clusterReg``, ``mcIndex``, ``mcPDG``). Working on the
    written columns means that whatever rows a collection ends up with are the rows flagged.
    """

    track_event: np.ndarray
    tracks: dict[str, np.ndarray]
    photon_event: np.ndarray
    photons: dict[str, np.ndarray]


@dataclass
class Btag:
    """Tag candidates and, per Track / Photon row, whether the event's tag uses it."""

    candidates: Candidates
    track_in_tag: np.ndarray  # int32 0/1 per track row
    photon_in_tag: np.ndarray  # int32 0/1 per photon row


def rank_within(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Position of each row among the rows of its group when ordered by ``key`` (0 = smallest)."""
    order = np.lexsort((key, group))
    sorted_group = group[order]
    first = np.searchsorted(sorted_group, sorted_group, side="left")
    rank = np.empty(len(group), dtype=np.int64)
    rank[order] = np.arange(len(group)) - first
    return rank


def balance_charge(
    event: np.ndarray,
    charge: np.ndarray,
    picked: np.ndarray,
    key: np.ndarray,
    target: np.ndarray,
    n_events: int,
) -> np.ndarray:
    """Which tracks of each event's pool a tag uses so that their charges sum to ``target[event]``.

    Keeps the number of ``picked`` tracks (one more where the parity of the target demands it),
    picked tracks first (smallest ``key`` first), then unpicked pool tracks of the missing sign.
    Where the pool cannot make the target (e.g. only positive tracks and target -1), the picked
    tracks are trimmed to |sum| <= 1 instead.
    """
    plus = charge > 0

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(event[mask], minlength=n_events)

    n_picked, picked_plus = count(picked), count(picked & plus)
    picked_minus = n_picked - picked_plus
    total = n_picked + (n_picked - target) % 2
    want_plus, want_minus = (total + target) // 2, (total - target) // 2
    excess = np.maximum(want_plus - count(plus), 0)
    want_plus, want_minus = want_plus - excess, want_minus - excess
    excess = np.maximum(want_minus - count(~plus), 0)
    want_plus, want_minus = want_plus - excess, want_minus - excess
    reachable = (want_plus >= 0) & (want_minus >= 0)
    keep_plus = np.where(reachable, want_plus, np.minimum(picked_plus, picked_minus + 1))
    keep_minus = np.where(reachable, want_minus, np.minimum(picked_minus, picked_plus + 1))
    rank = rank_within(2 * event + plus, np.where(picked, 0.0, 2.0) + key)  # key is in [0, 2)
    return rank < np.where(plus, keep_plus[event], keep_minus[event])


def _photon_threshold(region: np.ndarray, cfg: TagConstituents) -> np.ndarray:
    t = cfg.photon_min_energy
    return np.select(
        [region == REGION_FORWARD, region == REGION_BARREL, region == REGION_BACKWARD],
        [t.forward, t.barrel, t.backward],
        np.inf,  # gap clusters: the FEI photon lists take clusterReg 1/2/3 only
    )


def _truth_rows(flat: FlatTruth, event: np.ndarray, mc_index: np.ndarray) -> np.ndarray:
    """Flat truth row of each object (-1 for beam background, ``mcIndex`` -1)."""
    return np.where(mc_index >= 0, flat.offsets[event] + mc_index, -1)


def _b_of(flat: FlatTruth, truth_row: np.ndarray, is_b: np.ndarray) -> np.ndarray:
    """Flat row of the Upsilon(4S) B each truth row descends from (-1 for none or no truth row)."""
    out = np.full(len(truth_row), -1, dtype=np.int64)
    has = truth_row >= 0
    if has.any():
        out[has] = b_ancestor(flat, truth_row[has], is_b)
    return out


def assign_constituents(
    flat: FlatTruth,
    inputs: TagInputs,
    tag_row: np.ndarray,
    kind: np.ndarray,
    target_charge: np.ndarray,
    tagging: Tagging,
    is_b: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track and photon flags of each event's tag, and the photon rows dropped from partial tags.

    Per event: ``tag_row`` the flat row of the tag B (-1 if none), ``kind`` 0 no tag, 1 correct,
    2 misreconstructed, 3 fake; ``target_charge`` the tag's charge.
    """
    cfg = tagging.constituents
    n = flat.n_events
    t_event, g_event = inputs.track_event, inputs.photon_event

    # usable objects (FEI precuts) and those from the event's tag B
    t_truth = _truth_rows(flat, t_event, inputs.tracks["mcIndex"].astype(np.int64))
    g_truth = _truth_rows(flat, g_event, inputs.photons["mcIndex"].astype(np.int64))
    t_mother = np.full(len(t_truth), -1, dtype=np.int64)
    t_mother[t_truth >= 0] = flat["mother"][t_truth[t_truth >= 0]]
    v0_daughter = np.isin(np.abs(mother_pdg(flat, t_event, t_mother)), V0_MOTHERS)
    near_ip = (np.abs(inputs.tracks["dr"]) < cfg.track_max_dr) & (np.abs(inputs.tracks["dz"]) < cfg.track_max_dz)
    t_usable = near_ip | v0_daughter
    g_energy = inputs.photons["E"].astype(np.float64)
    g_usable = g_energy > _photon_threshold(inputs.photons["clusterReg"], cfg)
    t_own = (tag_row[t_event] >= 0) & (_b_of(flat, t_truth, is_b) == tag_row[t_event])
    g_own = (
        (tag_row[g_event] >= 0)
        & (_b_of(flat, g_truth, is_b) == tag_row[g_event])
        & (inputs.photons["mcPDG"] == pdgtab.PHOTON)  # split-off clusters carry the hadron's mcPDG
    )

    # correct tags: every usable own object; partial ones lose their softest photon
    t_kind, g_kind = kind[t_event], kind[g_event]
    t_in = (t_kind == 1) & t_usable & t_own
    g_in = (g_kind == 1) & g_usable & g_own
    partial = rng.random(n) < cfg.partial_fraction
    candidates = np.flatnonzero(g_in & partial[g_event])
    softest = candidates[rank_within(g_event[candidates], g_energy[candidates]) == 0]
    g_in[softest] = False

    # misreconstructed and fake tags: own objects kept, other objects taken, at random
    mixed = (kind == 2) | (kind == 3)
    t_u, g_u = rng.random(len(t_event)), rng.random(len(g_event))
    t_pick = t_usable & mixed[t_event] & (t_u < np.where(t_own, cfg.wrong_keep_probability, cfg.wrong_take_probability))
    g_pick = g_usable & mixed[g_event] & (g_u < np.where(g_own, cfg.wrong_keep_probability, cfg.wrong_take_probability))
    # at least fake_min_tracks tracks where the event has them, own tracks first
    key = np.where(t_own, 0.0, 1.0) + t_u
    pool = np.flatnonzero(t_usable & mixed[t_event])
    floor = pool[rank_within(t_event[pool], key[pool]) < tagging.fake_min_tracks]
    t_pick[floor] = True
    t_pick[pool] = balance_charge(
        t_event[pool], inputs.tracks["charge"][pool], t_pick[pool], key[pool], target_charge, n
    )
    return t_in | t_pick, g_in | g_pick, softest


def build_btag(
    flat: FlatTruth,
    signal_index: np.ndarray,
    inputs: TagInputs,
    experiment: str,
    cfg: Tagging,
    rng: np.random.Generator,
) -> Btag:
    """One Btag candidate per B Bbar event, and a fake one per other event with enough tracks,
    with the Track / Photon rows each uses."""
    exp = load_experiment(experiment)
    total = exp.total_four_momentum
    beta = total[1:] / total[0]
    e_beam = exp.sqrt_s / 2.0
    n_events = flat.n_events
    n_tracks = event_counts(inputs.track_event, n_events)

    is_b, bb_event = b_pair_rows(flat)
    pairs = np.flatnonzero(is_b).reshape(-1, 2)  # rows come grouped by event, two per B Bbar event
    bb_events = flat.event[pairs[:, 0]]
    n_bb = len(bb_events)

    # the signal B: signal_index itself or its B ancestor
    sig = signal_index[bb_events]
    sig_b = np.full(n_bb, -1, dtype=np.int64)
    has_sig = sig >= 0
    sig_b[has_sig] = b_ancestor(flat, flat.global_index(bb_events[has_sig], sig[has_sig]), is_b)
    coin = rng.random(n_bb) < 0.5  # generic B Bbar: either B with equal probability
    tag_second = np.where(sig_b == pairs[:, 0], True, np.where(sig_b == pairs[:, 1], False, coin))
    tag = np.where(tag_second, pairs[:, 1], pairs[:, 0])

    _, charge = pdgtab.lookup(flat["pdg"][tag])
    flavour = np.sign(flat["pdg"][final_flavour_rows(flat, tag)])
    px_cm, py_cm, pz_cm, e_cm = to_cm(flat["px"][tag], flat["py"][tag], flat["pz"][tag], flat["E"][tag], *beta)

    # correct tags: smeared CM four-momentum (Mbc, deltaE once the constituents are known)
    p_cm = np.stack([px_cm, py_cm, pz_cm], axis=1) + cfg.momentum_resolution * rng.standard_normal((n_bb, 3))
    e_cm = e_cm + cfg.energy_resolution * rng.standard_normal(n_bb)
    # misreconstructed tags: combinatorial Mbc and deltaE, direction of the true B
    wrong = rng.random(n_bb) < cfg.misreconstructed_fraction
    mbc_bad = sample_argus(n_bb, cfg.mbc_min, e_beam, cfg.argus_c, rng)
    de_bad = rng.uniform(cfg.delta_e_range.low, cfg.delta_e_range.high, n_bb)
    sig_prob = np.where(
        wrong,
        rng.beta(cfg.sig_prob_wrong.alpha, cfg.sig_prob_wrong.beta, n_bb),
        rng.beta(cfg.sig_prob_correct.alpha, cfg.sig_prob_correct.beta, n_bb),
    )

    # fake tags in events without a B pair
    fake_events = np.flatnonzero(~bb_event & (n_tracks >= cfg.fake_min_tracks))
    n_fake = len(fake_events)
    charged = rng.random(n_fake) < cfg.fake_charged_fraction
    sign = rng.choice(np.array([-1, 1]), size=n_fake)
    cos_theta = rng.uniform(-1.0, 1.0, n_fake)
    phi = rng.uniform(-np.pi, np.pi, n_fake)
    fake_charge = np.where(charged, sign, 0).astype(np.float64)
    fake = {
        "event": fake_events,
        "Mbc": sample_argus(n_fake, cfg.mbc_min, e_beam, cfg.argus_c, rng),
        "deltaE": rng.uniform(cfg.delta_e_range.low, cfg.delta_e_range.high, n_fake),
        "sigProb": rng.beta(cfg.sig_prob_wrong.alpha, cfg.sig_prob_wrong.beta, n_fake),
        "charge": fake_charge,
        "flavour": sign,
        "isSignal": np.zeros(n_fake, dtype=np.int32),
        "mcIndex": np.full(n_fake, -1),
        "weight": np.full(n_fake, cfg.fake_rate_per_event),
        "unit": np.stack(direction(np.arccos(cos_theta), phi), axis=1),
    }

    # constituents, from their own stream so that they do not reshuffle the draws above
    tag_row = np.full(n_events, -1, dtype=np.int64)
    tag_row[bb_events] = tag
    kind = np.zeros(n_events, dtype=np.int64)
    kind[bb_events] = np.where(wrong, 2, 1)
    kind[fake_events] = 3
    target_charge = np.zeros(n_events, dtype=np.int64)
    target_charge[bb_events] = charge
    target_charge[fake_events] = fake_charge
    track_in, photon_in, dropped = assign_constituents(
        flat, inputs, tag_row, kind, target_charge, cfg, is_b, rng.spawn(1)[0]
    )

    # coherent Upsilon(4S) mixing for forced-decay samples: they are generated with Pythia's (incoherent) B
    # mixing off (configs/processes.py requires it), so their neutral tag B always has the flavour opposite
    # the signal B; in a coherent pair the two decay with the same flavour in chi_d of the events (EvtGen's
    # VSS_BMIX, what Belle's signal MC used: "this requirement rejects 20% of the events", PRD 108, L011102).
    # Only the flavour label flips (the tag's particles stay those of the generated decay); own stream,
    # drawn after the constituents' so that nothing above is reshuffled.
    mixes = has_sig & (charge == 0) & (rng.spawn(1)[0].random(n_bb) < CHI_D)
    flavour = np.where(mixes, -flavour, flavour)

    # partial tags: the missed photon's CM four-momentum leaves the tag
    bb_index = np.full(n_events, -1, dtype=np.int64)
    bb_index[bb_events] = np.arange(n_bb)
    g = inputs.photons
    gx, gy, gz, ge = to_cm(*(g[c][dropped].astype(np.float64) for c in ("px", "py", "pz", "E")), *beta)
    lost = bb_index[inputs.photon_event[dropped]]
    np.subtract.at(p_cm, lost, np.stack([gx, gy, gz], axis=1))
    np.subtract.at(e_cm, lost, ge)
    mbc_ok = np.sqrt(np.maximum(e_beam**2 - np.sum(p_cm**2, axis=1), 0.0))
    de_ok = e_cm - e_beam
    unit = p_cm / np.maximum(np.linalg.norm(p_cm, axis=1, keepdims=True), np.finfo(float).tiny)
    bb = {
        "event": bb_events,
        "Mbc": np.where(wrong, mbc_bad, mbc_ok),
        "deltaE": np.where(wrong, de_bad, de_ok),
        "sigProb": sig_prob,
        "charge": charge,
        "flavour": flavour,
        "isSignal": (~wrong).astype(np.int32),
        "mcIndex": tag - flat.offsets[bb_events],
        "weight": cfg.candidate_weight(charge != 0, wrong),
        "unit": unit,
    }

    merged = {key: np.concatenate([bb[key], fake[key]]) for key in bb}
    order = np.argsort(merged["event"], kind="stable")
    merged = {key: values[order] for key, values in merged.items()}
    px, py, pz, E = _tag_kinematics(merged["Mbc"], merged["deltaE"], merged["unit"], e_beam, beta)
    n_tag_tracks = event_counts(inputs.track_event[track_in], n_events)
    n_tag_photons = event_counts(inputs.photon_event[photon_in], n_events)
    f32, i32 = np.float32, np.int32
    candidates = Candidates(
        merged["event"],
        {
            "Mbc": merged["Mbc"].astype(f32),
            "deltaE": merged["deltaE"].astype(f32),
            "sigProb": merged["sigProb"].astype(f32),
            "charge": merged["charge"].astype(i32),
            "flavour": merged["flavour"].astype(i32),
            "px": px.astype(f32),
            "py": py.astype(f32),
            "pz": pz.astype(f32),
            "E": E.astype(f32),
            "isSignal": merged["isSignal"].astype(i32),
            "mcIndex": merged["mcIndex"].astype(i32),
            "weight": merged["weight"].astype(f32),
            "nTracks": n_tag_tracks[merged["event"]].astype(i32),
            "nPhotons": n_tag_photons[merged["event"]].astype(i32),
        },
    )
    return Btag(candidates, track_in.astype(i32), photon_in.astype(i32))

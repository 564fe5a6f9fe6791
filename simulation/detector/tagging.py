"""Hadronic B tagging (FEI for Belle II, NeuroBayes full reconstruction for Belle), parametrised.

Every event with a B pair (two B0/B+ daughters of the Upsilon(4S)) gets one tag candidate built
from the B that is *not* the signal side (``truth.signal_index`` or its B ancestor; a random B for
generic B Bbar). Its probability of existing is carried by ``weight`` (per B charge), not by
dropping events. A configured fraction of candidates is misreconstructed: ARGUS-like Mbc and flat
deltaE. Events without a B pair and with enough tracks get a fake (continuum-like) candidate
weighted by the fake-tag rate.

Mbc and deltaE use the *nominal* beams (as reconstruction does), while the truth record carries
each event's actual beams, so the beam-energy spread enters Mbc and deltaE as in data.
"""

from __future__ import annotations

import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.core.fourvector import P4, to_cm, to_lab
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.composites import Candidates
from belle_rare.simulation.detector.flat import FlatTruth
from belle_rare.simulation.detector.kinematics import direction
from belle_rare.simulation.detector.params import Tagging

#: points of the numerical inverse CDF used to sample the ARGUS shape (a sampling precision, not physics)
ARGUS_GRID_POINTS = 4096


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


def build_btag(
    flat: FlatTruth,
    signal_index: np.ndarray,
    n_tracks: np.ndarray,
    experiment: str,
    cfg: Tagging,
    rng: np.random.Generator,
) -> Candidates:
    """One Btag candidate per B Bbar event, and a fake one per other event with enough tracks."""
    exp = load_experiment(experiment)
    total = exp.total_four_momentum
    beta = total[1:] / total[0]
    e_beam = exp.sqrt_s / 2.0

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

    # correct tags: smeared CM four-momentum
    p_cm = np.stack([px_cm, py_cm, pz_cm], axis=1) + cfg.momentum_resolution * rng.standard_normal((n_bb, 3))
    e_cm = e_cm + cfg.energy_resolution * rng.standard_normal(n_bb)
    mbc_ok = np.sqrt(np.maximum(e_beam**2 - np.sum(p_cm**2, axis=1), 0.0))
    de_ok = e_cm - e_beam
    # misreconstructed tags: combinatorial Mbc and deltaE, direction of the true B
    wrong = rng.random(n_bb) < cfg.misreconstructed_fraction
    mbc_bad = sample_argus(n_bb, cfg.mbc_min, e_beam, cfg.argus_c, rng)
    de_bad = rng.uniform(cfg.delta_e_range.low, cfg.delta_e_range.high, n_bb)
    mbc = np.where(wrong, mbc_bad, mbc_ok)
    delta_e = np.where(wrong, de_bad, de_ok)
    unit = p_cm / np.maximum(np.linalg.norm(p_cm, axis=1, keepdims=True), np.finfo(float).tiny)
    sig_prob = np.where(
        wrong,
        rng.beta(cfg.sig_prob_wrong.alpha, cfg.sig_prob_wrong.beta, n_bb),
        rng.beta(cfg.sig_prob_correct.alpha, cfg.sig_prob_correct.beta, n_bb),
    )
    bb = {
        "event": bb_events,
        "Mbc": mbc,
        "deltaE": delta_e,
        "sigProb": sig_prob,
        "charge": charge,
        "flavour": flavour,
        "isSignal": (~wrong).astype(np.int32),
        "mcIndex": tag - flat.offsets[bb_events],
        "weight": cfg.candidate_weight(charge != 0),
        "unit": unit,
    }

    # fake tags in events without a B pair
    fake_events = np.flatnonzero(~bb_event & (n_tracks >= cfg.fake_min_tracks))
    n_fake = len(fake_events)
    charged = rng.random(n_fake) < cfg.fake_charged_fraction
    sign = rng.choice(np.array([-1, 1]), size=n_fake)
    cos_theta = rng.uniform(-1.0, 1.0, n_fake)
    phi = rng.uniform(-np.pi, np.pi, n_fake)
    fake = {
        "event": fake_events,
        "Mbc": sample_argus(n_fake, cfg.mbc_min, e_beam, cfg.argus_c, rng),
        "deltaE": rng.uniform(cfg.delta_e_range.low, cfg.delta_e_range.high, n_fake),
        "sigProb": rng.beta(cfg.sig_prob_wrong.alpha, cfg.sig_prob_wrong.beta, n_fake),
        "charge": np.where(charged, sign, 0).astype(np.float64),
        "flavour": sign,
        "isSignal": np.zeros(n_fake, dtype=np.int32),
        "mcIndex": np.full(n_fake, -1),
        "weight": np.full(n_fake, cfg.fake_rate_per_event),
        "unit": np.stack(direction(np.arccos(cos_theta), phi), axis=1),
    }

    merged = {key: np.concatenate([bb[key], fake[key]]) for key in bb}
    order = np.argsort(merged["event"], kind="stable")
    merged = {key: values[order] for key, values in merged.items()}
    px, py, pz, E = _tag_kinematics(merged["Mbc"], merged["deltaE"], merged["unit"], e_beam, beta)
    f32, i32 = np.float32, np.int32
    return Candidates(
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
        },
    )

"""Tau-pair spin correlations (simulation/generators/tau_spin.py) against the Born expectation.

The expectation is computed here, independently of the module: the Born e+e- -> gamma* -> tau+ tau-
spin-correlation matrix (Y. S. Tsai, Phys. Rev. D 4 (1971) 2821; the same form as Born
q qbar -> gamma*/g* -> Q Qbar, e.g. S. Parke and Y. Shadmi, Phys. Lett. B 387 (1996) 199) in the
pair rest frame, axes k = tau- direction, r = e- beam orthogonalised to k, n = k x r, with
c = cos(theta(tau-, e-)), s^2 = 1 - c^2 and D = 1 + c^2 + (1 - beta^2) s^2 (the production weight):

    C_kk = [1 + c^2 - (1 - beta^2) s^2] / D,   C_rr = (2 - beta^2) s^2 / D,   C_nn = -beta^2 s^2 / D,
    C_kr = 2 sqrt(1 - beta^2) s c / D,

checked below for the Parke-Shadmi property (spins 100 % correlated along the off-diagonal axis:
one eigenvalue of the (k, r) block is 1) and trace 1, then averaged over cos(theta) with weight D.
The decays come from Pythia mode 0 (the product's set-up) with both taus forced to pi nu or rho nu,
lepton ISR and FSR off so that the pair is at the nominal sqrt(s); observables are measured with the
polarimeters written here: the pion direction, and for rho -> pi pi0 the vector-current polarimeter
(J. H. Kuehn and E. Mirkes, Z. Phys. C 56 (1992) 661; TAUOLA, Jadach, Kuehn, Was, CPC 64 (1991) 275).
For a pair distributed as 1 + h-.C.h+ with isotropic polarimeters,
<(h-.a)(h+.a)> = C_aa <|h-|^2> <|h+|^2> / 9.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.core import fourvector as fv
from belle_rare.core.units import pdg_mass
from belle_rare.simulation.generators.pythia import PythiaGenerator, beam_settings, make_pythia, next_batch, tau_table_settings
from belle_rare.simulation.generators.tau_spin import correlate_tau_pairs

EXPERIMENT = "belle2"
N_EVENTS = 30_000
PI_NU = "15:oneChannel = 1 1.0 0 16 -211"
RHO_NU = "15:oneChannel = 1 1.0 0 16 -213"


# ------------------------------------------------------------------ expectation (independent of the module)


def born(c: np.ndarray, beta2: float) -> dict[str, np.ndarray]:
    s2 = 1 - c * c
    d = 1 + c * c + (1 - beta2) * s2
    return {"kk": (1 + c * c - (1 - beta2) * s2) / d, "rr": (2 - beta2) * s2 / d, "nn": -beta2 * s2 / d,
            "kr": 2 * np.sqrt(1 - beta2) * np.sqrt(s2) * c / d, "weight": d}


def tau_beta2() -> float:
    exp = load_experiment(EXPERIMENT)
    her, ler = exp.beam_four_momenta
    tot = np.asarray(her) + np.asarray(ler)
    s = tot[0] ** 2 - np.sum(tot[1:] ** 2)
    return 1 - 4 * pdg_mass(15) ** 2 / s


def expected_average() -> dict[str, float]:
    c = np.linspace(-1, 1, 20_001)
    b = born(c, tau_beta2())
    return {a: float(np.trapezoid(b[a] * b["weight"], c) / np.trapezoid(b["weight"], c)) for a in ("kk", "rr", "nn")}


def test_born_formula_is_the_textbook_one():
    c = np.linspace(-0.99, 0.99, 41)
    for beta2 in (0.01, 0.5, tau_beta2(), 0.999):
        b = born(c, beta2)
        np.testing.assert_allclose(b["kk"] + b["rr"] + b["nn"], 1.0, atol=1e-12)
        # (1 - C_kk)(1 - C_rr) = C_kr^2 <=> eigenvalue 1 of the (k, r) block (off-diagonal basis)
        np.testing.assert_allclose((1 - b["kk"]) * (1 - b["rr"]), b["kr"] ** 2, atol=1e-12)
    exp = expected_average()
    assert 0.85 < exp["kk"] < 0.95 and exp["nn"] < 0 < exp["rr"]


# ------------------------------------------------------------------ samples and observables


def generate(channel: str, n: int, seed: int) -> ak.Array:
    cat = load_catalogue()
    settings = [*cat.pythia_common, *tau_table_settings(cat), "Random:setSeed = on", f"Random:seed = {seed}",
                *beam_settings(load_experiment(EXPERIMENT)), *cat.pythia_settings("tautau"),
                channel, "PDF:lepton = off", "PartonLevel:FSR = off"]
    py = make_pythia(settings, "tautau")
    assert py.init()
    return next_batch(py, n)


def _first(prt: ak.Array, mask: ak.Array) -> np.ndarray:
    """Four-momentum (n, 4) of the first particle passing ``mask`` in each event (NaN if none)."""
    i = ak.argmax(mask, axis=1, keepdims=True)
    p = np.stack([ak.to_numpy(ak.flatten(getattr(prt.p, c)[i])) for c in ("px", "py", "pz", "e")], axis=1)
    p[~ak.to_numpy(ak.any(mask, axis=1))] = np.nan
    return p


def _to(p: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """p seen in the rest frame of the four-momentum ``frame``."""
    b = frame[:, :3] / frame[:, 3:4]
    return np.stack(fv.boost(*p.T, *b.T), axis=1)


def _dot(a, b):
    return a[:, 3] * b[:, 3] - np.sum(a[:, :3] * b[:, :3], axis=1)


def observables(prt: ak.Array, channel: str) -> dict[str, tuple[float, float]]:
    """C_kk, C_rr, C_nn (value, error) measured from pi nu or rho nu decays of both taus."""
    dec = abs(prt.status) == 91
    mother = prt.id[prt.mother1]
    t_m = _first(prt, (prt.id == 15) & (prt.daughter1 > 0))
    t_p = _first(prt, (prt.id == -15) & (prt.daughter1 > 0))
    beam = _first(prt, prt.id == 11)  # entry 1: the e- beam
    pair = t_m + t_p
    k = _to(t_m, pair)[:, :3]
    k /= np.linalg.norm(k, axis=1)[:, None]
    e = _to(beam, pair)[:, :3]
    e /= np.linalg.norm(e, axis=1)[:, None]
    r = e - np.sum(e * k, axis=1)[:, None] * k
    r /= np.linalg.norm(r, axis=1)[:, None]
    n = np.cross(k, r)
    h = {}
    for sign, tau in ((1, t_m), (-1, t_p)):
        # everything in the tau rest frame reached from the pair frame
        rest = lambda p: _to(_to(p, pair), _to(tau, pair))  # noqa: E731
        nu = rest(_first(prt, dec & (prt.id == 16 * sign) & (mother == 15 * sign)))
        pi = rest(_first(prt, dec & (prt.id == -211 * sign)))
        if channel == PI_NU:
            h[sign] = sign * pi[:, :3] / np.linalg.norm(pi[:, :3], axis=1)[:, None]
        else:
            pi0 = rest(_first(prt, dec & (prt.id == 111) & (mother == -213 * sign)))
            q = pi - pi0  # equal-mass limit is not assumed: project out the (p_pi + p_pi0) part
            big = pi + pi0
            q = q - (_dot(big, q) / _dot(big, big))[:, None] * big
            m = pdg_mass(15)
            ptau = np.zeros_like(q)
            ptau[:, 3] = m
            num = m * (2 * _dot(q, nu)[:, None] * q[:, :3] - _dot(q, q)[:, None] * nu[:, :3])
            h[sign] = sign * num / (2 * _dot(q, nu) * _dot(q, ptau) - _dot(q, q) * _dot(nu, ptau))[:, None]
    good = np.isfinite(h[1]).all(axis=1) & np.isfinite(h[-1]).all(axis=1)  # rho -> pi pi0 on both sides
    assert good.mean() > 0.99
    h = {sign: v[good] for sign, v in h.items()}
    k, r, n = k[good], r[good], n[good]
    norm = np.mean(np.sum(h[1] ** 2, axis=1)) * np.mean(np.sum(h[-1] ** 2, axis=1)) / 9
    out = {}
    for name, axis in (("kk", k), ("rr", r), ("nn", n)):
        prod = np.sum(h[1] * axis, axis=1) * np.sum(h[-1] * axis, axis=1) / norm
        out[name] = (float(prod.mean()), float(prod.std() / np.sqrt(len(prod))))
    return out


@pytest.fixture(scope="module")
def pipi() -> tuple[ak.Array, ak.Array]:
    prt = generate(PI_NU, N_EVENTS, seed=11)
    return prt, correlate_tau_pairs(prt, np.random.default_rng(1))


@pytest.fixture(scope="module")
def rhorho() -> tuple[ak.Array, ak.Array]:
    prt = generate(RHO_NU, N_EVENTS, seed=12)
    return prt, correlate_tau_pairs(prt, np.random.default_rng(2))


# ------------------------------------------------------------------ tests


@pytest.mark.parametrize("sample, channel", [("pipi", PI_NU), ("rhorho", RHO_NU)])
def test_correlations_match_born(sample, channel, request):
    _, corr = request.getfixturevalue(sample)
    exp = expected_average()
    got = observables(corr, channel)
    for a in ("kk", "rr", "nn"):
        value, err = got[a]
        assert abs(value - exp[a]) < 3 * err, f"{sample} C_{a}: {value:.3f} +- {err:.3f}, Born {exp[a]:.3f}"


@pytest.mark.parametrize("sample, channel", [("pipi", PI_NU), ("rhorho", RHO_NU)])
def test_switch_off_is_uncorrelated(sample, channel, request):
    raw, _ = request.getfixturevalue(sample)
    got = observables(raw, channel)
    for a in ("kk", "rr", "nn"):
        value, err = got[a]
        assert abs(value) < 3 * err, f"{sample} C_{a} without correlations: {value:.3f} +- {err:.3f}"


def test_rotation_keeps_the_event_consistent(rhorho):
    raw, corr = rhorho
    raw, corr = raw[:2000], corr[:2000]
    mother = ak.to_numpy(ak.flatten(raw.id[raw.mother1]))
    p0 = np.stack([ak.to_numpy(ak.flatten(getattr(raw.p, c))) for c in ("px", "py", "pz", "e")], axis=1)
    p1 = np.stack([ak.to_numpy(ak.flatten(getattr(corr.p, c))) for c in ("px", "py", "pz", "e")], axis=1)
    # masses conserved, tau- side and everything before the decays untouched, tau+ system moved
    np.testing.assert_allclose(_dot(p1, p1), _dot(p0, p0), atol=1e-6)
    counts = ak.to_numpy(ak.num(raw.id))
    glob = ak.to_numpy(ak.flatten(raw.mother1)) + np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    from_tau_plus = mother == -15
    for _ in range(5):
        from_tau_plus = from_tau_plus | from_tau_plus[glob]
    untouched = ~from_tau_plus
    np.testing.assert_array_equal(p1[untouched], p0[untouched])
    assert np.mean(np.any(p1 != p0, axis=1)[mother == -15]) > 0.9
    # the tau+ daughters still sum to the tau+
    evt = np.repeat(np.arange(len(raw)), ak.to_numpy(ak.num(raw.id)))
    sel = mother == -15
    total = np.stack([np.bincount(evt[sel], weights=p1[sel, i], minlength=len(raw)) for i in range(4)], axis=1)
    np.testing.assert_allclose(total, _first(raw, (raw.id == -15) & (raw.daughter1 > 0)), atol=1e-9)
    # the tau+ decay vertex does not move
    v0 = ak.to_numpy(ak.flatten(ak.fill_none(raw.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0}).px))
    v1 = ak.to_numpy(ak.flatten(ak.fill_none(corr.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0}).px))
    np.testing.assert_allclose(v1[sel], v0[sel], atol=1e-12)
    np.testing.assert_array_equal(ak.to_numpy(ak.flatten(ak.is_none(corr.vProd, axis=1))),
                                  ak.to_numpy(ak.flatten(ak.is_none(raw.vProd, axis=1))))


def test_signal_events_are_left_alone():
    """A signal tau (phase-space decay) has no polarimeter: h = 0, so the event is not rotated."""
    gen = PythiaGenerator(load_catalogue(), "sig_taumugamma", load_experiment("belle"), 4, 0)
    prt = next_batch(gen._pythia, 400)
    gen.close()
    out = correlate_tau_pairs(prt, np.random.default_rng(3))
    for c in ("px", "py", "pz", "e"):
        assert ak.all(getattr(out.p, c) == getattr(prt.p, c))


def test_switch_is_off_by_default():
    cat = load_catalogue()
    assert not any(p.tau_spin_correlations for p in cat.processes.values())


@pytest.mark.slow
def test_against_pythia_mode1_pipi():
    """Ours (mode 0 + correlation) against Pythia's helicity matrix elements (mode 1), both pi nu, ISR/FSR off."""
    cat = load_catalogue()
    common = [s for s in cat.pythia_common if not s.startswith("TauDecays:mode")]
    settings = [*common, "Random:setSeed = on", "Random:seed = 21", *beam_settings(load_experiment(EXPERIMENT)),
                *cat.pythia_settings("tautau"), "15:onMode = off", "15:onIfMatch = 16 -211",
                "PDF:lepton = off", "PartonLevel:FSR = off"]
    py = make_pythia(settings, "tautau")
    assert py.init()
    theirs = observables(next_batch(py, 4000), PI_NU)
    ours = observables(correlate_tau_pairs(generate(PI_NU, 20_000, seed=22), np.random.default_rng(4)), PI_NU)
    for a in ("kk", "rr", "nn"):
        diff = ours[a][0] - theirs[a][0]
        assert abs(diff) < 3 * np.hypot(ours[a][1], theirs[a][1]), f"C_{a}: ours {ours[a]}, Pythia mode 1 {theirs[a]}"

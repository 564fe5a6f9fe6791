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

Energy-energy correlations (lepton, K, K*, a1 polarimeters). In the pair rest frame the energy of a
decay product (or of the whole hadronic system) depends only on its angle to its own tau's flight
direction, so only C_kk enters: with the rest-frame decay distribution f0 (1 + alpha c P) (P the
tau- helicity, c the cosine to the tau flight direction, CP-conjugate for the tau+) and
y = E(pair frame) / E_tau, cov(y-, y+) = <C_kk> B- B+ with B = E_f0[alpha c y], evaluated here by
quadrature from the published spectra:
- tau -> l nu nu (massless l, x = 2 E* / m_tau): f0 = x^2 (3 - 2x), alpha c = (1 - 2x) c / (3 - 2x)
  (Y. S. Tsai, PRD 4 (1971) 2821; the Michel form with rho = delta = 3/4, xi = 1, PDG review
  "Muon decay parameters"): B_l = -beta / 20;
- tau -> pi nu, K nu: alpha = 1, two-body kinematics: B = beta (1 - m^2 / m_tau^2) / 6;
- tau -> V nu (V = K*, a1 or any spin-1 hadronic system of mass Q):
  alpha = (m_tau^2 - 2 Q^2) / (m_tau^2 + 2 Q^2) (e.g. Bullock, Hagiwara, Martin, Nucl. Phys. B 395
  (1993) 499), B averaged over the sample's own Q distribution (a rotation does not change it).
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


def generate(channel: str | list[str], n: int, seed: int) -> ak.Array:
    cat = load_catalogue()
    table = [channel] if isinstance(channel, str) else channel
    settings = [*cat.pythia_common, *tau_table_settings(cat), "Random:setSeed = on", f"Random:seed = {seed}",
                *beam_settings(load_experiment(EXPERIMENT)), *cat.pythia_settings("tautau"),
                *table, "PDF:lepton = off", "PartonLevel:FSR = off"]
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
    from_rho = np.abs(mother) == 213  # the rho decay angle is re-drawn on both sides (vector_decay_angles)
    for _ in range(5):
        from_tau_plus = from_tau_plus | from_tau_plus[glob]
        from_rho = from_rho | from_rho[glob]
    untouched = ~from_tau_plus & ~from_rho
    np.testing.assert_array_equal(p1[untouched], p0[untouched])
    # the rho keeps its momentum; only its daughters move
    rho = np.nonzero((mother == 15) & (ak.to_numpy(ak.flatten(raw.id)) == -213))[0]
    np.testing.assert_array_equal(p1[rho], p0[rho])
    rho_sum = np.stack([np.bincount(glob[from_rho & (np.abs(mother) == 213)], weights=p1[from_rho & (np.abs(mother) == 213), i],
                                    minlength=len(p1)) for i in range(4)], axis=1)
    np.testing.assert_allclose(rho_sum[rho], p0[rho], atol=1e-9)
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
    """A signal tau (phase-space decay) has no polarimeter: h = 0, so the event is not rotated; only
    the generic side's rho / K* decay angle is re-drawn (vector_decay_angles)."""
    gen = PythiaGenerator(load_catalogue(), "sig_taumugamma", load_experiment("belle"), 4, 0)
    prt = next_batch(gen._pythia, 400)
    gen.close()
    out = correlate_tau_pairs(prt, np.random.default_rng(3))
    vec_daughter = np.isin(np.abs(ak.to_numpy(ak.flatten(prt.id[prt.mother1]))), (213, 323))
    counts = ak.to_numpy(ak.num(prt.id))
    glob = ak.to_numpy(ak.flatten(prt.mother1)) + np.repeat(np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    for _ in range(5):
        vec_daughter = vec_daughter | vec_daughter[glob]
    assert vec_daughter.sum() > 100
    for c in ("px", "py", "pz", "e"):
        before, after = ak.to_numpy(ak.flatten(getattr(prt.p, c))), ak.to_numpy(ak.flatten(getattr(out.p, c)))
        np.testing.assert_array_equal(after[~vec_daughter], before[~vec_daughter])


def test_switch_is_on_for_tau_pairs():
    """On for e+e- -> tau+ tau- and its signals (same tag side), off for everything else."""
    cat = load_catalogue()
    on = {name for name, p in cat.processes.items() if p.tau_spin_correlations}
    # (the dedicated ISR generator's tau pairs, tautau_isr_central, too: issue 11)
    tau_pairs = {name for name, p in cat.processes.items() if name == "tautau" or p.base == "tautau"
                 or (p.generator == "isr_pair" and p.gamma_star_mass is not None and p.gamma_star_mass.fermion == 15)}
    assert on == tau_pairs and "tautau" in on


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


# ------------------------------------------------------------------ energy-energy correlations (leptons, K, K*, a1)

L_PI = ["15:oneChannel = 1 0.5 22 16 11 -12", "15:addChannel = 1 0.5 0 16 -211"]
K_KSTAR = ["15:oneChannel = 1 0.5 0 16 -321", "15:addChannel = 1 0.5 0 16 -323"]
PI_A1 = ["15:oneChannel = 1 0.5 0 16 -211", "15:addChannel = 1 0.5 0 16 -20213"]


def alpha_spin1(q2: np.ndarray) -> np.ndarray:
    m2 = pdg_mass(15) ** 2
    return (m2 - 2 * q2) / (m2 + 2 * q2)


def b_lepton(beta: float) -> float:
    """E_f0[alpha c y] for tau -> l nu nu from Tsai's spectrum, by quadrature (analytic: -beta / 20)."""
    x = np.linspace(0, 1, 2001)[:, None]
    c = np.linspace(-1, 1, 2001)[None, :]
    f0 = x**2 * (3 - 2 * x)
    alpha_c = (1 - 2 * x) / (3 - 2 * x) * c
    y = x * (1 + beta * c) / 2  # massless lepton: E = gamma E* (1 + beta c), E_tau = gamma m_tau
    integral = lambda f: np.trapezoid(np.trapezoid(f * np.ones_like(x * c), c[0], axis=1), x[:, 0])  # noqa: E731
    return float(integral(f0 * alpha_c * y) / integral(f0))


def b_two_body(beta: float, m2: np.ndarray, alpha: np.ndarray | float = 1.0) -> float:
    """E[alpha c y] for tau -> X nu with X of mass^2 m2 (array: averaged over it): alpha beta p* / (3 m_tau)."""
    m = pdg_mass(15)
    return float(np.mean(alpha * beta * (m * m - m2) / (2 * m) / (3 * m)))


def _nth(prt: ak.Array, mask: ak.Array, k: int) -> np.ndarray:
    """Four-momentum of the k-th particle passing ``mask`` in each event (NaN if fewer)."""
    idx = ak.pad_none(ak.local_index(prt.id)[mask], k + 1, axis=1)[:, k:k + 1]
    p = np.stack([ak.to_numpy(ak.fill_none(ak.flatten(getattr(prt.p, c)[idx]), np.nan)) for c in ("px", "py", "pz", "e")], axis=1)
    return p


def tau_systems(prt: ak.Array) -> dict:
    """Per tau (sign 1: tau-, -1: tau+): its direct visible products, tau rest-frame momenta, and the axes."""
    dec = abs(prt.status) == 91
    mother = prt.id[prt.mother1]
    t_m = _first(prt, (prt.id == 15) & (prt.daughter1 > 0))
    t_p = _first(prt, (prt.id == -15) & (prt.daughter1 > 0))
    pair = t_m + t_p
    k = _to(t_m, pair)[:, :3]
    k /= np.linalg.norm(k, axis=1)[:, None]
    e = _to(_first(prt, prt.id == 11), pair)[:, :3]
    e /= np.linalg.norm(e, axis=1)[:, None]
    r = e - np.sum(e * k, axis=1)[:, None] * k
    r /= np.linalg.norm(r, axis=1)[:, None]
    out = {"axes": {"kk": k, "rr": r, "nn": np.cross(k, r)}, "beta2": 1 - 4 * pdg_mass(15) ** 2 / _dot(pair, pair)}
    for sign, tau in ((1, t_m), (-1, t_p)):
        tau_pair = _to(tau, pair)
        nu = _first(prt, dec & (prt.id == 16 * sign) & (mother == 15 * sign))
        vis = tau - nu  # everything but the tau neutrino (hadronic decays: the hadronic system)
        products = {pid: _first(prt, dec & (prt.id == pid * sign) & (mother == 15 * sign))
                    for pid in (11, -211, -321, -323, -20213)}
        e_tau = tau_pair[:, 3]
        out[sign] = {
            "products": products, "vis": vis, "y_vis": _to(vis, pair)[:, 3] / e_tau,
            "y": {pid: _to(p, pair)[:, 3] / e_tau for pid, p in products.items()},
            "rest": lambda p, tau_pair=tau_pair: _to(_to(p, pair), tau_pair),
        }
    return out


def covariance(y1: np.ndarray, y2: np.ndarray) -> tuple[float, float]:
    prod = (y1 - y1.mean()) * (y2 - y2.mean())
    return float(prod.mean()), float(prod.std() / np.sqrt(len(prod)))


@pytest.fixture(scope="module")
def lpi() -> ak.Array:
    return correlate_tau_pairs(generate(L_PI, 40_000, seed=13), np.random.default_rng(5))


@pytest.fixture(scope="module")
def kkstar() -> ak.Array:
    return correlate_tau_pairs(generate(K_KSTAR, 40_000, seed=14), np.random.default_rng(6))


def test_lepton_energy_correlations_match_tsai(lpi):
    """e-pi, pi-pi and e-e energy covariances in the pair frame against <C_kk> B- B+ (Tsai's spectra)."""
    sy = tau_systems(lpi)
    beta = float(np.sqrt(np.mean(sy["beta2"])))
    ckk = expected_average()["kk"]
    b = {11: b_lepton(beta), -211: b_two_body(beta, pdg_mass(211) ** 2)}
    assert abs(b[11] + beta / 20) < 1e-4  # the quadrature reproduces the closed form
    for a, bb in ((11, -211), (-211, 11), (-211, -211), (11, 11)):
        y1, y2 = sy[1]["y"][a], sy[-1]["y"][bb]
        good = np.isfinite(y1) & np.isfinite(y2)
        value, err = covariance(y1[good], y2[good])
        exp = ckk * b[a] * b[bb]
        assert abs(value - exp) < 3 * err, f"cov(y({a}-), y({bb}+)): {value:.5f} +- {err:.5f}, Born x Tsai {exp:.5f}"
    # e-pi events are the strong check: the expectation is > 8 sigma from zero (and from the opposite sign)
    y1, y2 = sy[1]["y"][11], sy[-1]["y"][-211]
    good = np.isfinite(y1) & np.isfinite(y2)
    assert abs(ckk * b[11] * b[-211]) > 8 * covariance(y1[good], y2[good])[1]


def test_lepton_transverse_correlations(lpi):
    """C_kk, C_rr, C_nn from e-pi events with the lepton polarimeter alpha(x) n_l of Tsai's spectrum."""
    sy = tau_systems(lpi)
    exp = expected_average()
    m = pdg_mass(15)
    prods = {name: [] for name in sy["axes"]}
    for sign in (1, -1):
        lep = sy[sign]["rest"](sy[sign]["products"][11])
        pi = sy[-sign]["rest"](sy[-sign]["products"][-211])
        good = np.isfinite(lep).all(axis=1) & np.isfinite(pi).all(axis=1)
        x = 2 * lep[good, 3] / m
        h_l = sign * ((1 - 2 * x) / (3 - 2 * x))[:, None] * lep[good, :3] / np.linalg.norm(lep[good, :3], axis=1)[:, None]
        h_pi = -sign * pi[good, :3] / np.linalg.norm(pi[good, :3], axis=1)[:, None]
        norm = np.mean(np.sum(h_l**2, axis=1)) / 9
        for name, axis in sy["axes"].items():
            prods[name].append(np.sum(h_l * axis[good], 1) * np.sum(h_pi * axis[good], 1) / norm)
    for name, parts in prods.items():
        prod = np.concatenate(parts)
        value, err = prod.mean(), prod.std() / np.sqrt(len(prod))
        assert abs(value - exp[name]) < 3 * err, f"e-pi C_{name}: {value:.3f} +- {err:.3f}, Born {exp[name]:.3f}"
        assert err < 0.1


def test_kaon_and_kstar_energy_correlations(kkstar):
    """K-K, K-K* and K*-K* energy covariances (K* = the K pi system, either charge combination)."""
    sy = tau_systems(kkstar)
    beta = float(np.sqrt(np.mean(sy["beta2"])))
    ckk = expected_average()["kk"]
    y, b = {}, {}
    for sign in (1, -1):
        vis = sy[sign]["vis"]
        is_kstar = np.isfinite(sy[sign]["products"][-323]).all(axis=1)
        q2 = _dot(vis, vis)
        b[sign] = {"K": b_two_body(beta, pdg_mass(321) ** 2),
                   "K*": b_two_body(beta, q2[is_kstar], alpha_spin1(q2[is_kstar]))}
        y[sign] = {"K": np.where(is_kstar, np.nan, sy[sign]["y_vis"]), "K*": np.where(is_kstar, sy[sign]["y_vis"], np.nan)}
    assert 0.25 < b[1]["K*"] / b[1]["K"] < 0.5  # the K* analysing power, (m^2 - 2 m_K*^2) / (m^2 + 2 m_K*^2) ~ 0.33
    for a in ("K", "K*"):
        for bb in ("K", "K*"):
            good = np.isfinite(y[1][a]) & np.isfinite(y[-1][bb])
            value, err = covariance(y[1][a][good], y[-1][bb][good])
            exp = ckk * b[1][a] * b[-1][bb]
            assert abs(value - exp) < 3 * err, f"cov(y({a}-), y({bb}+)): {value:.5f} +- {err:.5f}, Born {exp:.5f}"


def test_rho_decay_angle_is_the_unpolarised_one(rhorho):
    """<cos^2 psi> of the pi in the rho frame (to the neutrino) against the V - A expectation
    E[c^2] = (Q^2/3 + (m^2 - Q^2)/5) / (Q^2 + (m^2 - Q^2)/3), and 1/3 (isotropic) for mode 0 alone."""
    m2 = pdg_mass(15) ** 2
    for sample, corrected in zip(rhorho, (False, True)):
        dec = abs(sample.status) == 91
        mother = sample.id[sample.mother1]
        rho = _first(sample, (sample.id == -213) & (mother == 15))
        pi = _to(_first(sample, dec & (sample.id == -211) & (mother == -213)), rho)[:, :3]
        nu = _to(_first(sample, dec & (sample.id == 16) & (mother == 15)), rho)[:, :3]
        cos2 = (np.sum(pi * nu, 1) / np.linalg.norm(pi, axis=1) / np.linalg.norm(nu, axis=1)) ** 2
        q2 = _dot(rho, rho)
        exp = np.mean((q2 / 3 + (m2 - q2) / 5) / (q2 + (m2 - q2) / 3)) if corrected else 1 / 3
        err = cos2.std() / np.sqrt(len(cos2))
        assert abs(cos2.mean() - exp) < 3 * err, f"<cos^2 psi> {cos2.mean():.4f} +- {err:.4f}, expected {exp:.4f}"
    assert exp - 1 / 3 > 10 * err


def test_a1_hadronic_system_correlations():
    """pi - a1 events: C_kk, C_rr, C_nn from the pion direction and the a1 (3 pi system) direction
    weighted by its spin-1 analysing power alpha(Q^2), C_aa = 9 <(h_pi.a)(alpha n_Q.a)> / <alpha^2>."""
    sy = tau_systems(correlate_tau_pairs(generate(PI_A1, 40_000, seed=15), np.random.default_rng(7)))
    exp = expected_average()
    prods = {name: [] for name in sy["axes"]}
    for sign in (1, -1):
        q = sy[sign]["rest"](sy[sign]["vis"])
        pi = sy[-sign]["rest"](sy[-sign]["products"][-211])
        good = np.isfinite(sy[sign]["products"][-20213]).all(axis=1) & np.isfinite(pi).all(axis=1)
        h_a1 = sign * alpha_spin1(_dot(q[good], q[good]))[:, None] * q[good, :3] / np.linalg.norm(q[good, :3], axis=1)[:, None]
        h_pi = -sign * pi[good, :3] / np.linalg.norm(pi[good, :3], axis=1)[:, None]
        norm = np.mean(np.sum(h_a1**2, axis=1)) / 9
        for name, axis in sy["axes"].items():
            prods[name].append(np.sum(h_a1 * axis[good], 1) * np.sum(h_pi * axis[good], 1) / norm)
    for name, parts in prods.items():
        prod = np.concatenate(parts)
        value, err = prod.mean(), prod.std() / np.sqrt(len(prod))
        assert abs(value - exp[name]) < 3 * err, f"pi-a1 C_{name}: {value:.3f} +- {err:.3f}, Born {exp[name]:.3f}"
    assert exp["kk"] > 5 * err  # with alpha ~ 0.14 rms, 20k pi-a1 events resolve the correlation

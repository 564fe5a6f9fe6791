"""A light scalar S mixing with the Higgs (mixing angle theta): B -> K(*) S and S -> x x (bkscalar benchmark).

Production (Boiarska et al., arXiv:1904.10447, App. B.2, in the normalisation of its companion code
JLTastet/scalar_portal, production/two_body_hadronic.py, which "closely follows 1904.10447"):

    Gamma(B -> K S)  = theta^2 |xi (m_B^2 - m_K^2) / (2 v) f_0(m_S^2)|^2 p_S / (8 pi m_B^2),
    Gamma(B -> K* S) = theta^2 xi^2 p_S^3 A_0(m_S^2)^2 / (8 pi v^2),

xi = 3 sqrt2 G_F m_t^2 V_ts V_tb / (16 pi^2) (the b -> s S effective coupling), f_0(q^2) = 0.33 / (1 - q^2 /
38 GeV^2) (Ball-Zwicky, hep-ph/0406232), A_0(q^2) = 1.364 / (1 - q^2 / m_B^2) - 0.99 / (1 - q^2 / 36.78 GeV^2)
(hep-ph/0412079); p_S the S momentum in the B frame. (ALPINIST's form, citing 1809.01876, is 4x larger:
NOTES-darksector.md; we keep 1904.10447's.)

Decays (every width is theta^2 times the value at theta = 1; so BR(S -> x x) does not depend on theta and
c tau = hbar c / Gamma_tot scales as 1 / theta^2):

    Gamma(S -> l+ l-) = theta^2 m_l^2 m_S / (8 pi v^2) (1 - 4 m_l^2 / m_S^2)^(3/2),
    Gamma(S -> pi pi), Gamma(S -> K K): Winkler, PRD 99 015018 (arXiv:1809.01876), as digitised in
    JLTastet/scalar_portal decay/winkler_pi.txt, winkler_K.txt (MIT licence); pi+ pi- = 2/3, K+ K- = 1/2.

Gamma_tot = e e + mu mu + pi pi + K K, up to 2 GeV (where Winkler's tables end). Left out: gamma gamma
(< 1e-3 of the total), and Winkler's 4 pi / eta eta / multi-meson widths above ~1.3 GeV, so BR(S -> x x) is
overestimated there and the sin(theta) limit too strong; above 2 GeV (quarks, gluons, tau tau) no width:
``mixing_limit`` returns NaN.

Check: ``tests/test_higgs_scalar.py`` reproduces scalar_portal's reference widths (its test_production.py,
checked by its authors against their Mathematica implementation of 1904.10447) to 0.5 %.
"""

from __future__ import annotations

import numpy as np

from belle_rare.core.units import pdg_mass

G_F = 1.1663787e-5        # GeV^-2, PDG
HIGGS_VEV = 246.22        # GeV, v = (sqrt2 G_F)^-1/2
TOP_MASS = 172.76         # GeV, on-shell (PDG 2020), as scalar_portal's xi (its test: xi_sb = 3.809e-4)
VTS_VTB = 0.04073         # |V_ts V_tb| giving that xi_sb with the values above; PDG |V_ts| = 0.0415 +- 0.0009
HBAR_GEV_S = 6.582119569e-25
HBAR_C_GEV_CM = 1.973269804e-14
TAU_B = {"K": 1.638e-12, "Kst": 1.519e-12}   # s, B+ and B0 lifetimes (PDG)
KSTAR_TO_KPI = 2.0 / 3.0  # BR(K*0 -> K+ pi-), isospin; the Kst channels' POI includes it
B_MASS = {"K": pdg_mass(521), "Kst": pdg_mass(511)}
PARTNER_MASS = {"K": pdg_mass(321), "Kst": pdg_mass(313)}
LEPTON_MASS = {"ee": pdg_mass(11), "mumu": pdg_mass(13)}
#: m_S up to which the total width is known here (Winkler's hadronic tables)
MASS_MAX = 2.0


def xi_sb(top_mass: float = TOP_MASS, vts_vtb: float = VTS_VTB) -> float:
    """The b -> s S coupling xi = 3 sqrt2 G_F m_t^2 V_ts V_tb / (16 pi^2)."""
    return 3.0 * np.sqrt(2.0) * G_F * top_mass**2 * vts_vtb / (16.0 * np.pi**2)


def _momentum(m_parent: float, m_daughter: float, m_s: np.ndarray) -> np.ndarray:
    lam = (m_parent**2 - (m_s + m_daughter) ** 2) * (m_parent**2 - (m_s - m_daughter) ** 2)
    return np.sqrt(np.maximum(lam, 0.0)) / (2.0 * m_parent)


def width_b_to_k_s(m_s: np.ndarray, mode: str = "K", xi: float | None = None) -> np.ndarray:
    """Gamma(B -> K(*) S) / theta^2 in GeV (``mode`` "K": B+ -> K+ S, "Kst": B0 -> K*0 S)."""
    m_s = np.asarray(m_s, float)
    xi = xi_sb() if xi is None else xi
    m_b, m_k = B_MASS[mode], PARTNER_MASS[mode]
    p = _momentum(m_b, m_k, m_s)
    q2 = m_s**2
    if mode == "K":
        f0 = 0.33 / (1.0 - q2 / 38.0)
        width = (xi * (m_b**2 - m_k**2) / (2.0 * HIGGS_VEV) * f0) ** 2 * p / (8.0 * np.pi * m_b**2)
    else:
        a0 = 1.364 / (1.0 - q2 / m_b**2) - 0.99 / (1.0 - q2 / 36.78)
        width = xi**2 * p**3 * a0**2 / (8.0 * np.pi * HIGGS_VEV**2)
    return np.where(m_s < m_b - m_k, width, 0.0)


def br_b_to_k_s(m_s: np.ndarray, mode: str = "K") -> np.ndarray:
    """BR / theta^2 of the channel's B decay as the POI counts it: B+ -> K+ S, or B0 -> K*0 (-> K+ pi-) S."""
    br = width_b_to_k_s(m_s, mode) * TAU_B[mode] / HBAR_GEV_S
    return br * (KSTAR_TO_KPI if mode == "Kst" else 1.0)


def _leptonic(m_s: np.ndarray, m_l: float) -> np.ndarray:
    x = np.clip(1.0 - 4.0 * m_l**2 / np.maximum(m_s, 1e-12) ** 2, 0.0, None)
    return np.where(m_s > 2 * m_l, m_l**2 * m_s / (8.0 * np.pi * HIGGS_VEV**2) * x**1.5, 0.0)


def _table(m_s: np.ndarray, table: np.ndarray) -> np.ndarray:
    return np.interp(m_s, table[:, 0], table[:, 1], left=0.0, right=np.nan)


def widths(m_s: np.ndarray) -> dict[str, np.ndarray]:
    """Partial widths / theta^2 (GeV): ee, mumu, pipi (pi+ pi-), KK (K+ K-), and total (incl. the neutral
    pion and kaon pairs); NaN above ``MASS_MAX``."""
    m_s = np.asarray(m_s, float)
    pipi_all, kk_all = _table(m_s, WINKLER_PIPI), _table(m_s, WINKLER_KK)
    ee, mumu = _leptonic(m_s, LEPTON_MASS["ee"]), _leptonic(m_s, LEPTON_MASS["mumu"])
    above = m_s > MASS_MAX
    total = np.where(above, np.nan, ee + mumu + np.nan_to_num(pipi_all) + np.nan_to_num(kk_all))
    return {"ee": ee, "mumu": mumu, "pipi": pipi_all * 2.0 / 3.0, "KK": kk_all / 2.0, "total": total}


def branching_fraction(m_s: np.ndarray, decay: str) -> np.ndarray:
    """BR(S -> x x) (independent of theta); NaN above ``MASS_MAX``."""
    w = widths(m_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w["total"] > 0, w[decay] / w["total"], 0.0)


def ctau_cm(m_s: np.ndarray, sin2_theta: np.ndarray) -> np.ndarray:
    """c tau (cm) of S at mixing sin^2 theta."""
    with np.errstate(divide="ignore"):
        return HBAR_C_GEV_CM / (np.asarray(sin2_theta, float) * widths(m_s)["total"])


def product_br(m_s: np.ndarray, sin2_theta: np.ndarray, channel: str) -> np.ndarray:
    """The predicted BR(B -> K(*) S) x BR(S -> x x) of ``channel`` (e.g. "K_mumu") at sin^2 theta."""
    mode, decay = channel.split("_", 1)
    return np.asarray(sin2_theta, float) * br_b_to_k_s(m_s, mode) * branching_fraction(m_s, decay)


def mixing_limits(m_s: np.ndarray, channel: str, lifetimes_cm: np.ndarray, limits: np.ndarray, points: int = 400) -> np.ndarray:
    """Per mass, the smallest sin^2 theta excluded: where the predicted product of branching fractions reaches
    the limit at the lifetime that theta implies (c tau ~ 1 / theta^2). ``limits`` (L, M): BR x BR upper limits
    at the L ``lifetimes_cm`` (sorted or not) for the M masses ``m_s``, interpolated linearly in
    (log c tau, log limit) between lifetimes. NaN where: a limit is missing, m_S > ``MASS_MAX``, no theta in the
    lifetime range is excluded, or it is excluded already at the longest lifetime (the limit then lies at
    lifetimes beyond the grid). Vectorised over masses: the c tau grid is the same for every mass."""
    m_s = np.atleast_1d(np.asarray(m_s, float))
    lt = np.asarray(lifetimes_cm, float)
    lim = np.asarray(limits, float).reshape(len(lt), len(m_s))
    order = np.argsort(lt)
    lt, lim = lt[order], lim[order]
    ct = np.geomspace(lt[-1], lt[0], points)  # longest lifetime (smallest theta) first
    if len(lt) > 1:
        # linear-interpolation weights in log c tau, shared by all masses: (points, L)
        x = np.log(ct)
        k = np.clip(np.searchsorted(np.log(lt), x) - 1, 0, len(lt) - 2)
        t = (x - np.log(lt)[k]) / (np.log(lt)[k + 1] - np.log(lt)[k])
        weights = np.zeros((points, len(lt)))
        weights[np.arange(points), k] = 1.0 - t
        weights[np.arange(points), k + 1] = t
    else:
        weights = np.ones((points, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        limit_at = np.exp(weights @ np.log(lim))  # (points, M)
        gamma1 = widths(m_s)["total"]  # (M,)
        s2 = HBAR_C_GEV_CM / (ct[:, None] * gamma1[None, :])  # (points, M), increasing down the rows
        predicted = s2 * (br_b_to_k_s(m_s, channel.split("_", 1)[0]) * branching_fraction(m_s, channel.split("_", 1)[1]))[None, :]
    excluded = predicted >= limit_at
    first = np.argmax(excluded, axis=0)
    result = s2[first, np.arange(len(m_s))]
    valid = (excluded.any(axis=0) & ~excluded[0] & np.all(np.isfinite(lim) & (lim > 0), axis=0)
             & (m_s <= MASS_MAX) & (gamma1 > 0))
    return np.where(valid, result, np.nan)


def mixing_limit(m_s: float, channel: str, lifetimes_cm: np.ndarray, limits: np.ndarray) -> float:
    """``mixing_limits`` at one mass (``limits``: one per lifetime)."""
    return float(mixing_limits(np.array([m_s]), channel, lifetimes_cm, np.asarray(limits, float)[:, None])[0])


#: Gamma(S -> pi pi) / theta^2 (GeV; pi+ pi- and pi0 pi0) vs m_S (GeV): Winkler 1809.01876, digitised in
#: JLTastet/scalar_portal decay/winkler_pi.txt (MIT licence), sorted by mass, 4 digits
WINKLER_PIPI = np.array([
    (0.2806, 5.778e-10), (0.2809, 7.32e-10), (0.2819, 8.204e-10), (0.2830, 1.003e-09), (0.2831, 6.134e-10),
    (0.2833, 1.091e-09), (0.2846, 1.267e-09), (0.2863, 1.425e-09), (0.2875, 1.643e-09), (0.2891, 1.812e-09),
    (0.2915, 1.986e-09), (0.2931, 2.259e-09), (0.2969, 2.517e-09), (0.3004, 2.882e-09), (0.3047, 3.2e-09),
    (0.3118, 3.816e-09), (0.3171, 4.191e-09), (0.3246, 4.868e-09), (0.3321, 5.298e-09), (0.3399, 6.049e-09),
    (0.3478, 6.547e-09), (0.3568, 7.419e-09), (0.3660, 8.018e-09), (0.3765, 9.041e-09), (0.3857, 9.749e-09),
    (0.3973, 1.096e-08), (0.4075, 1.174e-08), (0.4192, 1.325e-08), (0.4305, 1.412e-08), (0.4457, 1.586e-08),
    (0.4572, 1.694e-08), (0.4714, 1.886e-08), (0.4842, 1.999e-08), (0.5012, 2.229e-08), (0.5148, 2.35e-08),
    (0.5328, 2.615e-08), (0.5473, 2.761e-08), (0.5607, 2.902e-08), (0.5752, 3.136e-08), (0.5915, 3.323e-08),
    (0.6083, 3.544e-08), (0.6256, 3.822e-08), (0.6434, 4.024e-08), (0.6617, 4.391e-08), (0.6805, 4.643e-08),
    (0.6999, 5.101e-08), (0.7199, 5.471e-08), (0.7404, 6.089e-08), (0.7595, 6.567e-08), (0.7783, 7.38e-08),
    (0.7964, 8.022e-08), (0.8150, 9.083e-08), (0.8351, 1.014e-07), (0.8494, 1.144e-07), (0.8635, 1.271e-07),
    (0.8757, 1.421e-07), (0.8854, 1.57e-07), (0.8975, 1.667e-07), (0.9045, 1.915e-07), (0.9156, 2.15e-07),
    (0.9253, 2.451e-07), (0.9326, 2.738e-07), (0.9431, 2.899e-07), (0.9448, 3.259e-07), (0.9544, 3.71e-07),
    (0.9617, 4.361e-07), (0.9693, 4.908e-07), (0.9770, 5.781e-07), (0.9883, 6.431e-07), (0.9960, 7.463e-07),
    (1.0034, 4.82e-07), (1.0037, 5.407e-07), (1.0066, 6.406e-07), (1.0083, 4.407e-07), (1.0135, 3.816e-07),
    (1.0153, 3.303e-07), (1.0195, 2.922e-07), (1.0245, 2.594e-07), (1.0300, 2.31e-07), (1.0344, 2.044e-07),
    (1.0399, 1.804e-07), (1.0449, 1.6e-07), (1.0515, 1.427e-07), (1.0561, 1.165e-07), (1.0641, 1.048e-07),
    (1.0715, 9.053e-08), (1.0768, 7.932e-08), (1.0820, 7.149e-08), (1.0872, 6.446e-08), (1.0960, 5.653e-08),
    (1.1005, 5.056e-08), (1.1099, 4.427e-08), (1.1181, 3.879e-08), (1.1263, 3.411e-08), (1.1345, 2.99e-08),
    (1.1429, 2.635e-08), (1.1524, 2.317e-08), (1.1593, 2.046e-08), (1.1694, 1.809e-08), (1.1778, 1.601e-08),
    (1.1865, 1.431e-08), (1.1952, 1.286e-08), (1.2074, 1.155e-08), (1.2227, 1.021e-08), (1.2437, 9.407e-09),
    (1.2780, 9.648e-09), (1.3144, 1.077e-08), (1.3518, 1.143e-08), (1.3900, 1.039e-08), (1.4146, 9.343e-09),
    (1.4339, 8.261e-09), (1.4498, 7.332e-09), (1.4573, 6.583e-09), (1.4657, 5.969e-09), (1.4746, 5.343e-09),
    (1.4817, 4.77e-09), (1.4870, 4.292e-09), (1.4923, 3.867e-09), (1.4995, 3.479e-09), (1.5067, 3.085e-09),
    (1.5234, 2.737e-09), (1.5292, 2.555e-09), (1.5490, 2.838e-09), (1.5554, 3.235e-09), (1.5685, 3.764e-09),
    (1.5747, 4.227e-09), (1.5854, 4.799e-09), (1.5989, 5.407e-09), (1.6079, 6.076e-09), (1.6267, 6.807e-09),
    (1.6542, 7.636e-09), (1.6935, 7.419e-09), (1.7134, 6.7e-09), (1.7329, 6.006e-09), (1.7521, 5.365e-09),
    (1.7695, 4.808e-09), (1.7870, 4.28e-09), (1.8093, 3.783e-09), (1.8554, 3.458e-09), (1.9077, 3.364e-09),
    (1.9618, 3.466e-09), (2.0063, 3.609e-09),
])
#: Gamma(S -> K K) / theta^2 (GeV; K+ K- and K0 K0bar), same source (decay/winkler_K.txt)
WINKLER_KK = np.array([
    (0.9909, 4.189e-09), (0.9912, 7.4e-09), (0.9938, 4.565e-09), (0.9939, 6.417e-09), (0.9949, 5.244e-09),
    (0.9951, 7.793e-09), (0.9953, 8.673e-09), (0.9956, 9.653e-09), (0.9958, 1.074e-08), (0.9961, 1.196e-08),
    (0.9963, 1.331e-08), (0.9966, 1.481e-08), (0.9968, 1.648e-08), (0.9971, 1.834e-08), (0.9973, 2.041e-08),
    (0.9976, 2.272e-08), (0.9978, 2.528e-08), (0.9981, 2.814e-08), (0.9983, 3.132e-08), (0.9985, 3.485e-08),
    (0.9988, 3.879e-08), (0.9990, 4.317e-08), (0.9993, 4.804e-08), (0.9995, 5.347e-08), (0.9998, 3.856e-09),
    (0.9998, 5.95e-08), (1.0000, 6.622e-08), (1.0003, 7.37e-08), (1.0005, 8.202e-08), (1.0008, 9.129e-08),
    (1.0030, 1.061e-07), (1.0048, 1.224e-07), (1.0098, 1.438e-07), (1.0380, 1.393e-07), (1.0630, 1.247e-07),
    (1.0900, 1.119e-07), (1.1206, 1.018e-07), (1.1521, 9.472e-08), (1.1845, 8.989e-08), (1.2179, 8.717e-08),
    (1.2523, 8.62e-08), (1.2878, 8.749e-08), (1.3244, 9.24e-08), (1.3619, 9.32e-08), (1.4003, 9.115e-08),
    (1.4398, 8.812e-08), (1.4804, 8.531e-08), (1.5221, 8.244e-08), (1.5650, 7.921e-08), (1.6091, 7.494e-08),
    (1.6543, 6.907e-08), (1.6964, 6.227e-08), (1.7395, 5.6e-08), (1.7882, 5.057e-08), (1.8384, 4.622e-08),
    (1.8900, 4.217e-08), (1.9430, 3.843e-08), (1.9925, 3.518e-08), (2.0331, 3.353e-08),
])

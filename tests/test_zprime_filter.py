"""The zprime_recoil generator filter (configs/processes.yaml search_filters, simulation/production.py
``_pair_recoil_inside``): the recoil against the two hardest charged particles in the CDC, lab angle and M2."""

from __future__ import annotations

import awkward as ak
import numpy as np

from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.production import passes_filter
from belle_rare.simulation.truth import make_truth

BEAM = np.array([11.0, 0.0, 0.0, 3.0])  # (E, px, py, pz): lab e+e- at sqrt(s) = sqrt(121 - 9) = 10.58 GeV


def _truth(events: list[list[tuple[int, float, float, float]]]) -> ak.Array:
    """Final-state muons / electrons given as (pdg, px, py, pz)."""
    mass = {11: 0.000511, 13: 0.10566}
    cols = {k: [] for k in ("pdg", "status", "mother", "px", "py", "pz", "E", "mass", "x", "y", "z", "t")}
    for ev in events:
        cols["pdg"].append([p[0] for p in ev])
        cols["status"].append([1] * len(ev))
        cols["mother"].append([-1] * len(ev))
        for k, i in (("px", 1), ("py", 2), ("pz", 3)):
            cols[k].append([p[i] for p in ev])
        m = [mass[abs(p[0])] for p in ev]
        cols["mass"].append(m)
        cols["E"].append([float(np.sqrt(px**2 + py**2 + pz**2 + mm**2)) for (_, px, py, pz), mm in zip(ev, m)])
        for k in "xyzt":
            cols[k].append([0.0] * len(ev))
    return make_truth({k: ak.Array(v) for k, v in cols.items()}, np.tile(BEAM, (len(events), 1)))


def _recoil(ev: list[tuple[int, float, float, float]]) -> tuple[float, float]:
    """(M2, theta deg) of the beams minus the two muons, by hand."""
    mu = 0.10566
    p = np.sum([[px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mu**2)] for _, px, py, pz in ev[:2]], axis=0)
    rec = np.array([-p[0], -p[1], BEAM[3] - p[2], BEAM[0] - p[3]])
    return rec[3] ** 2 - rec[:3] @ rec[:3], float(np.degrees(np.arccos(rec[2] / np.linalg.norm(rec[:3]))))


def test_zprime_recoil_filter_cuts_the_recoil_angle_and_mass():
    spec = load_catalogue().search_filters["zprime_recoil"]
    # a Z'-like event: two muons going forward-ish, the recoil (px, py) sideways -> in the barrel, M2 ~ 10-20 GeV^2
    central = [(13, -2.0, 0.5, 2.5), (-13, -1.5, -0.5, 0.5)]
    m2, theta = _recoil(central)
    assert spec.pair_recoil.m2[0] < m2 < spec.pair_recoil.m2[1] and 27 < theta < 134
    # mu mu back to back with the e+e- energy: recoil ~ the boost, along +z (theta ~ 0), M2 ~ 0
    back_to_back = [(13, 2.0, 0.5, 3.0), (-13, -2.0, -0.5, -2.0)]  # recoil (0, 0, 2 GeV)
    assert _recoil(back_to_back)[1] < 27
    # two soft muons, the rest down the beam pipe (e e mu mu): M2 above the range
    soft = [(13, 0.5, 0.1, 0.3), (-13, -0.5, 0.1, 0.2)]
    assert _recoil(soft)[0] > spec.pair_recoil.m2[1]
    # a third soft charged particle does not change which two are the pair (highest pT)
    central_plus_soft = central + [(11, 0.06, 0.0, 0.0)]
    # a soft recoil (0.5 GeV, along the beam) at M2 ~ 0: its measured direction is resolution, the angle is not required
    soft_recoil = [(13, 5.0979, 0.0, 1.25), (-13, -5.0979, 0.0, 1.25)]  # recoil (0, 0, 0.5 GeV), M2 ~ 0
    m2, theta = _recoil(soft_recoil)
    assert abs(m2) < 3 and theta < 27
    assert passes_filter(_truth([central, back_to_back, soft, central_plus_soft, central[:1], soft_recoil]), spec).tolist() == [
        True, False, False, True, False, True]


def test_zprime_recoil_filter_is_looser_than_the_selection():
    """Recoil angle and M2 outside the search's cuts (configs/searches/zprime.yaml recoil), tracks as zprime's filter."""
    from belle_rare.processors.registry import get_search

    cfg = get_search("zprime").load_config()
    spec, plain = (load_catalogue().search_filters[k] for k in ("zprime_recoil", "zprime"))
    assert spec.pair_recoil.theta_deg[0] < cfg.recoil.theta_lab_deg[0] and spec.pair_recoil.theta_deg[1] > cfg.recoil.theta_lab_deg[1]
    assert spec.pair_recoil.m2[0] < cfg.recoil.m2_range[0] and spec.pair_recoil.m2[1] > cfg.recoil.m2_range[1]
    for key in ("min_charged", "charged_pt_min", "charged_theta_deg", "max_charged", "max_charged_pt_min"):
        assert getattr(spec, key) == getattr(plain, key)

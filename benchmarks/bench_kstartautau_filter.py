"""Could a generator-level filter cut the cost of kstartautau's backgrounds at 711 /fb? (issue 12, paper mode)

Reads a Belle sample directory (plain, unfiltered samples: ``belle_<dataset>_0000.root``) and, per dataset,
measures on the stored generator record (``MCParticle``) the efficiency of candidate filters, and how many
of the events that reach the search's four-track step keep it (a filter is only safe if that is ~1):

- ``>= N charged``: N charged final-state particles (e, mu, pi, K, p) with pT > 0.05 GeV in 16-151 deg
  (the search needs four signal-side tracks and a tag);
- ``K*0 pair``: an opposite-charge pair of those with M(K pi) in 0.75-1.05 GeV under either mass
  assignment (the K*0 window 0.8-1.0 GeV with margins; any track may fake the kaon).

The four-track step is approximated from the reconstructed columns: a neutral tag and exactly four
tracks outside it with |dr| < 2 cm, |dz| < 4 cm and zero total charge (no tag-quality cuts).
The cost a filter saves is at most 1 / efficiency of the plain sample's CPU (generation ~0.2 ms and
processing ~0.6 ms per event, the manifests' and metadata.json's cpu_seconds).

    .venv/bin/python benchmarks/bench_kstartautau_filter.py --samples DIR --datasets mixed uds charm tautau
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

M_K, M_PI = 0.493677, 0.13957  # GeV, PDG
LEPTONS = (11, 13)  # PDG codes: e, mu
CHARGED = (11, 13, 211, 321, 2212)  # e, mu, pi, K, p
COLUMNS = ["MCParticle_PDG", "MCParticle_status", "MCParticle_px", "MCParticle_py", "MCParticle_pz",
           "Track_inTag", "Track_dr", "Track_dz", "Track_charge", "Btag_charge"]


def generator_charged(a: ak.Array) -> tuple[ak.Array, ak.Array]:
    """Mask of charged final-state particles with pT > 0.05 GeV in 16-151 deg, and their charges."""
    apdg = abs(a.MCParticle_PDG)
    pt = np.hypot(a.MCParticle_px, a.MCParticle_py)
    cos = a.MCParticle_pz / np.maximum(np.sqrt(pt**2 + a.MCParticle_pz**2), 1e-12)
    theta = np.degrees(np.arccos(np.minimum(np.maximum(cos, -1.0), 1.0)))
    is_charged = sum((apdg == code for code in CHARGED), start=apdg < 0)
    mask = (a.MCParticle_status > 0) & is_charged & (pt > 0.05) & (theta > 16.0) & (theta < 151.0)
    # a negative lepton PDG code is a positive particle; a negative hadron code a negative one
    is_lepton = (apdg == LEPTONS[0]) | (apdg == LEPTONS[1])
    charge = ak.where(is_lepton, -1, 1) * np.sign(a.MCParticle_PDG)
    return mask, charge


def kstar_pair(a: ak.Array, mask: ak.Array, charge: ak.Array) -> np.ndarray:
    """Events with an opposite-charge pair with M(K pi) in 0.75-1.05 GeV (either assignment)."""
    px, py, pz, q = a.MCParticle_px[mask], a.MCParticle_py[mask], a.MCParticle_pz[mask], charge[mask]
    i, j = ak.unzip(ak.argcombinations(px, 2))
    p2i, p2j = px[i] ** 2 + py[i] ** 2 + pz[i] ** 2, px[j] ** 2 + py[j] ** 2 + pz[j] ** 2
    psum2 = (px[i] + px[j]) ** 2 + (py[i] + py[j]) ** 2 + (pz[i] + pz[j]) ** 2
    inside = q[i] != q[j]
    window = False
    for mi, mj in ((M_K, M_PI), (M_PI, M_K)):
        m = np.sqrt(np.maximum((np.sqrt(p2i + mi**2) + np.sqrt(p2j + mj**2)) ** 2 - psum2, 0.0))
        window = window | ((m > 0.75) & (m < 1.05))
    return ak.to_numpy(ak.any(inside & window, axis=1))


def four_track_step(a: ak.Array) -> np.ndarray:
    """Neutral tag and exactly four zero-charge IP tracks outside it (the search's four-track step, tag cuts aside)."""
    roe = (a.Track_inTag == 0) & (abs(a.Track_dr) < 2.0) & (abs(a.Track_dz) < 4.0)
    tag_charge = ak.to_numpy(ak.fill_none(ak.firsts(a.Btag_charge), 99)) if a.Btag_charge.ndim > 1 else ak.to_numpy(a.Btag_charge)
    return ((ak.to_numpy(ak.sum(roe, axis=1)) == 4) & (ak.to_numpy(ak.sum(ak.where(roe, a.Track_charge, 0), axis=1)) == 0)
            & (tag_charge == 0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, required=True)
    ap.add_argument("--datasets", nargs="+", default=["mixed", "uds", "charm", "tautau"])
    args = ap.parse_args()
    print(f"{'dataset':10s} {'events':>7s} {'4-track':>7s}  filter: efficiency (4-track events kept)")
    for dataset in args.datasets:
        files = sorted(args.samples.glob(f"belle_{dataset}_*.root"))
        a = ak.concatenate([uproot.open(f)["tree"].arrays(COLUMNS) for f in files])
        mask, charge = generator_charged(a)
        n_charged = ak.to_numpy(ak.sum(mask, axis=1))
        four = four_track_step(a)
        cells = [f">={k}: {np.mean(n_charged >= k):.3f} ({np.sum(four & (n_charged >= k))}/{four.sum()})" for k in (5, 6, 7, 8)]
        pair = kstar_pair(a, mask, charge)
        cells.append(f"K*0 pair: {pair.mean():.3f} ({np.sum(four & pair)}/{four.sum()})")
        print(f"{dataset:10s} {len(a):7d} {four.sum():7d}  " + "; ".join(cells))


if __name__ == "__main__":
    main()

"""Closure and speed of filtered and biased production (issue 11, item 3).

For each pair (plain sample, filtered and/or biased sample of the same physics) the rate per
generated event of a reconstructed selection is measured on both and compared:

- tau3mu (Belle II): tautau against tautau --filter tau3mu, tautau_3prong (weighted) and both;
  selection ">= 4 good tracks, zero total charge, three non-electron ones in one hemisphere" (the topology before muon ID);
- taulgamma (Belle): ee against ee --filter taulgamma and ee_central --filter taulgamma (weighted);
  selection "exactly two good opposite-charge tracks and an isolated photon above 0.5 GeV with
  -0.602 < cos theta < 0.829" (the e gamma preselection);
- taulphi (Belle II): uds and tautau, each against itself --filter taulphi; ">= 4 good tracks and an
  opposite-charge pair of non-electron tracks with M(KK) in 1.005-1.035 GeV" (before kaon ID).
- tau3mu_eemumu (Belle II): eemumu --filter tau3mu against eemumu_tagged --filter tau3mu (tagged scattered
  e+- enhanced, weighted); ">= 4 good tracks, zero total charge, three of them in one hemisphere" (tau3mu's
  topology before muon ID, electrons kept: the tagged e+- is the third muon candidate). The plain
  reference is itself filtered: unfiltered, 0.02 % of the events are selected.

Rates: sum of __weight__ over selected / generated events (the filter's rejected events count in
the denominator). Their agreement (pull) is the closure; the figure of merit is the statistical
variance of the rate times the CPU seconds spent (generation + detector + writing): its ratio plain /
filtered is the gain in effective events per CPU second.

    .venv/bin/python benchmarks/bench_filters.py --events 20000
    .venv/bin/python benchmarks/bench_filters.py --searches tau3mu_eemumu --manifests PLAIN.json BIASED.json

``--manifests`` measures existing samples instead (the first is the plain reference; CPU from their manifests'
``cpu_seconds``), e.g. a paper run's `eemumu --filter tau3mu` against its `eemumu_tagged --filter tau3mu`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.production import Request, produce

TRACK_BRANCHES = ["Track_px", "Track_py", "Track_pz", "Track_charge", "Track_dr", "Track_dz", "Track_electronID"]
PHOTON_BRANCHES = ["Photon_E", "Photon_px", "Photon_py", "Photon_pz"]
KAON_MASS = 0.493677


def read(manifest: dict, out: Path) -> ak.Array:
    """Every file of a produced dataset, concatenated (the branches the selections use)."""
    arrays = []
    for f in manifest["files"]:
        tree = uproot.open(out / f["path"])["tree"]
        # Belle files name the electron ID eIDBelle; the Belle selection here does not use it
        arrays.append(tree.arrays([b for b in ["__weight__", *TRACK_BRANCHES, *PHOTON_BRANCHES] if b in tree]))
    return ak.concatenate(arrays)


def good_tracks(ev: ak.Array) -> ak.Array:
    """Tracks from the IP in the CDC acceptance with pT > 0.1 GeV (as the searches' good tracks)."""
    p = np.sqrt(ev.Track_px**2 + ev.Track_py**2 + ev.Track_pz**2)
    cos = ev.Track_pz / p
    return (abs(ev.Track_dr) < 1.0) & (abs(ev.Track_dz) < 3.0) & (cos > -0.866) & (cos < 0.956) & (np.hypot(ev.Track_px, ev.Track_py) > 0.1)


def hadron_like(ev: ak.Array) -> ak.Array:
    """Good tracks that are not electrons (electronID < 0.5): the muon / kaon candidates' stand-in.

    Conversions in the material make e+e- tracks that no generator-level filter sees; the searches'
    muon and kaon ID reject them, so the closure selections do too (README, "Filtered and biased samples").
    """
    return good_tracks(ev) & (ev.Track_electronID < 0.5)


def select_tau3mu(ev: ak.Array) -> np.ndarray:
    """>= 4 good tracks with total charge 0, and three non-electron good tracks in one (lab) hemisphere about the leading one."""
    good = good_tracks(ev)
    return ak.to_numpy((ak.sum(good, axis=1) >= 4) & (ak.sum(ev.Track_charge[good], axis=1) == 0)
                       & three_in_a_hemisphere(ev, hadron_like(ev)))


def three_in_a_hemisphere(ev: ak.Array, tracks: ak.Array) -> ak.Array:
    """Whether three of the ``tracks`` (a track mask) lie in one (lab) hemisphere about the leading one."""
    px, py, pz = ev.Track_px[tracks], ev.Track_py[tracks], ev.Track_pz[tracks]
    lead = ak.argmax(px**2 + py**2 + pz**2, axis=1, keepdims=True)
    same = (px * ak.firsts(px[lead]) + py * ak.firsts(py[lead]) + pz * ak.firsts(pz[lead])) > 0
    n_same = ak.fill_none(ak.sum(same, axis=1), 0)
    return (n_same >= 3) | (ak.num(px) - n_same >= 3)


def select_taulgamma(ev: ak.Array) -> np.ndarray:
    """Exactly two good opposite-charge tracks and a photon above 0.5 GeV with -0.602 < cos theta < 0.829 (lab),
    more than 0.1 rad from both tracks.

    The isolation stands for what the search does to photons along a track: its brems recovery
    (0.05 rad) and cos(lepton, photon) < 0.8 with the photon in the lepton's hemisphere. Without it a
    third of the Bhabha events selected carry an electron's bremsstrahlung in the material, which
    no generator-level filter sees (README, "Filtered and biased samples").
    """
    good = good_tracks(ev)
    q = ev.Track_charge[good]
    tp = np.sqrt(ev.Track_px**2 + ev.Track_py**2 + ev.Track_pz**2)[good]
    tracks = ak.zip({"x": ev.Track_px[good] / tp, "y": ev.Track_py[good] / tp, "z": ev.Track_pz[good] / tp})
    gp = np.sqrt(ev.Photon_px**2 + ev.Photon_py**2 + ev.Photon_pz**2)
    photons = ak.zip({"x": ev.Photon_px / gp, "y": ev.Photon_py / gp, "z": ev.Photon_pz / gp})
    g, t = ak.unzip(ak.cartesian([photons, tracks], nested=True))
    closest = ak.fill_none(ak.max(g.x * t.x + g.y * t.y + g.z * t.z, axis=2), -1.0)  # cos of the smallest angle
    hard = (ev.Photon_E > 0.5) & (photons.z > -0.602) & (photons.z < 0.829) & (closest < np.cos(0.1))
    return ak.to_numpy((ak.num(q) == 2) & (ak.sum(q, axis=1) == 0) & ak.any(hard, axis=1))


def select_taulphi(ev: ak.Array) -> np.ndarray:
    """>= 4 good tracks and an opposite-charge pair of non-electron tracks with M(K+K-) in 1.005-1.035 GeV (both as kaons)."""
    good = good_tracks(ev)
    cand = hadron_like(ev)
    t = ak.zip({"px": ev.Track_px[cand], "py": ev.Track_py[cand], "pz": ev.Track_pz[cand], "q": ev.Track_charge[cand]})
    a, b = ak.unzip(ak.combinations(t, 2))
    ea = np.sqrt(a.px**2 + a.py**2 + a.pz**2 + KAON_MASS**2)
    eb = np.sqrt(b.px**2 + b.py**2 + b.pz**2 + KAON_MASS**2)
    m = np.sqrt(np.maximum((ea + eb) ** 2 - (a.px + b.px) ** 2 - (a.py + b.py) ** 2 - (a.pz + b.pz) ** 2, 0.0))
    pair = (a.q * b.q < 0) & (m > 1.005) & (m < 1.035)
    return ak.to_numpy((ak.sum(good, axis=1) >= 4) & ak.any(pair, axis=1))


def select_tau3mu_with_electrons(ev: ak.Array) -> np.ndarray:
    """>= 4 good tracks with total charge 0, three of them in one (lab) hemisphere about the leading one, and
    their momenta summing to more than 4 GeV (``select_tau3mu`` without the electron veto: e e mu mu's third muon
    candidate is a tagged e+-, and tau3mu's triplet carries sqrt(s) / 2; the momentum sum removes the mu pairs with
    a conversion pair, which have no tag and come 1000 x less often in eemumu_tagged, weighted 1000 x up)."""
    good = good_tracks(ev)
    px, py, pz = ev.Track_px[good], ev.Track_py[good], ev.Track_pz[good]
    hard = ak.sum(np.sqrt(px**2 + py**2 + pz**2), axis=1) > 4.0
    return ak.to_numpy((ak.num(px) >= 4) & (ak.sum(ev.Track_charge[good], axis=1) == 0)
                       & three_in_a_hemisphere(ev, good) & hard)


SELECTIONS = {"tau3mu": select_tau3mu, "taulgamma": select_taulgamma, "taulphi": select_taulphi,
              "tau3mu_eemumu": select_tau3mu_with_electrons}
FILTER_OF = {"taulgamma_isr": "taulgamma", "tau3mu_eemumu": "tau3mu"}  # cases that use another search's filter
SELECTION_OF = {"taulgamma_isr": "taulgamma"}  # ... and selection (default: the case's own, else its filter's)
PLAIN_FILTERED = {"tau3mu_eemumu"}  # cases whose plain reference is filtered too


def rate(ev: ak.Array, generated: int, selection) -> tuple[float, float, int, float]:
    """Weighted rate per generated event, its statistical error, the number of selected events and their mean weight."""
    w = ak.to_numpy(ev["__weight__"]).astype(float)
    sel = selection(ev)
    r = float(np.sum(w[sel])) / generated
    var = float(np.sum(w[sel] ** 2)) / generated**2 - r**2 / generated
    return r, float(np.sqrt(max(var, 0.0))), int(np.sum(sel)), float(np.mean(w[sel])) if sel.any() else 0.0


def measure(experiment: str, process: str, events: int, seed: int, search: str, filtered: bool, out: Path) -> dict:
    """Produce one sample and measure its selection rate, CPU time and throughput."""
    catalogue = load_catalogue()
    req = Request(experiment, process, events, seed, out, events_per_file=max(events, 1),
                  generator_filter=catalogue.search_filters[FILTER_OF.get(search, search)] if filtered else None,
                  filter_name=FILTER_OF.get(search, search) if filtered else None)
    cpu = time.process_time()
    manifest = produce(req, progress=False)
    cpu = time.process_time() - cpu
    r, err, n, mean_w = rate(read(manifest, out), manifest["generated_events"], SELECTIONS[SELECTION_OF.get(search, search)])
    return {
        "sample": f"{process}" + (f" --filter {FILTER_OF.get(search, search)}" if filtered else ""),
        "generated": manifest["generated_events"], "written": manifest["events"],
        "filter_efficiency": manifest["filter_efficiency"], "filter_efficiency_error": manifest["filter_efficiency_error"],
        "cpu_seconds": round(cpu, 2), "written_per_cpu_second": round(manifest["events"] / cpu, 1),
        "generated_per_cpu_second": round(manifest["generated_events"] / cpu, 1),
        "selected": n, "mean_selected_weight": mean_w, "rate": r, "rate_error": err,
        # variance x CPU time: the smaller, the more precision per CPU second
        "variance_x_cpu": err**2 * cpu,
    }


def measure_existing(path: Path, search: str) -> dict:
    """As ``measure`` on an existing sample (its manifest): rate of the case's selection, CPU from the manifest."""
    manifest = json.loads(path.read_text())
    cpu = sum(f["cpu_seconds"] for f in manifest["files"])
    r, err, n, mean_w = rate(read(manifest, path.parent), manifest["generated_events"], SELECTIONS[SELECTION_OF.get(search, search)])
    return {"sample": manifest["dataset"], "generated": manifest["generated_events"], "written": manifest["events"],
            "filter_efficiency": manifest.get("filter_efficiency", 1.0), "filter_efficiency_error": manifest.get("filter_efficiency_error", 0.0),
            "cpu_seconds": round(cpu, 2), "written_per_cpu_second": round(manifest["events"] / cpu, 1),
            "generated_per_cpu_second": round(manifest["generated_events"] / cpu, 1),
            "selected": n, "mean_selected_weight": mean_w, "rate": r, "rate_error": err, "variance_x_cpu": err**2 * cpu}


# search -> experiment, [(plain process, [(process, filtered) compared with it])]
CASES = {
    "tau3mu": ("belle2", [("tautau", [("tautau", True), ("tautau_3prong", False), ("tautau_3prong", True)])]),
    "taulgamma": ("belle", [("ee", [("ee", True), ("ee_central", True)])]),
    # the hard-ISR tau pairs (issue 11) against themselves filtered
    "taulgamma_isr": ("belle", [("tautau_hard_isr", [("tautau_hard_isr", True)])]),
    "taulphi": ("belle2", [("uds", [("uds", True)]), ("tautau", [("tautau", True)])]),
    # tau3mu's e e mu mu (issue 11): the tag-enhanced production against the plain one, both filtered
    "tau3mu_eemumu": ("belle2", [("eemumu", [("eemumu_tagged", True)])]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events of each plain sample; filtered ones write --events / 4")
    parser.add_argument("--plain-bhabha-events", type=int, help="events of the plain Bhabha sample (default 10 x --events: its rate is small)")
    parser.add_argument("--searches", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--manifests", type=Path, nargs="+", help="existing samples of one search's case (plain first)")
    args = parser.parse_args()
    results: dict[str, list[dict]] = {}
    for search in args.searches:
        experiment, groups = CASES[search]
        for plain_process, variants in groups:
            rows = [measure_existing(m, search) for m in args.manifests or []]
            for i, (process, filtered) in enumerate([] if rows else [(plain_process, search in PLAIN_FILTERED), *variants]):
                n = args.events // 4 if filtered else args.events
                if process == "ee" and not filtered:
                    n = args.plain_bhabha_events or 10 * args.events
                out = Path(tempfile.mkdtemp(prefix="filters-bench-"))
                try:
                    rows.append(measure(experiment, process, n, args.seed + i, search, filtered, out))
                finally:
                    shutil.rmtree(out, ignore_errors=True)
            plain = rows[0]
            for row in rows:
                row["pull_vs_plain"] = (row["rate"] - plain["rate"]) / np.hypot(row["rate_error"], plain["rate_error"]) if row is not plain else 0.0
                row["gain_vs_plain"] = plain["variance_x_cpu"] / row["variance_x_cpu"] if row["variance_x_cpu"] > 0 else float("inf")
            results[f"{search}/{plain_process}"] = rows
            print(f"\n{search} selection on {plain_process} ({experiment}): rate per generated event; gain = (variance x CPU s) plain / this")
            print(f"  {'sample':32s} {'generated':>9s} {'written':>8s} {'filter eff':>15s} {'CPU s':>6s} {'gen/s':>6s} "
                  f"{'sel':>5s} {'<w>sel':>6s} {'rate':>21s} {'pull':>6s} {'gain':>5s}")
            for row in rows:
                eff = f"{row['filter_efficiency']:.4f}+-{row['filter_efficiency_error']:.4f}"
                print(f"  {row['sample']:32s} {row['generated']:9d} {row['written']:8d} {eff:>15s} {row['cpu_seconds']:6.1f} "
                      f"{row['generated_per_cpu_second']:6.0f} {row['selected']:5d} {row['mean_selected_weight']:6.3f} "
                      f"{row['rate']:.3e} +- {row['rate_error']:.1e} {row['pull_vs_plain']:6.2f} {row['gain_vs_plain']:5.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

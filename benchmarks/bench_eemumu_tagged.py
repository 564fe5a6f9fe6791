"""Which e e mu mu events reach tau -> 3 mu, and the tag-enhanced generator against the plain one (issue 11).

``--topology MANIFEST``: runs tau3mu's selection (PID-weighted, as the paper mode; trigger not required) on an
e e mu mu sample (plain ``eemumu`` or ``eemumu_tagged``, e.g. ``--filter tau3mu``) and prints, by the truth of the
best triplet (its tracks' ``mcPDG``): the preselection steps, the number of good electron tracks (single or double
tag) of the (e, mu, mu) triplets, and the events in the (M_3mu, dE) plane beside the line dE = M^2 / (2 sqrt s) on
which a scattered e+- and the mu pair lie (README "eemumu_tagged").

``--generator SQRT_S EVENTS``: the rates of 0 / 1 / 2 tagged scattered leptons (|cos theta| < 0.97, hard frame) of
``EVENTS`` plain events against EVENTS / 10 tag-enhanced ones (weighted), at a fixed sqrt(s') (no detector).

    .venv/bin/python benchmarks/bench_eemumu_tagged.py --topology OUT/samples/tau3mu/belle2_eemumu_filter_tau3mu.json
    .venv/bin/python benchmarks/bench_eemumu_tagged.py --generator 10.58 2000000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import awkward as ak
import numpy as np

from belle_rare.configs.processes import load_catalogue
from belle_rare.processors.base import calibrations
from belle_rare.processors.event_objects import good_tracks
from belle_rare.processors.registry import get_search
from belle_rare.processors.tau3mu import PRESELECTION
from belle_rare.simulation.generators import two_photon as tp


def topology(manifest_path: Path, n_files: int | None) -> None:
    """tau3mu's preselection on an e e mu mu sample, by the truth of the best triplet."""
    from bench_taulgamma_background import read_events  # same directory

    manifest = json.loads(manifest_path.read_text())
    search = get_search("tau3mu")
    proc = search.processor("belle2", search.load_config(), pid_weighting=True)
    nominal = calibrations("belle2", nominal_only=True)[0]
    totals: dict[str, list[float]] = {}
    plane: list[tuple] = []

    def add(key: str, mask: np.ndarray, weight: np.ndarray) -> None:
        row = totals.setdefault(key, [0.0, 0.0, 0.0])
        row[0] += float(mask.sum())
        row[1] += float(weight[mask].sum())
        row[2] = max(row[2], float(weight[mask].max(initial=0.0)))

    for f in manifest["files"][:n_files]:
        ev = read_events(str(manifest_path.parent / f["path"]), manifest["dataset"], "background")
        sel = proc.select(ev, proc.objects(ev, nominal), "3mu")
        v = sel.values
        steps = [sel.passing(*PRESELECTION[: i + 1]) for i in range(len(PRESELECTION))]
        # the event's weight as the runner applies it before the luminosity scale: generator x PID weight
        w = ak.to_numpy(ev["__weight__"]).astype(float) * np.nan_to_num(v["pid_weight"])
        pdg = np.sort(np.abs(v["mu_pdg"]), axis=1).astype(int)
        n_e_triplet = (pdg == 11).sum(axis=1)
        e_mu_mu = (pdg == [11, 13, 13]).all(axis=1)
        good = good_tracks(ev.Track, proc.config.tracks)
        n_e_good = ak.to_numpy(ak.sum(good & (abs(ev.Track.mcPDG) == 11), axis=1))
        for label, mask in zip(PRESELECTION, steps):
            add(f"step: {label}", mask, w)
        for k in range(4):
            add(f"preselected, triplet with {k} electron(s)", steps[-1] & (n_e_triplet == k), w)
        for k in (1, 2):
            add(f"(e mu mu) past thrust, {k} good e track(s)", steps[1] & e_mu_mu & (n_e_good == k), w)
            add(f"(e mu mu) past missing momentum, {k} good e", steps[2] & e_mu_mu & (n_e_good == k), w)
            add(f"(e mu mu) preselected, {k} good e", steps[-1] & e_mu_mu & (n_e_good == k), w)
        in_plane = steps[-1] & (v["m"] > 1.6) & (v["m"] < 1.95) & (v["de"] > -0.5) & (v["de"] < 0.3)
        add("preselected, in the (M, dE) plane", in_plane, w)
        window = steps[-1] & (v["distance"] < proc.config.signal_region.outer_n_sigma)
        ellipse = steps[-1] & (v["distance"] < proc.config.signal_region.n_sigma)
        bdt_pass = v["score"] > proc.working_point
        for label, mask in (("20 sigma window", window), ("window, BDT pass", window & bdt_pass),
                            ("5 sigma ellipse", ellipse), ("ellipse, BDT pass", ellipse & bdt_pass)):
            for k in range(4):
                add(f"{label}, triplet with {k} electron(s)", mask & (n_e_triplet == k), w)
            for k in (1, 2):
                add(f"{label}, (e mu mu) with {k} good e", mask & e_mu_mu & (n_e_good == k), w)
        roots = np.sqrt(ak.to_numpy(ev.beamE) ** 2 - ak.to_numpy(ev.beamPx) ** 2 - ak.to_numpy(ev.beamPy) ** 2
                        - ak.to_numpy(ev.beamPz) ** 2)
        for i in np.flatnonzero(in_plane):
            plane.append((tuple(int(x) for x in pdg[i]), v["m"][i], v["de"][i], v["m"][i] ** 2 / (2 * roots[i]), v["distance"][i], w[i]))
    print(f"{manifest['dataset']}: {manifest['events']} events of {manifest['generated_events']} generated "
          f"(files used: {n_files or len(manifest['files'])}); count, sum of generator x PID weights, largest")
    for key, (n, wsum, wmax) in totals.items():
        print(f"  {key:55s} {n:8.0f} {wsum:12.5g} {wmax:10.3g}")
    print("  in the (M, dE) plane: triplet truth, M, dE, M^2 / (2 sqrt s), distance to the peak [sigma], weight")
    for row in sorted(plane, key=lambda r: r[4])[:30]:
        print(f"    {row[0]} {row[1]:.3f} {row[2]:+.3f} {row[3]:.3f} {row[4]:6.1f} {row[5]:.2e}")


def generator(sqrt_s: float, events: int) -> None:
    """Tag classes of plain and tag-enhanced events at one sqrt(s'), weighted rates and their pulls."""
    enh = load_catalogue().get("eemumu_tagged").two_photon_tag_enhancement
    bias = (enh.cos_theta_max, enh.factor, enh.double_factor)
    s = np.full(events, sqrt_s)
    plain = tp.sample_events(s, 13, 0.5, np.random.default_rng(22))
    biased, w = tp.sample_tag_enhanced_events(s[: events // 10], 13, 0.5, np.random.default_rng(23), bias)
    k_plain = tp.tagged_leptons(plain[0], plain[1], bias[0])
    k_biased = tp.tagged_leptons(biased[0], biased[1], bias[0])
    print(f"sqrt(s') = {sqrt_s} GeV, {events} plain and {events // 10} tag-enhanced events; mean weight "
          f"{w.mean():.4f} +- {w.std() / np.sqrt(w.size):.4f}")
    for k in range(3):
        a, b = k_plain == k, k_biased == k
        rp, ep = a.mean(), np.sqrt(a.sum()) / events
        rb, eb = np.sum(w[b]) / w.size, np.sqrt(np.sum(w[b] ** 2)) / w.size
        print(f"  {k} tags: plain {rp:.4e} +- {ep:.1e}, biased {rb:.4e} +- {eb:.1e}, pull {(rb - rp) / np.hypot(ep, eb):+.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", type=Path, help="an e e mu mu sample's manifest")
    parser.add_argument("--files", type=int, help="with --topology: only the first N files")
    parser.add_argument("--generator", nargs=2, metavar=("SQRT_S", "EVENTS"))
    args = parser.parse_args()
    if args.topology:
        topology(args.topology, args.files)
    if args.generator:
        generator(float(args.generator[0]), int(args.generator[1]))


if __name__ == "__main__":
    main()

"""Closure of a zprime generator filter event by event: which selected events of a looser sample it would reject.

Run: ``.venv/bin/python benchmarks/bench_zprime_filter_closure.py --samples DIR [--filter zprime_recoil]`` with
background samples made with a looser filter (e.g. ``--filter zprime``) in DIR. The zprime processor selects the
events (iterative executor, 79.7 /fb); the filter is evaluated on the truth record stored in the ntuples
(``MCParticle_*``, the event's beams) of exactly those events. A filter that is looser than the selection
rejects none of them: the rejected fraction of the selected yield (region ``selected``, and ``classified``) is
the bias a sample made with it would carry -- measured on the same events, so without the statistical
scatter of comparing two independent samples.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from belle_rare.analyses.runner import RunOptions, run_search
from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.production import passes_filter
from belle_rare.simulation.truth import make_truth


def truth_of(files: list[Path], events: np.ndarray) -> ak.Array:
    """The truth record (as the generator made it) of the given ``__event__`` numbers, in that order."""
    keys = {"pdg": "MCParticle_PDG", "status": "MCParticle_status", "mother": "MCParticle_motherIndex", "px": "MCParticle_px",
            "py": "MCParticle_py", "pz": "MCParticle_pz", "E": "MCParticle_E", "mass": "MCParticle_mass",
            "x": "MCParticle_prodVertexX", "y": "MCParticle_prodVertexY", "z": "MCParticle_prodVertexZ"}
    parts = []
    for f in files:
        arrays = uproot.open(f)["tree"].arrays([*keys.values(), "__event__", "beamE", "beamPx", "beamPy", "beamPz"])
        parts.append(arrays[np.isin(ak.to_numpy(arrays["__event__"]), events)])
    a = ak.concatenate(parts)
    order = {int(e): i for i, e in enumerate(ak.to_numpy(a["__event__"]))}
    a = a[np.array([order[int(e)] for e in events], dtype=np.int64)] if len(events) else a[:0]
    mc = {k: a[v] for k, v in keys.items()}
    mc["t"] = ak.zeros_like(mc["x"])
    beam = np.column_stack([ak.to_numpy(a[c]) for c in ("beamE", "beamPx", "beamPy", "beamPz")])
    return make_truth(mc, beam)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--filter", default="zprime_recoil")
    args = parser.parse_args()
    spec = load_catalogue().search_filters[args.filter]
    result = run_search(RunOptions(search="zprime", experiment="belle2", samples=args.samples,
                                   out=Path("/tmp/zprime-filter-closure-run"), executor="iterative", progress=False))
    meta, cols = result["metadata"]["datasets"], result["columns"]["classifier_inputs"]
    for name in sorted(cols):
        if meta[name]["kind"] != "background":
            continue
        c = {k: np.asarray(v.value) for k, v in cols[name]["mumu"].items()}
        manifest = json.loads((args.samples / f"belle2_{name}.json").read_text())  # its own files (a glob would
        files = [args.samples / f["path"] for f in manifest["files"]]               # also catch mumu_hard_isr_*)
        keep = passes_filter(truth_of(files, c["event"]), spec)
        w = c["weight"] * meta[name]["scale"]
        for lo, hi in ((-0.5, 9.0), (9.0, 81.0)):
            inside = (c["m2_recoil"] > lo) & (c["m2_recoil"] < hi)
            n, lost = int(inside.sum()), int((inside & ~keep).sum())
            frac = w[inside & ~keep].sum() / w[inside].sum() if n else float("nan")
            print(f"{name:32s} M2 [{lo:g}, {hi:g}]: {n:6d} selected simulated events, {lost:4d} rejected by "
                  f"{args.filter} ({frac:.2%} of the yield)")


if __name__ == "__main__":
    main()

"""zprime signal: selection efficiency and recoil-mass-squared resolution vs M_Z' (Belle II).

Run: ``.venv/bin/python benchmarks/bench_zprime_signal.py --samples DIR`` after
``belle-rare generate --experiment belle2 --process sig_zprime --mass M --events N --seed S --out DIR``
for a few masses. Every ``belle2_sig_zprime_m*.json`` manifest in DIR is processed with the zprime
processor (nominal, as data: no correction weights); printed per mass: the cutflow efficiencies, the
M2_recoil peak position and its Gaussian core width (fit within +-2 sigma, iterated), beside the
Punzi-net example's sigma(M2_recoil) (feichtip/punzinet examples/width.txt, in the search YAML).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from coffea.nanoevents import NanoEventsFactory

from belle_rare.processors.registry import get_search
from belle_rare.processors.resolution import gaussian_core
from belle_rare.processors.schema import BelleSchema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    args = parser.parse_args()
    search = get_search("zprime")
    config = search.load_config()
    processor = search.processor("belle2", config)
    paper = config.paper_m2_resolution
    for manifest in sorted(args.samples.glob("belle2_sig_zprime_m*.json"), key=lambda p: json.loads(p.read_text())["parameters"]["mass"]):
        meta = json.loads(manifest.read_text())
        mass = meta["parameters"]["mass"]
        cutflow, m2 = None, []
        for f in meta["files"]:
            path = str(args.samples / f["path"])
            events = NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, mode="virtual",
                                                metadata={"dataset": meta["dataset"], "filename": path, "is_data": True}).events()
            out = processor.process(events)
            raw = out["cutflow"][meta["dataset"]]["mumu"]["raw"]
            cutflow = raw if cutflow is None else {k: cutflow[k] + raw[k] for k in raw}
            m2.append(out["columns"]["classifier_inputs"][meta["dataset"]]["mumu"]["m2_recoil"].value)
        m2 = np.concatenate(m2)
        total = cutflow["all events"]
        print(f"M_Z' = {mass:g} GeV ({int(total)} events): " + ", ".join(f"{k} {v / total:.3f}" for k, v in cutflow.items() if k != "all events"))
        ref = min(paper, key=lambda m: abs(m - mass))
        mu, sigma, err = gaussian_core(m2, mass**2, paper[ref])
        print(f"  M2_recoil peak {mu:.3f} GeV^2 (M^2 = {mass**2:.3f}), core sigma {sigma:.3f} +- {err:.3f} GeV^2; "
              f"Punzi-net example at {ref:g} GeV: {paper[ref]:.3f} GeV^2; "
              f"fraction within +-2 sigma(paper) of M^2: {np.mean(np.abs(m2 - mass**2) < 2 * paper[ref]):.3f}")


if __name__ == "__main__":
    main()

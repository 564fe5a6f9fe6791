"""zprime signal: which emulated L1 lines fire on the events that pass every offline cut (N-1 trigger efficiency).

Run: ``.venv/bin/python benchmarks/bench_zprime_trigger.py --sample DIR/belle2_sig_zprime_m6.json`` after
``belle-rare generate --experiment belle2 --process sig_zprime --mass 6 --events 5000 --seed 999 --out DIR``.

The zprime processor runs with ``trigger: []`` (the search YAML's lines left out), nominal calibration, as data
(no weights); for the events of region ``selected`` it prints the share firing each L1 bit of the ntuple, the
search's own OR (``trigger`` of configs/searches/zprime.yaml), a few wider ORs, and the polar angle of the more
forward muon in the events the search's OR loses. Which lines the paper used is [NF]: this says what the
emulated menu does with the signal, not what the paper's trigger was.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import uproot
from coffea.nanoevents import NanoEventsFactory

from belle_rare.processors.base import calibrations
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema

WIDER = (("ecltaub2b",), ("ecltaub2b", "lml0", "lml10"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=Path, required=True, help="a sig_zprime manifest (belle-rare generate)")
    args = parser.parse_args()
    manifest = json.loads(args.sample.read_text())
    paths = [str(args.sample.parent / (f["path"] if isinstance(f, dict) else f)) for f in manifest["files"]]
    search = get_search("zprime")
    own = list(search.load_config().trigger)
    proc = search.processor("belle2", search.load_config().model_copy(update={"trigger": []}))
    selected, bits, theta_forward = [], {}, []
    for path in paths:
        events = NanoEventsFactory.from_root({path: manifest["tree"]}, schemaclass=BelleSchema, mode="eager", metadata={
            "dataset": manifest["dataset"], "is_data": True, "filename": path}).events()
        selection = proc.select(events, proc.objects(events, calibrations("belle2", nominal_only=True)[0]), proc.channels[0])
        selected.append(np.asarray(selection.regions["selected"]))
        cos = np.clip(selection.values["mu_cos"], -1.0, 1.0)
        theta_forward.append(np.degrees(np.arccos(cos)).min(axis=1))
        tree = uproot.open(path)[manifest["tree"]]
        for key in tree.keys(filter_name="L1PSNM__bo*"):
            bits.setdefault(key.removeprefix("L1PSNM__bo").removesuffix("__bc"), []).append(tree[key].array(library="np") > 0)
    m = np.concatenate(selected)
    fired = {k: np.concatenate(v) for k, v in bits.items()}
    theta = np.concatenate(theta_forward)
    print(f"{manifest['dataset']}: {m.sum():,} of {len(m):,} events pass every offline cut (trigger left out)")
    for name, f in fired.items():
        print(f"  {name:10s} {f[m].mean():6.3f}")
    ours = np.logical_or.reduce([fired[k] for k in own])
    print(f"  {' or '.join(own)} (the search's lines): {ours[m].mean():.3f}")
    for extra in WIDER:
        wider = ours | np.logical_or.reduce([fired[k] for k in extra])
        print(f"  ... or {' or '.join(extra)}: {wider[m].mean():.3f}")
    lost = m & ~ours
    if lost.any():
        q = np.percentile(theta[lost], [10, 50, 90])
        print(f"  lost events ({lost.sum():,}): more forward muon at theta 10/50/90 % = {q[0]:.0f} / {q[1]:.0f} / {q[2]:.0f} deg; "
              f"'ff' fires in {fired['ff'][lost].mean():.3f}, 'f' in {fired['f'][lost].mean():.3f} of them")


if __name__ == "__main__":
    main()

"""What the tau -> l gamma background is made of, and how much of it a production must simulate (issue 11).

For every background dataset of the sample directories given, the taulgamma processor's selection
(thrown PID) is applied and the events in the (M_bc, dE/sqrt(s)) fit box are classified by truth:

- the signal-side photon: ISR (Pythia shower, status 41-49, or a dedicated generator's photon without
  mother), FSR (Pythia's QED shower of the hard process, 51-59), pi0 / eta decays, radiation in a decay
  (the photon's mother a decay product), material bremsstrahlung (the detector's brems photon, linked to
  its lepton), beam background (no truth link), a hadron's shower (split-off, K_L, n);
- the signal-side track: the channel's lepton (from a tau or not) or a fake (its true species).

Selections, each inside the fit box M_bc in [1.5, 2.0] GeV, dE/sqrt(s) in [-0.10, 0.05] (the report's plane):
``presel`` the paper's preselection (two tracks, one signal-side photon with the lepton ID, tag veto);
``kin`` presel + 0.4 < cos(l, gamma) < 0.8 and energy asymmetry < 0.65 (the signal-side kinematics);
``all`` every cut of sec. 2; ``ellipse`` all + the 2 sigma ellipse. Yields are at 988 /fb.

    .venv/bin/python benchmarks/bench_taulgamma_background.py --samples DIR [DIR ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import awkward as ak
import numpy as np

from belle_rare.analyses.datasets import load_datasets
from belle_rare.processors.base import Calibration, calibrations
from belle_rare.processors.registry import get_search
from belle_rare.processors.taulgamma import CUT_VALUES, STEPS

LUMINOSITY_FB = 988.0
FIT_BOX = {"mbc": (1.5, 2.0), "de": (-0.10, 0.05)}
LEPTON = {"mugamma": 13, "egamma": 11}


def read_events(path: str, dataset: str, kind: str):
    """Eager NanoEvents of one file (every branch: the truth links and MCParticle)."""
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.schema import BelleSchema

    meta = {"dataset": dataset, "filename": path, "treename": "tree", "kind": kind, "is_data": False}
    return NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, metadata=meta, mode="eager").events()


def _at(column, index: np.ndarray) -> np.ndarray:
    """``column[e][index[e]]`` for every event e (one row per event)."""
    return ak.to_numpy(column[ak.from_regular(index[:, None])][:, 0])


def photon_origin(mc, event: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Truth class of the photon ``index`` (MCParticle row; -1 beam background) of each event."""
    out = np.full(len(event), "none", dtype=object)
    out[index == -1] = "beam background"
    ok = index >= 0
    if not ok.any():
        return out
    rows = mc[event[ok]]
    i = index[ok]
    pdg, status = np.abs(_at(rows.PDG, i)), np.abs(_at(rows.status, i))
    mother = _at(rows.motherIndex, i)
    mpdg = np.where(mother >= 0, np.abs(_at(rows.PDG, np.maximum(mother, 0))), 0)
    mstatus = np.where(mother >= 0, np.abs(_at(rows.status, np.maximum(mother, 0))), 0)
    cls = np.full(len(i), "other", dtype=object)
    cls[(pdg == 11) | (pdg == 13)] = "material brems"          # the detector's brems photon carries its lepton's link
    cls[(pdg != 22) & (pdg != 11) & (pdg != 13)] = "hadron shower / split-off"
    photon = pdg == 22
    cls[photon & (status >= 41) & (status <= 49)] = "ISR"
    cls[photon & (mother < 0)] = "ISR"
    cls[photon & (mpdg == 11) & (mstatus <= 21)] = "ISR"         # dedicated generators' ISR photon (mothers: the beams)
    cls[photon & (status >= 51) & (status <= 59)] = "FSR (hard process)"
    cls[photon & (mpdg == 111)] = "pi0"
    cls[photon & ((mpdg == 221) | (mpdg == 223) | (mpdg == 331))] = "eta / omega / eta'"
    cls[photon & ((mpdg == 11) | (mpdg == 13) | (mpdg == 15) | (mpdg == 211)) & (mstatus >= 91)] = "radiation in a decay"
    out[ok] = cls
    return out


def lepton_origin(mc, event: np.ndarray, index: np.ndarray, channel: str) -> np.ndarray:
    """Truth class of the signal-side track: the channel's lepton (from a tau or not) or the fake's species."""
    out = np.full(len(event), "none", dtype=object)
    out[index == -1] = "beam-background track"
    ok = index >= 0
    if not ok.any():
        return out
    rows = mc[event[ok]]
    i = index[ok]
    pdg, mother = np.abs(_at(rows.PDG, i)), _at(rows.motherIndex, i)
    mpdg = np.where(mother >= 0, np.abs(_at(rows.PDG, np.maximum(mother, 0))), 0)
    lepton = pdg == LEPTON[channel]
    cls = np.where(lepton & (mpdg == 15), f"{'mu' if channel == 'mugamma' else 'e'} from tau",
                   np.where(lepton, f"{'mu' if channel == 'mugamma' else 'e'} (prompt)", "fake: " + pdg.astype(str)))
    out[ok] = cls
    return out


def study(samples: list[Path]) -> dict:
    search = get_search("taulgamma")
    config = search.load_config()
    proc = search.processor("belle", config)
    proc.truth_links = True  # lepton_mc_index / photon_mc_index among the selection values
    nominal = [c for c in calibrations("belle", nominal_only=True)][0]
    assert isinstance(nominal, Calibration)
    result: dict = {}
    for sample in samples:
        for name, ds in load_datasets(sample, "belle").items():
            if ds.kind != "background":
                continue
            processed = sum(ds.files.values())
            scale = ds.scale(LUMINOSITY_FB, processed)
            acc: dict = defaultdict(lambda: defaultdict(float))
            for path in ds.files:
                events = read_events(path, name, ds.kind)
                objects = proc.objects(events, nominal)
                w = np.asarray(ak.to_numpy(events["__weight__"]), float) * scale
                for channel in proc.channels:
                    sel = proc.select(events, objects, channel)
                    v = sel.values
                    box = (v["mbc"] > FIT_BOX["mbc"][0]) & (v["mbc"] < FIT_BOX["mbc"][1]) & (v["de"] > FIT_BOX["de"][0]) & (v["de"] < FIT_BOX["de"][1])
                    stages = {
                        "presel": sel.passing(*STEPS) & box,
                        "kin": sel.passing(*STEPS, "cos_lgamma", "energy_asymmetry") & box,
                        "all": sel.passing(*STEPS, *CUT_VALUES) & box,
                    }
                    stages["ellipse"] = stages["all"] & sel.regions["signal"]
                    idx = np.flatnonzero(stages["presel"])
                    g_cls = photon_origin(events.MCParticle, idx, v["photon_mc_index"][idx])
                    l_cls = lepton_origin(events.MCParticle, idx, v["lepton_mc_index"][idx], channel)
                    for stage, mask in stages.items():
                        m = mask[idx]
                        key = f"{channel}/{stage}"
                        acc[key]["_raw"] += float(m.sum())
                        acc[key]["_yield"] += float(w[idx][m].sum())
                        acc[key]["_sumw2"] += float((w[idx][m] ** 2).sum())
                        for prefix, classes in (("photon", g_cls[m]), ("lepton", l_cls[m])):
                            labels, which = np.unique(classes.astype(str), return_inverse=True)
                            for label, total in zip(labels, np.bincount(which, weights=w[idx][m], minlength=len(labels))):
                                acc[key][f"{prefix}: {label}"] += float(total)  # a loop over the few truth classes
            result[name] = {"cross_section_nb": ds.cross_section_nb, "generated": round(ds.events / ds.filter_efficiency),
                            "equivalent_luminosity_fb": ds.events / ds.filter_efficiency / (ds.cross_section_nb * 1e6),
                            "yields_988": {k: dict(v) for k, v in acc.items()}}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, nargs="+", required=True)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = study(args.samples)
    for name, r in result.items():
        print(f"\n{name}: sigma {r['cross_section_nb']:.4g} nb, {r['generated']} generated = {r['equivalent_luminosity_fb']:.3g} /fb")
        for key, row in r["yields_988"].items():
            err = np.sqrt(row["_sumw2"])
            parts = ", ".join(f"{k} {v / row['_yield']:.0%}" for k, v in sorted(row.items(), key=lambda kv: -kv[1])
                              if not k.startswith("_") and row["_yield"] > 0)
            print(f"  {key:18s} raw {row['_raw']:6.0f}  at 988/fb {row['_yield']:10.4g} +- {err:.2g}   {parts}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

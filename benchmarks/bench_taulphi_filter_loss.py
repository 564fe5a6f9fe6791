"""What a generator-level filter would lose of taulphi's (M_tau, dE) plane, measured on a sample made without it.

Run: ``.venv/bin/python benchmarks/bench_taulphi_filter_loss.py "OUT/samples/taulphi/belle2_uds_filter_taulphi_00*.root"
[--files 4] [--filter taulphi_bb]``

A generator filter sees the generated particles only; a candidate the detector makes (a conversion electron as
the lepton, a decay in flight, a beam-background track) can reach the search's plane from an event the filter
rejects. So the filter (``configs/processes.yaml`` ``search_filters``) is applied to the written events' own
``MCParticle`` record (beams: the nominal ``beamE`` / ``beamP*``, which the filter's 2 GeV dE margin covers), and
the search's processor (PID-weighted, as the paper mode) runs on the passing and the failing events apart: every
candidate of the ``m_de`` plane (preselection and after the BDT) that the failing events hold is what the filtered
production would miss. Issue 11: the continuum samples of taulphi's paper mode are made with ``taulphi_bb``.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
from coffea.nanoevents import NanoEventsFactory

from belle_rare.configs.processes import load_catalogue
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema
from belle_rare.simulation.production import passes_filter

MC_FIELDS = {"pdg": "MCParticle_PDG", "status": "MCParticle_status", "px": "MCParticle_px", "py": "MCParticle_py",
             "pz": "MCParticle_pz", "E": "MCParticle_E"}
BEAM_FIELDS = {"beam_E": "beamE", "beam_px": "beamPx", "beam_py": "beamPy", "beam_pz": "beamPz"}


def filter_pass(path: str, filter_name: str) -> np.ndarray:
    """Whether each event of ``path`` passes the generator filter, from its stored MCParticle record."""
    arrays = uproot.open(path)["tree"].arrays([*MC_FIELDS.values(), *BEAM_FIELDS.values()])
    mc = ak.zip({k: arrays[v] for k, v in MC_FIELDS.items()})
    truth = ak.zip({"mc": mc, **{k: arrays[v] for k, v in BEAM_FIELDS.items()}}, depth_limit=1)
    return passes_filter(truth, load_catalogue().search_filters[filter_name])


def plane_candidates(proc, events, dataset: str) -> dict[tuple[str, str], tuple[float, int]]:
    """(channel, region) -> (summed weight, filled bins) of the processor's ``m_de`` plane for ``events``."""
    hists = proc.process(events)["histograms"][dataset]["m_de"]
    out = {}
    for channel in ("ephi", "muphi"):
        for region in ("presel", "BDT"):
            try:
                h = hists[{"channel": channel, "region": region}]
            except KeyError:  # no candidate in this region: the growing category axis lacks it
                out[(channel, region)] = (0.0, 0)
                continue
            out[(channel, region)] = (float(h.values().sum()), int(np.count_nonzero(h.values())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", help="glob of one dataset's ROOT files (quote it)")
    parser.add_argument("--files", dest="n_files", type=int, default=4, help="how many of them")
    parser.add_argument("--filter", default="taulphi_bb")
    args = parser.parse_args()
    files = sorted(glob.glob(args.files))[: args.n_files]
    if not files:
        raise SystemExit(f"no file matches {args.files}")
    dataset = Path(files[0]).stem.rsplit("_", 1)[0].removeprefix("belle2_")
    search = get_search("taulphi")
    proc = search.processor("belle2", search.load_config(), pid_weighting=True)
    totals: dict[tuple[str, str, str], list[float]] = {}
    kept = n = 0
    for path in files:
        keep = filter_pass(path, args.filter)
        kept, n = kept + int(keep.sum()), n + len(keep)
        events = NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, mode="eager",
                                             metadata={"dataset": dataset, "kind": "background", "filename": path}).events()
        for side, mask in (("pass", keep), ("fail", ~keep)):
            for (channel, region), (w, bins) in plane_candidates(proc, events[mask], dataset).items():
                acc = totals.setdefault((channel, region, side), [0.0, 0])
                acc[0] += w
                acc[1] += bins
    print(f"{dataset}: {n} events in {len(files)} files, filter '{args.filter}' keeps {kept / n:.4f}")
    print("channel region  passing: weight (filled bins)   failing: weight (filled bins)")
    for channel in ("ephi", "muphi"):
        for region in ("presel", "BDT"):
            (wp, bp), (wf, bf) = totals[(channel, region, "pass")], totals[(channel, region, "fail")]
            print(f"{channel:7s} {region:7s} {wp:10.4f} ({bp:4d})              {wf:10.4f} ({bf:4d})")


if __name__ == "__main__":
    main()

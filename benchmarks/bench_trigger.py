"""L1 trigger efficiency of generated samples, per line and per search, beside the published values.

Run: ``.venv/bin/python benchmarks/bench_trigger.py [--events N] [--seed S]``

Every sample goes through the full production chain (``production.produce_chunk``: generator,
detector response, trigger emulation, ROOT file) into a temporary directory; the bits are read
back from the file. Published references:

* Belle, NIM A479 (2002) 117: the multi-track, total-energy and isolated-cluster-counting triggers
  each > 96 % efficient for multi-hadronic events, combined > 99.5 %.
* Belle II, basf2 ``trg/doc/index.rst``: B Bbar trigger efficiency "very close to 100 %".
* Belle II tau -> 3 mu (arXiv:2405.07386, sec. 5): "the efficiency of trigger selections based on the
  ECL only is 88 %" (signal; measured here after the search's preselection and after the full selection).
* Published L1 efficiencies for tau pairs and mu mu (gamma) at Belle or Belle II: NOT FOUND (searched
  the tau-mass 2305.19116, R_mu 2405.14625, tau -> l phi 2305.04759 and trigger papers); the numbers
  printed for them are the emulation's only.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import uproot
from rich.console import Console
from rich.table import Table

from belle_rare.simulation.detector import load_detector
from belle_rare.simulation.detector.trigger import branch_name
from belle_rare.simulation.production import Chunk, Request, chunk_path, produce_chunk

#: line groups: (label, lines, published reference)
GROUPS = {
    "belle2": [
        ("ECL only (tau3mu ECL lines)", ("hie", "c4", "lml0", "lml6", "lml8", "lml10", "ecltaub2b"), ""),
        ("CDC (ff | fff)", ("ff", "fff"), ""),
        ("tau3mu / taulphi OR", ("hie", "c4", "lml0", "lml6", "lml8", "lml10", "ecltaub2b", "ff", "fff"),
         "B Bbar: 'very close to 100 %'"),
        ("mu mu lines (ff | mu_pair | lml10)", ("ff", "mu_pair", "lml10"), ""),
    ],
    "belle": [
        ("multi-track (two | three track)", ("two_track", "three_track"), "hadronic: > 96 %"),
        ("total energy (hie)", ("hie",), "hadronic: > 96 %"),
        ("cluster count (icn4)", ("icn4",), "hadronic: > 96 %"),
        ("taulgamma OR", ("two_track", "three_track", "hie", "icn4", "klm_mu"), "hadronic combined: > 99.5 %"),
    ],
}
PROCESSES = {
    "belle2": ("tautau", "mumu", "mixed", "uds", "sig_tau3mu", "sig_taumuphi"),
    "belle": ("tautau", "mumu", "mixed", "uds", "sig_taumugamma", "sig_tauegamma"),
}
#: search, channel, signal process per experiment (efficiency after the search's preselection)
SEARCH_SIGNALS = {"belle2": [("tau3mu", "3mu", "sig_tau3mu"), ("taulphi", "muphi", "sig_taumuphi")],
                  "belle": [("taulgamma", "mugamma", "sig_taumugamma"), ("taulgamma", "egamma", "sig_tauegamma")]}
ECL_ONLY = ("hie", "c4", "lml0", "lml6", "lml8", "lml10", "ecltaub2b")


def produce(experiment: str, process: str, events: int, seed: int, out: Path) -> Path:
    req = Request(experiment, process, events, seed, out)
    chunk = Chunk(0, events, seed, 0)
    produce_chunk(req, chunk)
    return chunk_path(req, chunk)


def read_bits(path: Path, lines) -> dict[str, np.ndarray]:
    with uproot.open(path) as f:
        tree = f["tree"]
        return {line: tree[branch_name(line)].array(library="np") for line in lines}


def hadronic(path: Path) -> np.ndarray:
    """A Belle HadronB-like multi-hadronic selection (representative): >= 3 IP tracks with pT > 0.1 GeV,
    visible energy >= 0.2 sqrt(s), ECL energy (lab) between 0.1 and 0.8 sqrt(s)."""
    with uproot.open(path) as f:
        a = f["tree"].arrays(["Track_px", "Track_py", "Track_pz", "Track_E", "Track_dr", "Track_dz", "Track_clusterE",
                              "Photon_E", "Ecms"])
    good = (np.hypot(a.Track_px, a.Track_py) > 0.1) & (abs(a.Track_dr) < 2) & (abs(a.Track_dz) < 4)
    import awkward as ak

    e_ecl = ak.to_numpy(ak.sum(a.Track_clusterE, axis=1) + ak.sum(a.Photon_E, axis=1))
    e_vis = ak.to_numpy(ak.sum(a.Track_E[good], axis=1) + ak.sum(a.Photon_E, axis=1))
    w = ak.to_numpy(a.Ecms)
    return ak.to_numpy(ak.sum(good, axis=1) >= 3) & (e_vis >= 0.2 * w) & (e_ecl > 0.1 * w) & (e_ecl < 0.8 * w)


def either(bits: dict[str, np.ndarray], lines) -> np.ndarray:
    return np.logical_or.reduce([bits[line] for line in lines])


def fmt(k: int, n: int) -> str:
    if n == 0:
        return "-"
    eff = k / n
    return f"{100 * eff:.1f} +- {100 * np.sqrt(max(eff * (1 - eff), 1.0 / n) / n):.1f}"


def selected_mask(search: str, channel: str, path: Path, experiment: str, full: bool) -> np.ndarray:
    """Events passing the search's preselection (``full``: also its signal region / BDT), no trigger cut."""
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.base import Calibration
    from belle_rare.processors.registry import get_search
    from belle_rare.processors.schema import BelleSchema

    s = get_search(search)
    proc = s.processor(experiment, s.load_config())
    events = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, mode="eager",
                                         metadata={"dataset": "bench", "filename": str(path)}).events()
    selection = proc.select(events, proc.objects(events, Calibration()), channel)
    r = selection.regions
    if full:  # the signal region after every cut (tau3mu, taulphi: and the BDT)
        return r[{"tau3mu": "SR_pass", "taulphi": "SR", "taulgamma": "signal"}[search]]
    return r["presel"] if "presel" in r else r["signal"] | r["outside"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    console = Console(width=250)
    with tempfile.TemporaryDirectory(prefix="trigger-bench-") as tmp:
        for experiment in ("belle2", "belle"):
            lines = list(load_detector(experiment).trigger.lines)
            paths = {p: produce(experiment, p, args.events, args.seed, Path(tmp)) for p in PROCESSES[experiment]}
            bits = {p: read_bits(path, lines) for p, path in paths.items()}
            for p in ("mixed", "uds"):  # the NIM's "multi-hadronic" samples: after a hadronic selection
                keep = hadronic(paths[p])
                bits[f"{p} (hadronic sel.)"] = {line: v[keep] for line, v in bits[p].items()}
            table = Table(title=f"{experiment}: L1 efficiency (%) per line, {args.events} generated events per process")
            table.add_column("line")
            for p in bits:
                table.add_column(p, justify="right")
            for line in lines:
                table.add_row(line, *(fmt(int(bits[p][line].sum()), len(bits[p][line])) for p in bits))
            for label, group, ref in GROUPS[experiment]:
                table.add_row(f"[bold]{label}[/]" + (f" ({ref})" if ref else ""),
                              *(fmt(int(either(bits[p], group).sum()), len(bits[p][lines[0]])) for p in bits))
            console.print(table)

            for search, channel, process in SEARCH_SIGNALS[experiment]:
                group = ECL_ONLY if experiment == "belle2" else GROUPS["belle"][3][1]
                label = "ECL-only lines" if experiment == "belle2" else "taulgamma lines"
                for full in (False, True):
                    try:
                        mask = selected_mask(search, channel, paths[process], experiment, full)
                    except Exception as err:  # e.g. no stored BDT model
                        console.print(f"{search} {channel}: selection not available ({type(err).__name__}: {err})")
                        continue
                    fired = either(bits[process], group)[mask]
                    ref = " (paper: 88 %)" if search == "tau3mu" and experiment == "belle2" else ""
                    stage = "full selection" if full else "preselection"
                    detail = ""
                    if experiment == "belle2":  # the paper: "most events" come from hie
                        hie = bits[process]["hie"][mask]
                        hie_c4 = either(bits[process], ("hie", "c4"))[mask]
                        detail = f"; hie alone {fmt(int(hie.sum()), len(hie))} %, hie | c4 {fmt(int(hie_c4.sum()), len(hie))} %"
                    console.print(f"{search} {channel} signal after {stage} ({mask.sum()} events): "
                                  f"{label} {fmt(int(fired.sum()), len(fired))} %{ref}{detail}")


if __name__ == "__main__":
    main()

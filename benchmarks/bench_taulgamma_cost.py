"""Core-hours for 988 /fb-equivalent statistics of each tau -> l gamma background production (issue 11).

For each (process, filter) the whole chain (generator, detector, writing) runs in this process on
``--events`` generated events and its CPU time is measured; the cost of 988 /fb is
sigma x 988 /fb x CPU seconds per generated event. A weighted (biased) production reaches the
statistical precision of 988 /fb of plain events on a selection with sigma x 988 /fb x R generated
events, R = sum(w^2) / sum(w) over the selected events (1 for unweighted samples): R is read from a
``bench_taulgamma_background.py --json`` output (its ``kin`` selection: the paper's preselection +
cos(l, gamma) + energy asymmetry in the fit box).

    .venv/bin/python benchmarks/bench_taulgamma_cost.py --events 20000 [--study study.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.manifest import NB_TO_INV_FB
from belle_rare.simulation.production import Request, produce

LUMINOSITY_FB = 988.0
# (process, generator filter): the productions that matter for taulgamma's fit box
PRODUCTIONS = [
    ("tautau", None), ("tautau", "taulgamma"),
    ("tautau_hard_isr", None), ("tautau_hard_isr", "taulgamma"),
    ("tautau_isr_central", "taulgamma"),
    ("mumu_hard_isr", "taulgamma"), ("mumu_isr_central", "taulgamma"), ("ee_central", "taulgamma"),
]


def cpu_per_generated(process: str, search_filter: str | None, events: int, seed: int) -> tuple[float, dict]:
    """CPU seconds per generated event of the whole chain, and the manifest."""
    catalogue = load_catalogue()
    out = Path(tempfile.mkdtemp(prefix="lgamma-cost-"))
    try:
        n = events if search_filter is None else max(events // 4, 1)  # filtered: --events counts written events
        req = Request("belle", process, n, seed, out, events_per_file=n,
                      generator_filter=catalogue.search_filters[search_filter] if search_filter else None,
                      filter_name=search_filter)
        produce(Request("belle", process, 200, seed + 1, out / "warm", events_per_file=200), progress=False)  # imports, Pythia init
        cpu = time.process_time()
        manifest = produce(req, progress=False)
        cpu = time.process_time() - cpu
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return cpu / manifest["generated_events"], manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument("--study", type=Path, help="bench_taulgamma_background.py --json output (for R of the weighted samples)")
    parser.add_argument("--only", nargs="+", help="these processes only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    study = json.loads(args.study.read_text()) if args.study else {}
    rows = []
    for process, search_filter in PRODUCTIONS:
        if args.only and process not in args.only:
            continue
        cpu, manifest = cpu_per_generated(process, search_filter, args.events, args.seed)
        needed = manifest["cross_section_nb"] * NB_TO_INV_FB * LUMINOSITY_FB
        r_by_channel = {}
        for name, entry in study.items():
            if entry.get("process", name.split("_filter_")[0]) != process:
                continue
            scale = entry["cross_section_nb"] * NB_TO_INV_FB * LUMINOSITY_FB / entry["generated"]
            for key, row in entry["yields_988"].items():
                if key.endswith("/kin") and row["_yield"] > 0:
                    r_by_channel[key.split("/")[0]] = row["_sumw2"] / (row["_yield"] * scale)
        r = max(r_by_channel.values()) if r_by_channel and load_catalogue().get(process).biased else 1.0
        hours = needed * cpu * r / 3600
        rows.append({"process": process, "filter": search_filter, "cpu_us_per_generated": 1e6 * cpu,
                     "filter_efficiency": manifest["filter_efficiency"], "events_988": needed, "R": r,
                     "R_by_channel": r_by_channel, "core_hours_988": hours})
        print(f"{process:20s} {str(search_filter):10s} {1e6 * cpu:7.1f} us/generated  filter eff {manifest['filter_efficiency']:.3f}  "
              f"988/fb = {needed:.3g} events  R = {r:.3f}  -> {hours:.2f} core-hours")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

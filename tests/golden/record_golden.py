"""Record seeded golden outputs of the tau searches (pre-refactor API, issue 9).

Generates fixed small samples, runs taulgamma / tau3mu / taulphi with the iterative executor,
computes their limits and writes cutflows, stats-model region yields, validation rows and
limits to ``tests/golden/golden.json``. ``tests/test_golden.py`` reruns the same and compares.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console

GOLDEN = Path(__file__).with_name("golden.json")

# (experiment, process, events, seed)
SAMPLES = (
    ("belle", "sig_taumugamma", 2000, 31), ("belle", "sig_tauegamma", 1500, 32), ("belle", "tautau", 1500, 33),
    ("belle", "mumu", 500, 34),
    ("belle2", "sig_tau3mu", 2000, 41), ("belle2", "sig_taumuphi", 1500, 42), ("belle2", "sig_tauephi", 1500, 43),
    ("belle2", "tautau", 1500, 44),
)
SEARCHES = {"taulgamma": "belle", "tau3mu": "belle2", "taulphi": "belle2"}


def make_samples(out: Path) -> None:
    from belle_rare.simulation.production import Request, produce

    for experiment, process, events, seed in SAMPLES:
        produce(Request(experiment, process, events, seed, out, events_per_file=1000), progress=False)


def run_all(samples: Path, results: Path) -> None:
    from belle_rare.analyses.outputs import write_run_outputs
    from belle_rare.analyses.run_command import REPORTS
    from belle_rare.analyses.runner import RunOptions, run_search
    import importlib

    console = Console(file=open("/dev/null", "w"))
    for search, experiment in SEARCHES.items():
        opts = RunOptions(search=search, experiment=experiment, samples=samples, out=results, executor="iterative",
                          progress=False, chunksize=700)
        result = run_search(opts)
        report = importlib.import_module(REPORTS[search]).write_reports
        write_run_outputs(results, search, result["histograms"], result["cutflow"], result["metadata"],
                          extra=lambda tmp: report(result, tmp, console))
    from belle_rare.stats.summary import limit_all

    limit_all(results)


def region_yields(results: Path, search: str) -> dict:
    """Sum over the fit bins of every (histogram, dataset, channel, region, variation) the stats model reads."""
    import coffea.util
    import numpy as np

    from belle_rare.stats.model_config import load_stats_config

    cfg = load_stats_config(search)
    hists = coffea.util.load(str(results / search / "histograms.coffea"))
    out = {}
    for ch in cfg.channels:
        h = hists[ch.histogram]
        regions = {ch.region}
        for s in ch.samples:
            dd = getattr(s, "data_driven", None)
            if dd is not None:
                regions |= {v for k, v in dd.model_dump().items() if "region" in k and isinstance(v, str)}
                for k, v in dd.model_dump().items():
                    if isinstance(v, dict) and v.get("regions"):
                        regions |= set(v["regions"])
        for dataset in h.axes["dataset"]:
            for region in sorted(regions):
                if region not in h.axes["region"] or ch.name not in h.axes["channel"]:
                    continue
                for variation in h.axes["variation"]:
                    v = h[{"dataset": dataset, "channel": ch.name, "region": region, "variation": variation}]
                    val, var = float(np.sum(v.values())), float(np.sum(v.variances()))
                    if val or var:
                        out[f"{ch.histogram}/{dataset}/{ch.name}/{region}/{variation}"] = [val, var]
    return out


def summarise(results: Path) -> dict:
    out = {}
    for search in SEARCHES:
        d = results / search
        limits = json.loads((d / "limits.json").read_text())
        out[search] = {
            "cutflow": json.loads((d / "cutflow.json").read_text()),
            "validation": json.loads((d / "validation.json").read_text()),
            "yields": region_yields(results, search),
            "limits": [{"signal": e["signal"], "limit": e["limit"], "expected": e["physics"]["expected"],
                        "observed": e["physics"]["observed"]} for e in limits["limits"]],
        }
    return out


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_samples(tmp / "samples")
        run_all(tmp / "samples", tmp / "results")
        GOLDEN.write_text(json.dumps(summarise(tmp / "results"), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

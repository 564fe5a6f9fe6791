"""Histogram memory of one search: largest histogram, all histograms, one chunk's output, peak RSS.

Run (new code)::

    .venv/bin/python benchmarks/bench_memory.py --search taulgamma [--samples DIR] [--json out.json]

Run the pre-refactor code (``git worktree add /tmp/before 089a7ef``) with the same venv::

    cd /tmp/before && PYTHONPATH=/tmp/before /work/main/.venv/bin/python \\
        /work/main/benchmarks/bench_memory.py --search taulgamma --samples DIR --json before.json

Measures, on ``make run``-like samples of the search's experiment:

(a) the in-memory size (bin contents, flow included) of the largest histogram and of all histograms
    of the merged run output -- for the ``{dataset: {name: Hist}}`` layout the largest histogram is
    the name summed over datasets (comparable with the old dense ``dataset`` axis) and the largest
    single ``Hist`` object;
(b) one chunk's processor output as coffea ships it from a worker: pickled, and lz4-framed pickle at
    the executors' default level 1 -- the processor run directly on the first chunk (``--chunksize``
    entries) of the largest file of the search's signal datasets (the first named on a tie);
(c) peak RSS (``ru_maxrss``) of a full run with the iterative executor, in a fresh subprocess.

Without ``--samples`` the ``make run`` samples of the experiment (every process of
``configs/processes.yaml``, 4,000 events, 20,000 / 10,000 for the searches' samples, seeds
``2026 + 100 i_experiment + j_process``, 10,000 events per file) are generated once into
``$XDG_CACHE_HOME/belle-rare/bench_memory/samples`` (``~/.cache/...``).

Code layout: ``new`` imports ``belle_rare.*`` (histograms ``{dataset: {name: Hist}}``); ``old``
imports the pre-refactor top-level packages (``analyses``, ``processors``, ...; a flat
``{name: Hist}`` with a ``dataset`` axis). ``auto`` (default) picks ``old`` when ``analyses.runner``
is importable as a top-level module, i.e. when the old tree is on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

# the make run samples (analyses/demo.py at 089a7ef): fixed here so before and after read the same files
DEMO_EVENTS = 4000
DEMO_EVENTS_PER_FILE = 10_000
DEMO_SEED = 2026
LARGER_SAMPLES = {
    ("belle", "sig_taumugamma"): 20_000,
    ("belle", "sig_tauegamma"): 20_000,
    ("belle", "tautau"): 20_000,
    ("belle2", "sig_tau3mu"): 20_000,
    ("belle2", "sig_taumuphi"): 10_000,
    ("belle2", "sig_tauephi"): 10_000,
    ("belle2", "tautau"): 20_000,
}
SEARCH_EXPERIMENT = {"taulgamma": "belle", "tau3mu": "belle2", "taulphi": "belle2"}
# the chunk of (b) comes from the largest file of the search's own signal datasets
SEARCH_SIGNALS = {"taulgamma": ("sig_taumugamma", "sig_tauegamma"), "tau3mu": ("sig_tau3mu",),
                  "taulphi": ("sig_taumuphi", "sig_tauephi")}
MB = 1e6
LZ4_LEVEL = 1  # coffea's executors: compression=1 (processor/executor.py, _compress)
MARK = "BENCH_MEMORY_RESULT "


# ---------------------------------------------------------------------------------------------
# the one place the two code layouts differ: module paths


def detect_layout() -> str:
    try:
        return "old" if importlib.util.find_spec("analyses.runner") is not None else "new"
    except ModuleNotFoundError:
        return "new"


def module(layout: str, name: str):
    """``name`` is the old top-level path (``analyses.runner``); the new one is under ``belle_rare``."""
    return importlib.import_module(name if layout == "old" else f"belle_rare.{name}")


# ---------------------------------------------------------------------------------------------
# histogram sizes (either layout)


def hist_nbytes(h) -> int:
    import numpy as np

    return int(np.asarray(h.view(flow=True)).nbytes)


def histogram_sizes(histograms: Mapping) -> dict:
    """Per-name bytes summed over datasets, the largest single Hist, the total, the Hist count."""
    import hist

    per_name: dict[str, int] = {}
    single = ("", "", 0)
    count = 0

    def visit(mapping: Mapping, dataset: str) -> None:
        nonlocal single, count
        for key, value in mapping.items():
            if isinstance(value, hist.Hist):
                n = hist_nbytes(value)
                count += 1
                per_name[key] = per_name.get(key, 0) + n
                if n > single[2]:
                    single = (key, dataset, n)
            elif isinstance(value, Mapping):
                visit(value, str(key))

    visit(histograms, "")
    largest = max(per_name.items(), key=lambda kv: kv[1], default=("", 0))
    return {
        "total_bytes": sum(per_name.values()),
        "largest_name": largest[0],
        "largest_bytes": largest[1],
        "largest_single_name": single[0],
        "largest_single_dataset": single[1],
        "largest_single_bytes": single[2],
        "n_hist_objects": count,
        "per_name_bytes": dict(sorted(per_name.items(), key=lambda kv: -kv[1])),
    }


# ---------------------------------------------------------------------------------------------
# samples


def default_samples() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "belle-rare" / "bench_memory" / "samples"


def ensure_samples(layout: str, samples: Path, experiment: str, workers: int) -> None:
    """Generate the missing make-run datasets of ``experiment`` into ``samples``."""
    production = module(layout, "simulation.production")
    experiments = module(layout, "configs.experiment").EXPERIMENTS
    names = list(module(layout, "configs.processes").load_catalogue().processes)
    i = experiments.index(experiment)
    for j, process in enumerate(names):
        if (samples / f"{experiment}_{process}.json").exists():
            continue
        events = LARGER_SAMPLES.get((experiment, process), DEMO_EVENTS)
        req = production.Request(experiment=experiment, process=process, events=events, seed=DEMO_SEED + 100 * i + j,
                                 out=samples, events_per_file=DEMO_EVENTS_PER_FILE)
        start = time.perf_counter()
        production.produce(req, workers=workers, progress=False)
        print(f"  generated {experiment} {process}: {events} events, {time.perf_counter() - start:.1f} s", flush=True)


# ---------------------------------------------------------------------------------------------
# (a) + (c): a full iterative run, in a subprocess of its own


def full_run(layout: str, search: str, samples: Path, chunksize: int) -> dict:
    runner = module(layout, "analyses.runner")
    with tempfile.TemporaryDirectory() as tmp:
        opts = runner.RunOptions(search=search, experiment=SEARCH_EXPERIMENT[search], samples=samples, out=Path(tmp),
                                 executor="iterative", workers=1, chunksize=chunksize, progress=False)
        start = time.perf_counter()
        result = runner.run_search(opts)
        wall = time.perf_counter() - start
    sizes = histogram_sizes(result["histograms"])
    events = sum(d["read"] for d in result["metadata"]["events"].values())
    # Linux: KiB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {**sizes, "peak_rss_bytes": peak, "wall_seconds": round(wall, 2), "events": events,
            "datasets": len(result["metadata"]["events"]), "code_version": result["metadata"].get("code_version")}


def run_child(args: argparse.Namespace, layout: str) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--search", args.search, "--samples", str(args.samples),
           "--layout", layout, "--chunksize", str(args.chunksize)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"full run failed (exit {proc.returncode})")
    return json.loads(lines[-1][len(MARK):])


# ---------------------------------------------------------------------------------------------
# (b): one chunk, processed directly


def largest_signal_file(layout: str, samples: Path, search: str) -> tuple[str, str, int]:
    datasets = module(layout, "analyses.datasets").load_datasets(samples, SEARCH_EXPERIMENT[search])
    files = [(name, path, n) for name in SEARCH_SIGNALS[search] if name in datasets for path, n in datasets[name].files.items()]
    if not files:
        raise SystemExit(f"none of {', '.join(SEARCH_SIGNALS[search])} in {samples}")
    return max(files, key=lambda f: f[2])  # max() keeps the first of equal ones


def new_processor(layout: str, search: str, experiment: str):
    """As the layout's ``run_search`` builds it."""
    registry = module(layout, "processors.registry")
    if hasattr(registry, "get_search"):  # new: Search(processor, config_file, ...)
        spec = registry.get_search(search)
        return spec.processor(experiment, spec.load_config())
    spec = registry.load_search(search)  # old: Search(processor_class, config, ...)
    return spec.processor_class(experiment, spec.config)


def one_chunk(layout: str, search: str, samples: Path, chunksize: int) -> dict:
    import lz4.frame
    import uproot
    from coffea.nanoevents import NanoEventsFactory

    experiment = SEARCH_EXPERIMENT[search]
    dataset, path, entries = largest_signal_file(layout, samples, search)
    stop = min(chunksize, entries)
    proc = new_processor(layout, search, experiment)
    schema = module(layout, "processors.schema").BelleSchema
    with uproot.open(path) as file:
        events = NanoEventsFactory.from_root(
            file=file, treepath="tree", schemaclass=schema, mode="virtual", entry_start=0, entry_stop=stop,
            metadata={"dataset": dataset, "filename": path, "treename": "tree", "entrystart": 0, "entrystop": stop},
        ).events()
        start = time.perf_counter()
        out = proc.process(events)
        seconds = time.perf_counter() - start
    pickled = pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)
    compressed = lz4.frame.compress(pickled, compression_level=LZ4_LEVEL)
    sizes = histogram_sizes(out.get("histograms", {}))
    return {
        "dataset": dataset, "file": path, "entries": stop, "process_seconds": round(seconds, 2),
        "pickle_bytes": len(pickled), "lz4_pickle_bytes": len(compressed),
        "hist_total_bytes": sizes["total_bytes"], "largest_name": sizes["largest_name"], "largest_bytes": sizes["largest_bytes"],
    }


# ---------------------------------------------------------------------------------------------


def print_table(report: dict) -> None:
    run, chunk = report["run"], report["chunk"]
    rows = [
        ("largest histogram (summed over datasets)", f"{run['largest_name']}", run["largest_bytes"]),
        ("largest single Hist object", f"{run['largest_single_name']} {run['largest_single_dataset']}".strip(),
         run["largest_single_bytes"]),
        ("all histograms, merged run", f"{run['n_hist_objects']} Hist objects", run["total_bytes"]),
        ("one chunk: histograms in memory", f"{chunk['entries']} ev of {Path(chunk['file']).name}", chunk["hist_total_bytes"]),
        ("one chunk: pickled output", "", chunk["pickle_bytes"]),
        (f"one chunk: lz4(pickle), level {LZ4_LEVEL}", "", chunk["lz4_pickle_bytes"]),
        ("peak RSS, full iterative run", f"{run['events']} events, {run['wall_seconds']} s", run["peak_rss_bytes"]),
    ]
    print(f"\n{report['search']} ({report['experiment']}, layout {report['layout']}, code {run.get('code_version')}, "
          f"samples {report['samples']})")
    width = max(len(r[0]) for r in rows)
    detail = max(len(r[1]) for r in rows)
    for what, info, value in rows:
        print(f"  {what:<{width}}  {info:<{detail}}  {value / MB:10.2f} MB")
    top = list(run["per_name_bytes"].items())[:5]
    print("  largest histograms: " + ", ".join(f"{k} {v / MB:.2f} MB" for k, v in top))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", required=True, choices=sorted(SEARCH_EXPERIMENT))
    parser.add_argument("--samples", type=Path, help="sample directory (default: generated make-run samples in the cache)")
    parser.add_argument("--layout", choices=("auto", "old", "new"), default="auto")
    parser.add_argument("--chunksize", type=int, default=50_000, help="entries per chunk (the runner's default)")
    parser.add_argument("--workers", type=int, default=2, help="processes for generating missing samples")
    parser.add_argument("--json", type=Path, help="write the measurements here")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    layout = detect_layout() if args.layout == "auto" else args.layout
    if args.child:
        print(MARK + json.dumps(full_run(layout, args.search, args.samples, args.chunksize)), flush=True)
        return 0
    experiment = SEARCH_EXPERIMENT[args.search]
    if args.samples is None:
        args.samples = default_samples()
        ensure_samples(layout, args.samples, experiment, args.workers)
    args.samples = args.samples.resolve()
    report = {
        "search": args.search, "experiment": experiment, "layout": layout, "samples": str(args.samples),
        "chunksize": args.chunksize, "python": sys.executable, "cwd": os.getcwd(),
        "pythonpath": os.environ.get("PYTHONPATH", ""),
    }
    report["chunk"] = one_chunk(layout, args.search, args.samples, args.chunksize)
    report["run"] = run_child(args, layout)
    print_table(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

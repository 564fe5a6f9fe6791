"""`make bench`: throughput, I/O ratio, scaling and memory of every installed search, one table.

Run: ``.venv/bin/python benchmarks/suite.py [--events N] [--chunksize C] [--work DIR]
[--processes SEARCH=PROC,PROC ...] [--only SEARCH ...] [--experiment EXP ...]``

For every search registered under the ``belle_rare.searches`` entry points (none is named here),
on its demo samples -- the processes its ``Demo`` asks more events for (``Demo.larger_samples``:
its signals and main background), ``N`` events each, files of ``C`` events, seed 15 + j -- on
every experiment of its ``Demo`` (one row each: kstartautau on Belle and Belle II; ``--experiment``
picks) or else its first experiment, it measures, one after the other in one process (the machines are shared: CPU seconds, not wall
time, wherever one core is meant):

- events/s/core, nominal pass (only the nominal calibration and the nominal weight are filled) and
  with every variation (the default run): events / CPU seconds of an iterative run (warmed up);
- processor time / uproot read: the all-variations CPU time over the CPU time of reading and
  decompressing the search's declared branches (``required_branches()``) of the same files with
  uproot alone (the median of 5 passes after a warm-up pass), and the same for the nominal pass;
- dask speed-up 1 -> 2 workers: wall time of a LocalCluster run with one worker over two (the load
  average is printed beside it: on a loaded machine this is a lower bound);
- peak RSS of a run (iterative, fresh subprocess) over the first process's sample at 1 x and 10 x its
  events (10 x: hard links to the same files, so the same chunks ten times): the largest RSS sampled
  every 20 ms during the run, after imports, model loading and a one-chunk warm-up (``ru_maxrss``
  reports the import-time peak, about 530 MB for every search; it is kept in the JSON);
- chunk output: one chunk's processor output (the first ``C`` events of the first file) as coffea
  ships it from a worker, lz4-framed cloudpickle at the executors' level 1.

After each search's row, a reference row on the same files and chunks (issue 15's yardstick: "a minimal
coffea processor (three-muon mass from ``events.Track``) reads make run's Belle II samples at about
99,000 events/s, 2.1 x the uproot read of its branches"): ``ThreeMuonMass`` run by coffea's own
``Runner`` with its defaults (iterative executor, ``BelleSchema``, its metadata pass over the files,
uproot's default options), events/s/core and its CPU time over the uproot read of the branches it
touches. What coffea itself costs per chunk on this machine, beside what the search costs.

A search without a ``Demo`` or whose ``Demo`` names no samples is skipped with the reason, unless
``--processes SEARCH=PROC,...`` names its processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

MB = 1e6
#: passes of the uproot read (``uproot_read_cpu``): their median is the read time
READ_REPEATS = 5
CHILD_MARK = "SUITE_RSS "


def demo_processes(search: Any, overrides: dict[str, list[str]]) -> tuple[list[str], str | None]:
    """The processes the suite generates for ``search``, or a reason to skip it."""
    if search.name in overrides:
        return overrides[search.name], None
    if search.demo is None:
        return [], "no Demo (not part of make run): pass --processes NAME=PROC,..."
    if not search.demo.larger_samples:
        return [], "its Demo names no samples of its own (Demo.larger_samples): pass --processes NAME=PROC,..."
    return list(search.demo.larger_samples), None


def make_samples(directory: Path, experiment: str, processes: list[str], events: int, chunksize: int) -> Path:
    """Generate (once: kept in ``directory`` between calls) ``events`` of each process."""
    from belle_rare.simulation.production import Request, produce

    for j, process in enumerate(processes):
        manifest = directory / f"{experiment}_{process}.json"
        if manifest.is_file() and json.loads(manifest.read_text())["events"] == events:
            continue
        produce(Request(experiment, process, events, 15 + j, directory, events_per_file=chunksize), workers=2, progress=False)
    return directory


def tenfold(samples: Path, experiment: str, process: str, out: Path, times: int = 10) -> Path:
    """A sample directory whose one manifest lists every file of ``process`` ``times`` times (hard links)."""
    manifest = json.loads((samples / f"{experiment}_{process}.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for copy in range(times):
        for f in manifest["files"]:
            name = f"copy{copy}_{Path(f['path']).name}"
            if not (out / name).exists():
                os.link(samples / f["path"], out / name)
            files.append({**f, "path": name})
    manifest.update(files=files, events=manifest["events"] * times, generated_events=manifest["generated_events"] * times)
    (out / f"{experiment}_{process}.json").write_text(json.dumps(manifest))
    return out


@contextlib.contextmanager
def nominal_pass() -> Iterator[None]:
    """The base processor fills only the nominal calibration and the nominal weight."""
    from belle_rare.core.histograms import NOMINAL
    from belle_rare.processors import base

    calibrations, variations = base.calibrations, base.Calibration.variations
    base.calibrations = lambda experiment, nominal_only: calibrations(experiment, True)
    base.Calibration.variations = lambda self, is_data: [NOMINAL]
    try:
        yield
    finally:
        base.calibrations, base.Calibration.variations = calibrations, variations


def timed_run(search: str, experiment: str, samples: Path, out: Path, chunksize: int, executor: str = "iterative",
              workers: int = 1, max_chunks: int | None = None) -> tuple[float, float, int]:
    """(CPU seconds of this process, wall seconds, events read) of one run."""
    from belle_rare.analyses.runner import RunOptions, run_search

    opts = RunOptions(search=search, experiment=experiment, samples=samples, out=out, executor=executor,
                      workers=workers, chunksize=chunksize, max_chunks=max_chunks, progress=False)
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_search(opts)
    return (time.process_time() - cpu, time.perf_counter() - wall,
            sum(d["read"] for d in result["metadata"]["events"].values()))


def uproot_read_cpu(search: Any, experiment: str, samples: Path, repeats: int = READ_REPEATS,
                    branches: list[str] | None = None) -> float:
    """CPU seconds to read and decompress the search's declared branches (or ``branches``) of every
    file with uproot: the median of ``repeats`` passes over the files after one unmeasured pass.

    One pass is short (0.2-0.6 CPU s for the suite's samples) and was measured once, first: it
    paid one-time costs (uproot's lazy imports, decompression setup) and the load of the moment,
    which made the ratio vary x2.5 between runs of the same code (README, taulgamma 5.9 vs 2.3)."""
    import statistics

    import uproot

    from belle_rare.analyses.datasets import load_datasets

    if branches is None:
        branches = search.processor(experiment, search.load_config()).required_branches()
    paths = [path for ds in load_datasets(samples, experiment).values() for path in ds.files]
    passes = []
    for _ in range(repeats + 1):
        start = time.process_time()
        for path in paths:
            with uproot.open(path) as f:
                f["tree"].arrays(branches, library="ak")
        passes.append(time.process_time() - start)
    return statistics.median(passes[1:])


#: the muon mass (GeV; PDG 2024) of the reference processor's three-muon hypothesis
MUON_MASS = 0.1056583755
#: the branches ``ThreeMuonMass`` touches (its uproot read)
THREE_MUON_BRANCHES = ["nTrack", "Track_px", "Track_py", "Track_pz"]


def three_muon_processor() -> Any:
    """issue 15's reference processor: the invariant mass of the first three tracks of every event with
    at least three, each with the muon mass, filled into one histogram (awkward + coffea behaviours,
    as a first coffea analysis would write it)."""
    import awkward as ak
    import hist
    import numpy as np
    from coffea import processor

    class ThreeMuonMass(processor.ProcessorABC):
        def process(self, events: Any) -> dict[str, Any]:
            tracks = events.Track[ak.num(events.Track) >= 3][:, :3]
            muons = ak.zip({"x": tracks.px, "y": tracks.py, "z": tracks.pz,
                            "t": np.sqrt(tracks.px**2 + tracks.py**2 + tracks.pz**2 + MUON_MASS**2)},
                           with_name="LorentzVector", behavior=events.behavior)
            mass = (muons[:, 0] + muons[:, 1] + muons[:, 2]).mass
            h = hist.Hist.new.Reg(200, 0.0, 4.0, name="mass").Double().fill(ak.to_numpy(mass))
            return {"mass": h, "events": processor.value_accumulator(int, len(events))}

        def postprocess(self, accumulator: Any) -> Any:
            return accumulator

    return ThreeMuonMass()


def reference_row(search: Any, experiment: str, samples: Path, chunksize: int) -> dict[str, Any]:
    """``ThreeMuonMass`` over the search's files with coffea's own ``Runner`` defaults (a warm-up
    chunk first): events/s/core and its CPU time over the uproot read of ``THREE_MUON_BRANCHES``."""
    from coffea import processor

    from belle_rare.analyses.datasets import fileset, load_datasets
    from belle_rare.processors.schema import BelleSchema

    files = fileset(load_datasets(samples, experiment))

    def run(maxchunks: int | None) -> tuple[float, int]:
        runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=BelleSchema, chunksize=chunksize,
                                  maxchunks=maxchunks)
        cpu = time.process_time()
        out = runner(files, three_muon_processor(), treename="tree")
        return time.process_time() - cpu, out["events"].value

    run(1)  # imports, behaviours
    cpu, n = run(None)
    read = uproot_read_cpu(search, experiment, samples, branches=THREE_MUON_BRANCHES)
    return {"search": "coffea minimal (three-muon mass)", "experiment": experiment, "processes": [f"{search.name}'s files"],
            "events": n, "events_per_s_core_nominal": n / cpu, "events_per_s_core_all": n / cpu, "cpu_nominal_s": cpu,
            "cpu_all_s": cpu, "uproot_read_cpu_s": read, "over_read_nominal": cpu / read, "over_read_all": cpu / read,
            "reference": True}


def chunk_output_bytes(search: Any, experiment: str, samples: Path, process: str, chunksize: int) -> int:
    """One chunk's output, lz4-framed cloudpickle (level 1), as a worker ships it."""
    import cloudpickle
    import lz4.frame
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.analyses.datasets import load_datasets
    from belle_rare.processors.schema import BelleSchema

    ds = next(d for d in load_datasets(samples, experiment).values() if d.process == process)
    path = next(iter(ds.files))
    proc = search.processor(experiment, search.load_config())
    events = NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, mode="virtual", entry_stop=chunksize,
                                         metadata={"dataset": ds.name, "filename": path}).events()
    return len(lz4.frame.compress(cloudpickle.dumps(proc.process(events)), compression_level=1))


def peak_rss_mb(search: str, experiment: str, samples: Path, chunksize: int) -> tuple[float, float, float]:
    """(RSS after setup, peak RSS during the run, ru_maxrss) of a fresh process running ``search``
    (iterative) over ``samples``, in MB."""
    out = subprocess.run([sys.executable, __file__, "--rss-child", search, experiment, str(samples), str(chunksize)],
                         capture_output=True, text=True, check=True)
    line = next(line for line in out.stdout.splitlines() if line.startswith(CHILD_MARK))
    base, peak, maxrss = (float(x) for x in line[len(CHILD_MARK):].split())
    return base, peak, maxrss


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


@contextlib.contextmanager
def sampled_peak_rss(every: float = 0.02):
    """Yields a one-element list that holds, after the block, the largest RSS (MB) sampled every
    ``every`` seconds while the block ran (a thread; ru_maxrss would also count earlier peaks)."""
    import threading

    peak, stop = [current_rss_mb()], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], current_rss_mb())
            stop.wait(every)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], current_rss_mb())


def rss_child(search: str, experiment: str, samples: str, chunksize: str) -> None:
    """Prints the RSS after imports and setup, the largest RSS sampled (every 20 ms) during the run,
    and ru_maxrss (which also counts the import-time peak)."""
    from belle_rare.processors.registry import get_search

    found = get_search(search)
    found.processor(experiment, found.load_config())  # imports and models: before the sampling starts
    with tempfile.TemporaryDirectory() as tmp:
        timed_run(search, experiment, Path(samples), Path(tmp), int(chunksize), max_chunks=1)  # numba, lazy imports
        base = current_rss_mb()
        with sampled_peak_rss() as peak:
            timed_run(search, experiment, Path(samples), Path(tmp) / "run", int(chunksize))
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # kB (KiB) on Linux
    print(f"{CHILD_MARK}{base:.1f} {peak[0]:.1f} {maxrss:.1f}")


def bench_experiments(search: Any) -> tuple[str, ...]:
    """The experiments a search is benchmarked on: its ``Demo``'s (kstartautau: Belle and Belle II), else its first."""
    return search.demo.experiments if search.demo is not None else search.experiments[:1]


def search_samples(search: Any, experiment: str, processes: list[str], args: argparse.Namespace,
                   work: Path) -> tuple[Path, Path]:
    """(the experiment's sample directory, a directory of links to this search's processes only)."""
    samples = make_samples(work / "samples" / experiment, experiment, processes, args.events, args.chunksize)
    selected = work / "selected" / f"{search.name}_{experiment}"
    selected.mkdir(parents=True, exist_ok=True)
    for process in processes:
        for f in samples.glob(f"{experiment}_{process}*"):
            if not (selected / f.name).exists():
                os.link(f, selected / f.name)
    return samples, selected


def bench_search(search: Any, experiment: str, processes: list[str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    samples, selected = search_samples(search, experiment, processes, args, work)
    row: dict[str, Any] = {"search": search.name, "experiment": experiment, "processes": processes}
    if not args.memory_only:
        runs = work / "runs" / f"{search.name}_{experiment}"
        timed_run(search.name, experiment, selected, runs / "warm", args.chunksize, max_chunks=1)  # imports, numba, models
        with nominal_pass():
            cpu_nominal, _, n = timed_run(search.name, experiment, selected, runs / "nominal", args.chunksize)
        cpu_all, _, n_all = timed_run(search.name, experiment, selected, runs / "all", args.chunksize)
        read = uproot_read_cpu(search, experiment, selected)
        _, wall1, _ = timed_run(search.name, experiment, selected, runs / "d1", args.chunksize, "dask", 1)
        _, wall2, _ = timed_run(search.name, experiment, selected, runs / "d2", args.chunksize, "dask", 2)
        row |= {
            "events": n_all, "events_per_s_core_nominal": n / cpu_nominal, "events_per_s_core_all": n_all / cpu_all,
            "cpu_nominal_s": cpu_nominal, "cpu_all_s": cpu_all, "uproot_read_cpu_s": read,
            "over_read_nominal": cpu_nominal / read, "over_read_all": cpu_all / read,
            "dask_wall_1_s": wall1, "dask_wall_2_s": wall2, "speedup_1_to_2": wall1 / wall2,
            "load_average": os.getloadavg()[0],
        }
    return row | memory(search, experiment, samples, processes[0], args, work)


def memory(search: Any, experiment: str, samples: Path, first: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Peak RSS at 1 x and 10 x the events of the first process, and one chunk's output size."""
    one = tenfold(samples, experiment, first, work / "rss" / f"{search.name}_{experiment}_1x", times=1)
    ten = tenfold(samples, experiment, first, work / "rss" / f"{search.name}_{experiment}_10x", times=10)
    base1, rss1, max1 = peak_rss_mb(search.name, experiment, one, args.chunksize)
    _, rss10, max10 = peak_rss_mb(search.name, experiment, ten, args.chunksize)
    return {
        "rss_events_1x": args.events, "rss_after_setup_mb": base1, "peak_rss_1x_mb": rss1, "peak_rss_10x_mb": rss10,
        "rss_growth": rss10 / rss1, "maxrss_1x_mb": max1, "maxrss_10x_mb": max10,
        "chunk_output_mb": chunk_output_bytes(search, experiment, samples, first, args.chunksize) / MB,
    }


def print_table(rows: list[dict[str, Any]], skipped: dict[str, str], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"belle-rare bench: {args.events} events per process, chunks of {args.chunksize}")
    columns = ("search", "events", "ev/s/core nominal", "ev/s/core all var.", "/ uproot read (nom. / all)",
               "dask 1->2", "peak RSS 1x / 10x (MB)", "chunk output (MB)")
    for c in columns:
        table.add_column(c, justify="left" if c == "search" else "right")
    for r in rows:
        if r.get("reference"):
            table.add_row(f"  {r['search']} ({', '.join(r['processes'])})", str(r["events"]),
                          f"{r['events_per_s_core_nominal']:,.0f}", "", f"{r['over_read_nominal']:.1f}", "", "", "")
            continue
        if "events" not in r:  # --memory-only
            r = {"events": 0, "events_per_s_core_nominal": float("nan"), "events_per_s_core_all": float("nan"),
                 "over_read_nominal": float("nan"), "over_read_all": float("nan"), "speedup_1_to_2": float("nan"),
                 "load_average": os.getloadavg()[0], **r}
        table.add_row(
            f"{r['search']} ({r['experiment']}: {', '.join(r['processes'])})", str(r["events"]),
            f"{r['events_per_s_core_nominal']:,.0f}", f"{r['events_per_s_core_all']:,.0f}",
            f"{r['over_read_nominal']:.1f} / {r['over_read_all']:.1f}",
            f"{r['speedup_1_to_2']:.2f} (load {r['load_average']:.1f})",
            f"{r['peak_rss_1x_mb']:.0f} / {r['peak_rss_10x_mb']:.0f} ({r['rss_growth']:.2f} x; {r['rss_after_setup_mb']:.0f} after setup)",
            f"{r['chunk_output_mb']:.2f}",
        )
    console = Console(width=200)
    console.print(table)
    for name, reason in skipped.items():
        console.print(f"skipped {name}: {reason}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        rss_child(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000, help="events per process (default 50,000)")
    parser.add_argument("--chunksize", type=int, default=50_000, help="events per file and per chunk (default: run's 50,000)")
    parser.add_argument("--work", type=Path, help="samples and runs (default: a temporary directory)")
    parser.add_argument("--processes", nargs="*", default=[], metavar="SEARCH=PROC,PROC",
                        help="the processes of a search whose Demo names none")
    parser.add_argument("--only", nargs="*", metavar="SEARCH", help="only these searches")
    parser.add_argument("--experiment", nargs="*", metavar="EXP", help="only these experiments (default: every experiment of a search's Demo)")
    parser.add_argument("--json", type=Path, help="write the rows here too")
    parser.add_argument("--memory-only", action="store_true", help="only the peak RSS and chunk output columns")
    parser.add_argument("--no-reference", action="store_true", help="without the minimal coffea processor's rows")
    args = parser.parse_args()
    overrides = {k: v.split(",") for k, v in (item.split("=", 1) for item in args.processes)}
    from belle_rare.core.errors import UserError
    from belle_rare.processors.registry import get_search, search_names

    rows, skipped = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        for name in search_names():
            if args.only and name not in args.only:
                continue
            try:
                search = get_search(name)
            except UserError as err:
                skipped[name] = str(err)
                continue
            processes, reason = demo_processes(search, overrides)
            if reason:
                skipped[name] = reason
                print(f"skip {name}: {reason}", flush=True)
                continue
            for experiment in bench_experiments(search):
                if args.experiment and experiment not in args.experiment:
                    continue
                print(f"bench {name} ({experiment}): {', '.join(processes)}", flush=True)
                rows.append(bench_search(search, experiment, processes, args, work))
                print(json.dumps(rows[-1]), flush=True)
                if not args.memory_only and not args.no_reference:
                    selected = work / "selected" / f"{search.name}_{experiment}"
                    rows.append(reference_row(search, experiment, selected, args.chunksize))
                    print(json.dumps(rows[-1]), flush=True)
    print_table(rows, skipped, args)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "skipped": skipped}, indent=1))


if __name__ == "__main__":
    main()

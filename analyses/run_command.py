"""``belle-rare run SEARCH`` and ``belle-rare list``."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from rich.console import Console
from rich.table import Table

from belle_rare.analyses.executors import EXECUTORS
from belle_rare.configs.experiment import EXPERIMENTS
from belle_rare.processors.registry import SEARCHES

# per-search reports written with the outputs (validation.json, report, plots)
REPORTS = {"taulgamma": "belle_rare.analyses.taulgamma", "tau3mu": "belle_rare.analyses.tau3mu", "taulphi": "belle_rare.analyses.taulphi"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run a search's processor over a sample directory")
    p.add_argument("search", help="search name (see `belle-rare list`)")
    p.add_argument("--experiment", choices=EXPERIMENTS, required=True)
    p.add_argument("--samples", type=Path, required=True, help="sample directory or one manifest")
    p.add_argument("--out", type=Path, required=True, help="output directory; results go to OUT/SEARCH/")
    p.add_argument("--executor", choices=EXECUTORS, default="futures")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scheduler", help="address of an existing dask scheduler (with --executor dask)")
    p.add_argument("--cluster", help="dask-jobqueue profile from configs/clusters.yaml (with --executor dask)")
    p.add_argument("--chunksize", type=int, default=50_000)
    p.add_argument("--max-chunks", type=int, default=None, help="at most this many chunks per dataset")
    p.add_argument("--skip-bad-files", action="store_true", help="list unreadable files in metadata.json and go on")
    p.set_defaults(handler=_run)
    lp = subparsers.add_parser("list", help="list the searches")
    lp.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    from belle_rare.processors.registry import load_search

    table = Table(title="belle-rare searches")
    table.add_column("search")
    table.add_column("experiments")
    table.add_column("what")
    for name in SEARCHES:
        s = load_search(name)
        table.add_row(name, ", ".join(s.processor_class.experiments), s.description)
    Console().print(table)
    return 0


def _run(args: argparse.Namespace) -> int:
    from belle_rare.analyses.outputs import write_run_outputs
    from belle_rare.analyses.runner import RunOptions, run_search

    console = Console(stderr=True)
    opts = RunOptions(
        search=args.search,
        experiment=args.experiment,
        samples=args.samples,
        out=args.out,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        cluster=args.cluster,
        chunksize=args.chunksize,
        max_chunks=args.max_chunks,
        skip_bad_files=args.skip_bad_files,
        progress=console.is_terminal,
    )
    result = run_search(opts)
    report = importlib.import_module(REPORTS[args.search]).write_reports if args.search in REPORTS else None
    target = write_run_outputs(
        args.out, args.search, result["histograms"], result["cutflow"], result["metadata"],
        extra=(lambda tmp: report(result, tmp, console)) if report else None,
    )
    meta = result["metadata"]
    for skip in meta["chunk_report"]["skipped_files"]:
        console.print(f"[yellow]skipped[/] {skip['file']}: {skip['reason']}")
    for fail in meta["chunk_report"]["failed"]:
        console.print(f"[red]incomplete[/] {fail['file']}: read {fail['read']} of {fail['expected']} events")
    read = sum(d["read"] for d in meta["events"].values())
    console.print(f"{args.search}: {read} events read in {meta['wall_seconds']} s -> {target}")
    return 1 if meta["chunk_report"]["failed"] else 0



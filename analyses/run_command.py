"""``belle-rare run SEARCH`` and ``belle-rare list``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from belle_rare.analyses.executors import EXECUTORS
from belle_rare.configs.experiment import EXPERIMENTS
from belle_rare.core.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run a search's processor over a sample directory")
    p.add_argument("search", help="search name (see `belle-rare list`)")
    p.add_argument("--experiment", choices=EXPERIMENTS, required=True)
    p.add_argument("--samples", type=Path, required=True, help="sample directory or one manifest")
    p.add_argument("--out", type=Path, required=True, help="output directory; results go to OUT/SEARCH/")
    p.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="futures (local processes; the default) or dask (the default with --scheduler / --cluster); iterative: one process")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--scheduler", help="address of an existing dask scheduler (with --executor dask)")
    p.add_argument("--cluster", help="dask-jobqueue profile from configs/clusters.yaml (with --executor dask)")
    p.add_argument("--chunksize", type=int, default=50_000)
    p.add_argument("--resume", action="store_true",
                   help="process only the chunks an interrupted or failed run of the same command did not finish "
                        "(its checkpoints in OUT/.SEARCH.checkpoints/)")
    p.add_argument("--max-chunks", type=int, default=None, help="at most this many chunks per dataset")
    p.add_argument("--skip-bad-files", action="store_true", help="list unreadable files in metadata.json and go on")
    p.add_argument("--model-dir", type=Path, default=None,
                   help="directory of trained BDTs (`belle-rare train --out`); default: the models shipped with the package")
    pid = p.add_mutually_exclusive_group()
    pid.add_argument("--pid-weights", dest="pid_weights", action="store_true", default=None,
                     help="background datasets: replace the search's PID cuts by the tracks' pass probabilities "
                          "(PID weighting; default: the search's choice, on for searches whose background estimate rests on it)")
    pid.add_argument("--no-pid-weights", dest="pid_weights", action="store_false",
                     help="background datasets keep the thrown PID (cut on the PID values)")
    p.add_argument("--paper-processes", action="store_true",
                   help="leave out the background processes configs/paper_mode.yaml leaves out for this search "
                        "(as make run does; each listed with its reason in metadata.json)")
    p.set_defaults(handler=_run)
    lp = subparsers.add_parser("list", help="list the installed searches")
    lp.set_defaults(handler=_list)


def _paper_left_out(search: str) -> dict[str, str]:
    from belle_rare.configs.paper_mode import load_paper_mode

    plan = load_paper_mode().searches
    if search not in plan:
        raise UserError(f"--paper-processes: configs/paper_mode.yaml has no plan for '{search}'")
    return dict(plan[search].left_out)


def _list(args: argparse.Namespace) -> int:
    from belle_rare.processors.registry import get_search, search_names

    table = Table(title="belle-rare searches")
    for column in ("search", "experiments", "what", "from"):
        table.add_column(column)
    for name in search_names():
        try:
            s = get_search(name)
        except UserError as err:  # a broken plug-in is listed, not fatal
            table.add_row(name, "", f"[red]{err}[/]", "")
            continue
        table.add_row(name, ", ".join(s.experiments), s.description, s.processor.__module__.split(".")[0])
    Console().print(table)
    return 0


def write_outputs(result: dict[str, Any], out: Path, console: Console) -> Path:
    """The run's outputs and its search's report (validation.json, plots) into ``OUT/SEARCH/``, atomically."""
    from belle_rare.analyses.outputs import write_run_outputs

    search = result["search"]
    report = search.report_function()
    return write_run_outputs(
        out, search.name, result["histograms"], result["cutflow"], result["metadata"],
        extra=(lambda tmp: report(result, tmp, console)) if report else None,
    )


def _executor(args: argparse.Namespace) -> str:
    """``--executor``, dask when a scheduler or cluster is named."""
    remote = "--scheduler" if args.scheduler else "--cluster" if args.cluster else None
    if remote is None:
        return args.executor or "futures"
    if args.executor not in (None, "dask"):
        raise UserError(f"{remote}: runs on dask; drop --executor {args.executor}")
    return "dask"


def _run(args: argparse.Namespace) -> int:
    from belle_rare.analyses.checkpoints import checkpoint_root, count_checkpoints, remove_checkpoints
    from belle_rare.analyses.runner import RunOptions, run_search

    console = Console(stderr=True)
    opts = RunOptions(
        search=args.search,
        experiment=args.experiment,
        samples=args.samples,
        out=args.out,
        executor=_executor(args),
        workers=args.workers,
        scheduler=args.scheduler,
        cluster=args.cluster,
        chunksize=args.chunksize,
        max_chunks=args.max_chunks,
        skip_bad_files=args.skip_bad_files,
        progress=console.is_terminal,
        model_dir=args.model_dir,
        pid_weighting=args.pid_weights,
        left_out=_paper_left_out(args.search) if args.paper_processes else {},
        checkpoint=True,
        resume=args.resume,
    )
    try:
        result = run_search(opts)
    except KeyboardInterrupt:
        root = checkpoint_root(args.out, args.search)
        console.print(f"belle-rare run: interrupted, nothing written; {count_checkpoints(root)} finished chunk(s) are "
                      f"checkpointed in {root}: repeat the command with --resume to process only the rest")
        return 130
    target = write_outputs(result, args.out, console)
    remove_checkpoints(result["checkpoints"])
    if result["metadata"]["resumed_chunks"]:
        console.print(f"resumed: {result['metadata']['resumed_chunks']} chunk(s) taken from the interrupted run's checkpoints")
    meta = result["metadata"]
    for skip in meta["chunk_report"]["skipped_files"]:
        console.print(f"[yellow]skipped[/] {skip['file']}: {skip['reason']}")
    for fail in meta["chunk_report"]["failed"]:
        console.print(f"[red]incomplete[/] {fail['file']}: read {fail['read']} of {fail['expected']} events")
    read = sum(d["read"] for d in meta["events"].values())
    console.print(f"{args.search}: {read} events read in {meta['wall_seconds']} s -> {target}")
    return 1 if meta["chunk_report"]["failed"] else 0

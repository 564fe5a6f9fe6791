"""``belle-rare demo``: the `make run` job.

1. Generates every background and every signal for Belle and Belle II into ``OUT/samples`` and
   prints a summary table (process, events, cross section, equivalent luminosity, files).
2. Runs the searches that exist on them with the dask executor (``OUT/results/SEARCH``: histograms,
   cutflow, metadata, validation.json, report and plots).
3. Computes the limits of every search with run output and ends with one summary table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from belle_rare.configs.experiment import EXPERIMENTS
from belle_rare.configs.processes import load_catalogue

DEMO_EVENTS = 4000
DEMO_EVENTS_PER_FILE = 10_000
# the samples a search's efficiency and resolution are measured on get more events
LARGER_SAMPLES = {
    ("belle", "sig_taumugamma"): 20_000,
    ("belle", "sig_tauegamma"): 20_000,
    ("belle", "tautau"): 20_000,
    ("belle2", "sig_tau3mu"): 20_000,
    ("belle2", "sig_taumuphi"): 10_000,
    ("belle2", "sig_tauephi"): 10_000,
    ("belle2", "tautau"): 20_000,
}
# search -> experiment it runs on in the demo
DEMO_SEARCHES = {"taulgamma": "belle", "tau3mu": "belle2", "taulphi": "belle2"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="generate the demo samples (every process, both experiments)")
    p.add_argument("--out", type=Path, default=Path("demo"), help="output directory (default demo/)")
    p.add_argument("--events", type=int, default=DEMO_EVENTS, help=f"events per process (default {DEMO_EVENTS})")
    p.add_argument("--workers", type=int, default=2, help="local processes (default 2)")
    p.add_argument("--seed", type=int, default=2026, help="base seed (default 2026)")
    p.set_defaults(handler=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from belle_rare.simulation.production import Request, produce

    console = Console(width=max(Console().width, 120))
    samples = args.out / "samples"
    table = Table(title=f"demo samples in {samples}")
    for col in ("experiment", "dataset", "kind", "events", "sigma x BR (nb)", "L_eq (/fb)", "files", "s"):
        table.add_column(col, justify="right" if col not in ("experiment", "dataset", "kind") else "left")
    names = list(load_catalogue().processes)
    for i, experiment in enumerate(EXPERIMENTS):
        for j, process in enumerate(names):
            req = Request(
                experiment=experiment,
                process=process,
                events=LARGER_SAMPLES.get((experiment, process), args.events),
                seed=args.seed + 100 * i + j,
                out=samples,
                events_per_file=DEMO_EVENTS_PER_FILE,
            )
            m = produce(req, workers=args.workers, progress=console.is_terminal)
            table.add_row(
                experiment,
                m["dataset"],
                m["kind"],
                str(m["events"]),
                f"{m['cross_section_nb']:.4g}",
                f"{m['equivalent_luminosity_fb']:.4g}",
                str(len(m["files"])),
                f"{m['wall_seconds']:.1f}",
            )
            console.print(f"  {experiment} {m['dataset']}: {m['events']} events, {m['wall_seconds']:.1f} s")
    console.print(table)
    run_searches(args.out, args.workers, console)
    from belle_rare.stats.summary import limit_all, print_summary

    rows = limit_all(args.out / "results")
    print_summary(rows, console)
    return 1 if any("error" in r for r in rows) else 0


def run_searches(out: Path, workers: int, console: Console) -> None:
    """Every demo search on the demo samples, with the dask executor."""
    import importlib

    from belle_rare.analyses.outputs import write_run_outputs
    from belle_rare.analyses.run_command import REPORTS
    from belle_rare.analyses.runner import RunOptions, run_search

    for search, experiment in DEMO_SEARCHES.items():
        opts = RunOptions(search=search, experiment=experiment, samples=out / "samples", out=out / "results",
                          executor="dask", workers=workers, progress=console.is_terminal)
        result = run_search(opts)
        report = importlib.import_module(REPORTS[search]).write_reports
        target = write_run_outputs(opts.out, search, result["histograms"], result["cutflow"], result["metadata"],
                                   extra=lambda tmp: report(result, tmp, console))
        console.print(f"{search}: {sum(d['read'] for d in result['metadata']['events'].values())} events -> {target}")

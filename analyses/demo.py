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
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from belle_rare.configs.experiment import EXPERIMENTS
from belle_rare.configs.paper_mode import load_paper_mode
from belle_rare.configs.processes import load_catalogue
from belle_rare.core.errors import UserError

if TYPE_CHECKING:
    from belle_rare.processors.registry import Search

DEMO_EVENTS = 4000
DEMO_EVENTS_PER_FILE = 10_000


def demo_processes() -> list[str]:
    """Every catalogue process except the biased variants (tautau_3prong, ee_central: alternatives to
    their plain process for larger productions, and a sample directory holds one sample per cross
    section) and those marked ``in_demo: false`` (no demo search reads them yet)."""
    return [name for name, proc in load_catalogue().processes.items() if not proc.biased and proc.in_demo]


def sample_sizes(default: int) -> dict[tuple[str, str], int]:
    """(experiment, process) -> events: ``default`` for every process and experiment, more where a
    search's ``Demo`` asks for it (the samples its efficiency and resolution are measured on)."""
    from belle_rare.processors.registry import searches

    sizes = {(e, p): default for e in EXPERIMENTS for p in load_catalogue().processes}
    for search in searches().values():
        if search.demo is not None:
            for experiment in search.demo.experiments:
                for process, events in search.demo.larger_samples.items():
                    key = (experiment, process)
                    sizes[key] = max(sizes.get(key, default), events)
    return sizes


def results_dir(out: Path, search: Search, experiment: str) -> Path:
    """Where ``make run`` puts a search's run on ``experiment``: OUT/results for its first experiment,
    OUT/results_<experiment> for the others (a results directory holds one run per search)."""
    first = search.demo.experiments[0]
    return out / ("results" if experiment == first else f"results_{experiment}")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="generate the demo samples (every process, both experiments)")
    p.add_argument("--out", type=Path, default=Path("demo"), help="output directory (default demo/)")
    p.add_argument("--events", type=int, default=DEMO_EVENTS, help=f"events per process (default {DEMO_EVENTS})")
    p.add_argument("--workers", type=int, default=2, help="local processes (default 2)")
    p.add_argument("--seed", type=int, default=2026, help="base seed (default 2026)")
    p.add_argument("--paper", action="store_true",
                   help="paper-luminosity mode: each search of configs/paper_mode.yaml with its samples "
                        "(filtered, biased, PID-weighted), core-hours in OUT/paper_mode.json")
    p.add_argument("--scale", type=float, default=1.0, help="with --paper: multiply every background sample's events (default 1; signal samples keep theirs)")
    p.add_argument("--searches", nargs="+", metavar="SEARCH", help="with --paper: only these searches")
    p.add_argument("--background-events", nargs="+", metavar="PROCESS=N", default=[],
                   help="with --paper: written events of these background processes instead of the plan's x --scale")
    p.set_defaults(handler=run_demo)


def _process_events(pairs: list[str]) -> dict[str, int]:
    """``["uds=3000000", ...]`` -> ``{"uds": 3000000}`` (UserError naming the bad item)."""
    out = {}
    for pair in pairs:
        process, _, events = pair.partition("=")
        try:
            out[process] = int(float(events))
        except ValueError:
            raise UserError(f"--background-events: {pair!r}: expected PROCESS=N (e.g. uds=3000000)") from None
    return out


def run_demo(args: argparse.Namespace) -> int:
    from belle_rare.simulation.production import Request, produce

    console = Console(width=max(Console().width, 160 if args.paper else 120))
    if args.paper:
        from belle_rare.analyses.paper_mode import run_paper_mode

        return run_paper_mode(args.out, args.scale, args.workers, args.seed, args.searches, console,
                              background_events=_process_events(args.background_events))
    samples = args.out / "samples"
    table = Table(title=f"demo samples in {samples}")
    for col in ("experiment", "dataset", "kind", "events", "sigma x BR (nb)", "L_eq (/fb)", "files", "s"):
        table.add_column(col, justify="right" if col not in ("experiment", "dataset", "kind") else "left")
    names = demo_processes()
    sizes = sample_sizes(args.events)
    for i, experiment in enumerate(EXPERIMENTS):
        for j, process in enumerate(names):
            req = Request(
                experiment=experiment,
                process=process,
                events=sizes[(experiment, process)],
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
    rows = demo_limits(args.out)
    from belle_rare.stats.summary import print_summary

    print_summary(rows, console)
    return 1 if any("error" in r for r in rows) else 0


def demo_limits(out: Path) -> list[dict]:
    """The limits of every demo run: OUT/results (each search's first experiment; scan searches on their
    reduced scan) with the combination of the experiments where the search's stats file defines one
    (kstartautau: Belle + Belle II), then each further experiment's run (OUT/results_<experiment>) alone."""
    from belle_rare.processors.registry import searches
    from belle_rare.stats.model_config import load_stats_file
    from belle_rare.stats.search_limits import Settings
    from belle_rare.stats.summary import limit_all

    demo = {name: s for name, s in searches().items() if s.demo is not None}
    settings = Settings(scan_config={name: s.demo.scan_config for name, s in demo.items() if s.demo.scan_config})
    further = {name: s.demo.experiments[1:] for name, s in demo.items() if len(s.demo.experiments) > 1}
    combine_with = {name: [results_dir(out, demo[name], e) for e in experiments] for name, experiments in further.items()
                    if demo[name].stats_file is not None and load_stats_file(name).combination is not None}
    rows = limit_all(out / "results", settings, combine_with=combine_with)
    for experiment in sorted({e for experiments in further.values() for e in experiments}):
        names = [name for name, experiments in further.items() if experiment in experiments and demo[name].stats_file]
        rows += limit_all(out / f"results_{experiment}", settings, searches=names)
    return rows


def run_searches(out: Path, workers: int, console: Console) -> None:
    """Every search with a ``Demo`` on the demo samples, with the dask executor, on the background
    processes its paper mode simulates (``left_out`` of configs/paper_mode.yaml are not run)."""
    from belle_rare.analyses.run_command import write_outputs
    from belle_rare.analyses.runner import RunOptions, run_search
    from belle_rare.processors.registry import searches

    plan = load_paper_mode().searches
    for search in searches().values():
        if search.demo is None:
            continue
        # the processes the paper mode runs, so that both modes show the same estimates
        left_out = plan[search.name].left_out if search.name in plan else {}
        for experiment in search.demo.experiments:
            opts = RunOptions(search=search.name, experiment=experiment, samples=out / "samples",
                              out=results_dir(out, search, experiment), executor="dask", workers=workers,
                              progress=console.is_terminal, left_out=left_out)
            result = run_search(opts)
            target = write_outputs(result, opts.out, console)
            console.print(f"{search.name} ({experiment}): {sum(d['read'] for d in result['metadata']['events'].values())} "
                          f"events -> {target}")

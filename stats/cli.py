"""``belle-rare limit`` and ``belle-rare validate-stats``.

    belle-rare limit --workspace FILE.json [--cl 0.95] [--calculator auto|asymptotics|toybased]
                     [--ntoys N] [--poi NAME] [--measurement NAME] [--output OUT.json]
    belle-rare limit SEARCH --results DIR [--cl CL] [--calculator ...] [--ntoys N]
    belle-rare validate-stats [--output FILE.json]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from belle_rare.core.errors import UserError
from belle_rare.stats.limits import CALCULATORS, DEFAULT_NTOYS, DEFAULT_SEED, LimitResult, load_workspace, model_and_data, upper_limit
from belle_rare.core.atomic import write_json

BAND_LABELS = ("-2 sigma", "-1 sigma", "median", "+1 sigma", "+2 sigma")


def _console() -> Console:
    probe = Console()
    return probe if probe.is_terminal else Console(width=150)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "limit",
        help="CLs upper limits from a pyhf workspace or from a search's run output",
        description="CLs upper limits. Either --workspace FILE.json (any pyhf workspace) or SEARCH --results DIR "
        "(histograms + the search's stats model -> DIR/SEARCH/limits.json, workspace.json, plots/); SEARCH is any "
        "installed search with a stats model (built-in or from another package). "
        "Calculator 'auto' uses toys when the expected background in the signal bins is below 10 events.",
    )
    p.add_argument("search", nargs="?", help="search name (needs --results; `belle-rare list` shows them)")
    p.add_argument("--workspace", type=Path, help="pyhf workspace JSON")
    p.add_argument("--results", type=Path, help="results directory holding SEARCH/histograms.coffea")
    p.add_argument("--cl", type=float, default=None, help="confidence level (workspace: 0.95; search: from its YAML)")
    p.add_argument("--calculator", choices=CALCULATORS, default=None, help="default: auto")
    p.add_argument("--ntoys", type=int, default=None, help=f"toys per POI point (default {DEFAULT_NTOYS})")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="toy seed (workspace mode)")
    p.add_argument("--workers", type=int, default=1, help="local processes for toys / scans")
    p.add_argument("--poi", help="parameter of interest (workspace mode; default: the measurement's)")
    p.add_argument("--measurement", help="measurement name (workspace mode; default: the first)")
    p.add_argument("--output", type=Path, help="write the limit as JSON (workspace mode)")
    p.add_argument(
        "--toy-engine", choices=("exact", "pyhf"), default="exact",
        help="search mode, toy-based one-bin limits: exact Poisson CLs (default) or pyhf's ToyCalculator",
    )
    p.add_argument("--scan-method", choices=("auto", "fast", "pyhf"), default=None, help="search mode, scans")
    p.add_argument("--executor", choices=("local", "dask"), default=None, help="search mode, scans")
    p.add_argument("--no-plots", action="store_true", help="search mode: skip the plots")
    p.add_argument("--scan-config", type=Path, default=None,
                   help="search mode, searches with their own scan (bkscalar): a stats YAML instead of the shipped one "
                   "(e.g. configs/stats/bkscalar_demo.yaml, a reduced scan)")
    p.add_argument(
        "--background-estimate", choices=("transfer_factor", "factorised", "sideband_fit", "mc_count"), default=None,
        help="search mode: data-driven backgrounds from this estimate instead of the stats YAML's "
        "(tau3mu: plain ABCD = transfer_factor, BDT efficiency factorised = factorised; taulgamma: the (M_bc, dE) "
        "sideband fit = sideband_fit, the plain simulated count in the ellipse = mc_count)",
    )
    p.set_defaults(handler=limit_command)

    v = subparsers.add_parser(
        "validate-stats",
        help="reproduce the papers' published limits from their published inputs",
        description="Our limits beside the published ones, one line per case with the method differences that remain.",
    )
    v.add_argument("--output", type=Path, help="write the rows as JSON")
    v.set_defaults(handler=validate_command)


def _check_args(args: argparse.Namespace) -> None:
    if (args.workspace is None) == (args.search is None):
        raise UserError("give either --workspace FILE.json or a SEARCH with --results DIR")
    if args.search is not None and args.results is None:
        raise UserError(f"limit {args.search}: --results DIR is required")
    if args.workspace is not None:
        for name in ("results", "scan_method", "executor"):
            if getattr(args, name) is not None:
                raise UserError(f"--{name.replace('_', '-')} is for SEARCH mode, not --workspace")
    else:
        for name in ("poi", "measurement", "output"):
            if getattr(args, name) is not None:
                raise UserError(f"--{name} is for --workspace mode (SEARCH mode writes DIR/SEARCH/limits.json)")
    if args.cl is not None and not 0 < args.cl < 1:
        raise UserError(f"--cl must be between 0 and 1, got {args.cl}")
    if args.ntoys is not None and args.ntoys < 10:
        raise UserError(f"--ntoys must be at least 10, got {args.ntoys}")
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")


def limit_command(args: argparse.Namespace) -> int:
    _check_args(args)
    if args.workspace is not None:
        return _workspace_limit(args)
    return _search_limit(args)


def _workspace_limit(args: argparse.Namespace) -> int:
    workspace = load_workspace(args.workspace)
    model, data = model_and_data(workspace, poi=args.poi, measurement=args.measurement)
    result = upper_limit(
        model,
        data,
        cl=args.cl or 0.95,
        calculator=args.calculator or "auto",
        ntoys=args.ntoys or DEFAULT_NTOYS,
        seed=args.seed,
        workers=args.workers,
    )
    print_limit(result, str(args.workspace))
    if args.output is not None:
        write_json(args.output, {**result.to_dict(), "workspace": str(args.workspace)})
        _console().print(f"wrote {args.output}")
    return 0


def print_limit(result: LimitResult, source: str, console: Console | None = None) -> None:
    console = console or _console()
    table = Table(title=f"{100 * result.cl:g}% CL upper limit on {result.poi} ({source})")
    table.add_column("", justify="left")
    table.add_column(result.poi, justify="right")
    table.add_row("observed", f"{result.observed:.4g}")
    for label, value in zip(BAND_LABELS, result.expected):
        table.add_row(f"expected {label}", f"{value:.4g}")
    console.print(table)
    toys = f", {result.ntoys} toys per point, seed {result.seed}" if result.ntoys else ""
    console.print(f"calculator: {result.calculator} ({result.calculator_reason}{toys})")


def _search_limit(args: argparse.Namespace) -> int:
    from belle_rare.stats.search_limits import Settings, compute_search_limits, scan_hook, write_search_limits
    from belle_rare.stats.summary import _rows_of, print_summary

    settings = Settings(
        cl=args.cl,
        calculator=args.calculator,
        ntoys=args.ntoys,
        workers=args.workers,
        scan_method=args.scan_method,
        executor=args.executor,
        toy_engine=args.toy_engine,
        background_estimate=args.background_estimate,
        scan_config=args.scan_config,
    )
    hook = scan_hook(args.search)
    if hook is None and args.scan_config is not None:
        raise UserError(f"--scan-config is for searches with their own scan; '{args.search}' has none")
    if hook is not None:  # a many-hypothesis scan (Search.scan): it writes its own outputs
        result = hook(args.search, args.results, settings, not args.no_plots)
        written = result.document.get("files", [])
    else:
        result = compute_search_limits(args.search, args.results, settings)
        written = write_search_limits(result, args.results, make_plots=not args.no_plots)
    console = _console()
    print_summary(_rows_of(args.search, result.document), console)
    for note in result.document["notes"]:
        console.print(f"note: {note}")
    what = "limits.json, scan table, plots/, hepdata/" if hook is not None else "limits.json, workspace.json, plots/"
    console.print(f"wrote {len(written)} files under {args.results / args.search} ({what})")
    return 0


def validate_command(args: argparse.Namespace) -> int:
    from belle_rare.stats.validation import AGREEMENT, validation_rows

    rows = validation_rows()
    console = _console()
    table = Table(title="Published limits reproduced from published inputs")
    for col in ("case", "ours", "published", "diff", "pyhf asym.", "note"):
        table.add_column(col, justify="right" if col in ("ours", "published", "diff", "pyhf asym.") else "left")
    for r in rows:
        diff = f"{100 * r['relative_difference']:+.1f}%"
        if r["methods_match"]:
            colour = "green" if abs(r["relative_difference"]) <= AGREEMENT else "red"
            diff = f"[{colour}]{diff}[/{colour}]"
        asym = r.get("pyhf_asymptotic")
        table.add_row(
            r["case"], f"{r['ours']:.3g}", f"{r['published']:.3g}", diff, "-" if asym is None else f"{asym:.3g}",
            ("same method. " if r["methods_match"] else "differs: ") + r["note"],
        )
    console.print(table)
    console.print(
        f"'same method' rows must agree within {100 * AGREEMENT:g}%; 'pyhf asym.' is pyhf's asymptotic limit on "
        "the same counting model (too tight at a few events)."
    )
    if args.output is not None:
        write_json(args.output, rows)
        console.print(f"wrote {args.output}")
    return 0

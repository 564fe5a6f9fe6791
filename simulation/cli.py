"""``belle-rare generate``: produce simulated samples."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from belle_rare.configs.experiment import EXPERIMENTS, load_experiment
from belle_rare.configs.processes import load_catalogue


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="generate simulated events (Pythia 8 + parametric detector) into ROOT ntuples",
        description="Generate a sample of one process. Several calls into the same --out build one sample directory.",
    )
    p.add_argument("--list", action="store_true", help="list the processes and exit")
    p.add_argument("--experiment", choices=EXPERIMENTS, help="belle or belle2")
    p.add_argument("--process", help="process name (see --list), or 'data' for pseudo-data")
    p.add_argument("--luminosity", type=float, help="integrated luminosity of pseudo-data (/fb), with --process data")
    p.add_argument("--events", type=int, help="number of events")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--out", type=Path, help="sample directory")
    p.add_argument("--events-per-file", type=int, default=10_000, help="events per ROOT file (default 10000)")
    p.add_argument("--workers", type=int, default=1, help="local processes (default 1)")
    p.add_argument("--scheduler", help="address of a dask scheduler to run the chunks on instead")
    p.add_argument("--mass", type=float, help="new-particle mass in GeV (sig_bkscalar, sig_zprime)")
    p.add_argument("--ctau", type=float, help="scalar c tau in cm (sig_bkscalar)")
    p.add_argument(
        "--filter", metavar="SEARCH",
        help="keep only events passing SEARCH's generator-level filter (configs/processes.yaml search_filters); "
             "--events then counts accepted events, generated until that many pass",
    )
    p.add_argument("--max-generated", type=int, help="with --filter: cap on generated events (default 1000 x --events)")
    p.set_defaults(handler=_generate)


def _slice_share(process: str, exp) -> float:
    """The share of its cross section a gamma* mass slice generates (1 for unsliced processes)."""
    from belle_rare.core.units import pdg_mass
    from belle_rare.simulation.generators.isr import gamma_star_mass_fraction

    mass = load_catalogue().gamma_star_mass(process)
    return 1.0 if mass is None else gamma_star_mass_fraction(exp.sqrt_s_nominal, pdg_mass(mass.fermion), mass.min, mass.max)


def print_process_list(console: Console) -> None:
    catalogue = load_catalogue()
    exp = load_experiment("belle2")
    table = Table(title="belle-rare processes")
    for col in ("process", "kind", "generator", "sigma (nb)", "description"):
        table.add_column(col)
    for name, proc in catalogue.processes.items():
        keys = catalogue.cross_section_keys(name)
        sigma = f"{sum(exp.cross_section(k) for k in keys) * _slice_share(name, exp):g}" if keys else "ref."
        table.add_row(name, proc.kind, proc.generator, sigma, proc.description)
    console.print(table)


def _generate(args: argparse.Namespace) -> int:
    from belle_rare.core.errors import UserError
    from belle_rare.simulation.production import Request, produce

    console = Console(stderr=True)
    if args.list:
        print_process_list(Console())
        return 0
    if args.process == "data":
        return _generate_pseudo_data(args, console)
    missing = [f"--{n}" for n in ("experiment", "process", "events", "out") if getattr(args, n) is None]
    if missing:
        raise UserError(f"missing required argument(s): {', '.join(missing)}")
    parameters = {k: getattr(args, k) for k in ("mass", "ctau") if getattr(args, k) is not None}
    req = Request(
        experiment=args.experiment,
        process=args.process,
        events=args.events,
        seed=args.seed,
        out=args.out,
        events_per_file=args.events_per_file,
        parameters=parameters,
        generator_filter=load_catalogue().search_filters.get(args.filter) if args.filter else None,
        filter_name=args.filter,
        max_generated=args.max_generated,
    )
    manifest = produce(req, workers=args.workers, scheduler=args.scheduler, progress=console.is_terminal)
    rate = manifest["events"] / max(manifest["wall_seconds"], 1e-9)
    console.print(
        f"{manifest['experiment']} {manifest['dataset']}: {manifest['events']} events in "
        f"{len(manifest['files'])} file(s), sigma = {manifest['cross_section_nb']:.4g} nb, "
        f"L_eq = {manifest['equivalent_luminosity_fb']:.4g} /fb, {rate:.0f} events/s -> {args.out}"
    )
    if args.filter:
        console.print(
            f"  filter '{args.filter}': {manifest['events']} of {manifest['generated_events']} generated events accepted, "
            f"efficiency {manifest['filter_efficiency']:.4g} +- {manifest['filter_efficiency_error']:.2g}"
        )
        if manifest["events"] < args.events:
            console.print(f"  [yellow]cap of generated events reached: {manifest['events']} of {args.events} requested[/yellow]")
    return 0


def _generate_pseudo_data(args: argparse.Namespace, console: Console) -> int:
    from belle_rare.core.errors import UserError
    from belle_rare.simulation.production import produce_pseudo_data

    missing = [f"--{n}" for n in ("experiment", "luminosity", "out") if getattr(args, n) is None]
    if missing:
        raise UserError(f"missing required argument(s) for pseudo-data: {', '.join(missing)}")
    m = produce_pseudo_data(
        args.experiment, args.luminosity, args.seed, args.out, args.events_per_file,
        args.workers, args.scheduler, progress=console.is_terminal,
    )
    for name, comp in m["components"].items():
        console.print(
            f"  {name}: {comp['generated']} generated, {comp['written']} written "
            f"(filter efficiency {comp['filter_efficiency']:.4g})"
        )
    console.print(f"{m['experiment']} pseudo-data: {m['events']} events at {m['luminosity_fb']:g} /fb -> {args.out}")
    return 0

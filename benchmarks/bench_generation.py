"""Generation speed: events/s/core for every process, and the ratio against Pythia's defaults.

Run: ``.venv/bin/python benchmarks/bench_generation.py [--events N] [--experiment belle2] [--detector]``

Each process runs on one core (this process). The reference for the ratio is the same tau-pair
process with Pythia's default tau decays (``TauDecays:mode = 1``, helicity matrix elements) and its
default tau table, measured in the same run, since these machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.production import Chunk, Request, make_generator


def time_process(process: str, experiment: str, events: int, detector: bool, params: dict) -> float:
    req = Request(experiment, process, events, 1, None, parameters=params)  # type: ignore[arg-type]
    gen = make_generator(req, Chunk(0, events, 1, 0))
    gen.generate(min(200, events))  # warm-up: initialisation, imports, numba
    start = time.perf_counter()
    truth = gen.generate(events)
    if detector:
        from belle_rare.simulation.detector import load_detector, simulate_detector

        simulate_detector(truth, load_detector(experiment), np.random.default_rng(1))
    gen.close()
    return events / (time.perf_counter() - start)


def time_default_tau_decays(experiment: str, events: int) -> float:
    """tau pairs with Pythia's default tau treatment (mode 1) and default tau table."""
    import pythia8mc

    from belle_rare.simulation.generators.pythia import beam_settings

    catalogue = load_catalogue()
    py = pythia8mc.Pythia("", False)
    common = [s for s in catalogue.pythia_common if not s.startswith("TauDecays:mode")]
    for line in [*common, "Random:setSeed = on", "Random:seed = 1", *beam_settings(load_experiment(experiment)),
                 *catalogue.pythia_settings("tautau")]:
        py.readString(line)
    py.init()
    py.nextBatch(20)
    start = time.perf_counter()
    py.nextBatch(events)
    return events / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--experiment", default="belle2", choices=["belle", "belle2"])
    parser.add_argument("--detector", action="store_true", help="include the detector response")
    args = parser.parse_args()
    console = Console()
    default_rate = time_default_tau_decays(args.experiment, max(args.events // 20, 200))
    table = Table(title=f"generation speed, {args.experiment}, one core" + (" (+ detector)" if args.detector else ""))
    for col in ("process", "events/s/core", "ratio to Pythia default tau decays"):
        table.add_column(col, justify="right")
    table.add_row("tautau, Pythia defaults (TauDecays:mode = 1)", f"{default_rate:,.0f}", "1.0")
    for name, proc in load_catalogue().processes.items():
        params = {"mass": 1.5, "ctau": 5.0} if name == "sig_bkscalar" else {}
        rate = time_process(name, args.experiment, args.events, args.detector, params)
        table.add_row(name, f"{rate:,.0f}", f"{rate / default_rate:.0f}")
    console.print(table)


if __name__ == "__main__":
    main()

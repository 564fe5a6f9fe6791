"""Generation speed: events/s/core for every process, and the ratio against Pythia's defaults.

Run: ``.venv/bin/python benchmarks/bench_generation.py [--events N] [--experiment belle2] [--detector]``

Each process runs on one core (this process). The reference for the ratio is the same tau-pair
process with Pythia's default tau decays (``TauDecays:mode = 1``, helicity matrix elements) and its
default tau table, measured in the same run, since these machines are shared and noisy.

``--production`` (realism issue, item 7) measures instead, for tau pairs at both experiments, the
bare generator (``generate``: Pythia + the truth record, after initialisation), generator + detector
response, and the full production of one file (``produce_chunk``: Pythia initialisation, generation,
response, ROOT write) at the default file size, and the ratio full / bare (target >= 0.5). Rates are per CPU second of
this process (``time.process_time``), which the load of a shared machine barely moves; the ratio is
also given in wall-clock time, each from back-to-back timings, median of ``--repeats``. ``--codecs`` compares the ROOT compression settings on one such file (write time, size,
read time): the numbers behind ``simulation/ntuple.py``'s choice.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.simulation.production import DEFAULT_EVENTS_PER_FILE, Chunk, Request, make_generator, produce_chunk


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


def time_production(experiment: str, events: int, repeats: int, out: Path) -> dict[str, float]:
    """Events per CPU second of: generator, generator + response, full production of one file (tau
    pairs); the medians over repeats of full / generator in CPU and in wall-clock time."""
    from belle_rare.simulation.detector import load_detector, simulate_detector

    detector = load_detector(experiment)
    stages = ("generator", "generator + response", "full production")
    cpu: dict[str, list[float]] = {stage: [] for stage in stages}
    wall: dict[str, list[float]] = {stage: [] for stage in stages}

    def timed(stage: str, work) -> None:
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        work()
        cpu[stage].append(time.process_time() - start_cpu)
        wall[stage].append(time.perf_counter() - start_wall)

    warm = Request(experiment, "tautau", 500, 99, out)
    produce_chunk(warm, Chunk(0, 500, 99, 0))  # warm-up: imports, configs, Pythia's pristine instance
    for i in range(repeats):
        req = Request(experiment, "tautau", events, i + 1, out)
        chunk = Chunk(0, events, i + 1, 0)
        gen = make_generator(req, chunk)
        timed("generator", lambda: gen.generate(events))
        gen.close()
        timed("full production", lambda: produce_chunk(req, chunk))
        gen = make_generator(req, chunk)
        timed("generator + response",
              lambda: simulate_detector(gen.generate(events), detector, np.random.default_rng([i, 3])))
        gen.close()
    rates = {stage: events / float(np.median(cpu[stage])) for stage in stages}
    rates["ratio cpu"] = float(np.median(np.divide(cpu["generator"], cpu["full production"])))
    rates["ratio wall"] = float(np.median(np.divide(wall["generator"], wall["full production"])))
    return rates


def production_table(events: int, repeats: int) -> Table:
    table = Table(title=f"tau-pair production, events per CPU second, {events:,} events per file, median of {repeats}")
    # full production = produce_chunk: Pythia initialisation + generation + response + ROOT write
    for col in ("experiment", "generator", "generator + response", "full production", "full / generator",
                "same, wall clock"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="bench-production-") as tmp:
        for experiment in ("belle", "belle2"):
            rate = time_production(experiment, events, repeats, Path(tmp))
            table.add_row(
                experiment,
                f"{rate['generator']:,.0f}",
                f"{rate['generator + response']:,.0f}",
                f"{rate['full production']:,.0f}",
                f"{rate['ratio cpu']:.2f}",
                f"{rate['ratio wall']:.2f}",
            )
    return table


def codecs_table(experiment: str, events: int, repeats: int) -> Table:
    """Write time, file size and read time of one tau-pair file under several compression settings."""
    import uproot

    from belle_rare.simulation import ntuple
    from belle_rare.simulation.detector import load_detector, simulate_detector

    req = Request(experiment, "tautau", events, 1, None)  # type: ignore[arg-type]
    gen = make_generator(req, Chunk(0, events, 1, 0))
    truth = gen.generate(events)
    gen.close()
    reco = simulate_detector(truth, load_detector(experiment), np.random.default_rng(1))
    collections = {**reco, "MCParticle": ntuple.mcparticle_collection(truth)}
    events_branches = ntuple.event_columns(truth, 0, 0, 0)
    settings = {
        "none": None, "ZLIB(1)": uproot.ZLIB(1), "ZLIB(4)": uproot.ZLIB(4), "LZ4(1)": uproot.LZ4(1), "LZ4(4)": uproot.LZ4(4),
        "ZSTD(1)": uproot.ZSTD(1), "ZSTD(3)": uproot.ZSTD(3), "ZSTD(5)": uproot.ZSTD(5), "LZMA(1)": uproot.LZMA(1),
    }
    write: dict[str, list[float]] = {name: [] for name in settings}
    read: dict[str, list[float]] = {name: [] for name in settings}
    size: dict[str, int] = {}
    default = ntuple.COMPRESSION
    with tempfile.TemporaryDirectory(prefix="bench-codecs-") as tmp:
        try:
            for _ in range(repeats):
                for name, codec in settings.items():
                    path = Path(tmp) / f"{name}.root"
                    ntuple.COMPRESSION = codec
                    start = time.process_time()
                    ntuple.write_ntuple(path, events_branches, collections)
                    write[name].append(time.process_time() - start)
                    start = time.process_time()
                    with uproot.open(path) as f:
                        f[ntuple.TREE_NAME].arrays()
                    read[name].append(time.process_time() - start)
                    size[name] = path.stat().st_size
        finally:
            ntuple.COMPRESSION = default
    table = Table(title=f"compression of one {experiment} tau-pair file ({events:,} events), median of {repeats}")
    for col in ("setting", "write [CPU ms]", "size [MB]", "read [CPU ms]"):
        table.add_column(col, justify="right")
    for name in settings:
        marker = " (used)" if repr(settings[name]) == repr(default) else ""
        table.add_row(name + marker, f"{1e3 * np.median(write[name]):.0f}", f"{size[name] / 1e6:.2f}",
                      f"{1e3 * np.median(read[name]):.0f}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--experiment", default="belle2", choices=["belle", "belle2"])
    parser.add_argument("--detector", action="store_true", help="include the detector response")
    parser.add_argument("--production", action="store_true",
                        help="only the tau-pair production table (generator, + response, full production), both experiments")
    parser.add_argument("--codecs", action="store_true", help="only the ROOT compression comparison")
    parser.add_argument("--file-events", type=int, default=DEFAULT_EVENTS_PER_FILE,
                        help="events per file for --production / --codecs (default: production's)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    console = Console(width=max(Console().width, 100))
    if args.production or args.codecs:
        if args.production:
            console.print(production_table(args.file_events, args.repeats))
        if args.codecs:
            console.print(codecs_table(args.experiment, args.file_events, args.repeats))
        return
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

"""Sample production: seeded chunks -> generator -> detector response -> ROOT files + manifest.

Chunks are independent (each has its own seed from ``numpy.random.SeedSequence(seed).spawn``), so
they run on local processes or dask workers in any order and the same seed gives identical files.
A failed production removes the files it wrote and leaves no manifest.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyses.errors import UserError
from configs.experiment import EXPERIMENTS, load_experiment
from configs.processes import load_catalogue
from simulation.manifest import code_version, equivalent_luminosity_fb, write_json_atomic
from simulation.ntuple import TREE_NAME, event_columns, mcparticle_collection, write_ntuple

DEFAULT_EVENTS_PER_FILE = 10_000


@dataclass(frozen=True)
class Request:
    """One ``belle-rare generate`` call."""

    experiment: str
    process: str
    events: int
    seed: int
    out: Path
    events_per_file: int = DEFAULT_EVENTS_PER_FILE
    parameters: dict[str, float] = field(default_factory=dict)

    @property
    def dataset(self) -> str:
        """Dataset name: the process, with its parameters if any (e.g. ``sig_zprime_m3.0``)."""
        suffix = "".join(f"_{'m' if k == 'mass' else k}{v:g}" for k, v in sorted(self.parameters.items()))
        return f"{self.process}{suffix}"


@dataclass(frozen=True)
class Chunk:
    index: int
    events: int
    seed: int
    first_event: int


def validate_request(req: Request) -> None:
    """Check every argument before any file is written; errors name the argument."""
    if req.experiment not in EXPERIMENTS:
        raise UserError(f"--experiment: unknown experiment '{req.experiment}' (choose from {', '.join(EXPERIMENTS)})")
    catalogue = load_catalogue()
    if req.process not in catalogue.processes:
        raise UserError(f"--process: unknown process '{req.process}' (see `belle-rare generate --list`)")
    if req.events <= 0:
        raise UserError(f"--events: must be positive, got {req.events}")
    if req.events_per_file <= 0:
        raise UserError(f"--events-per-file: must be positive, got {req.events_per_file}")
    if req.seed < 0:
        raise UserError(f"--seed: must be non-negative, got {req.seed}")
    proc = catalogue.get(req.process)
    unknown = set(req.parameters) - set(proc.parameters)
    if unknown:
        raise UserError(f"--{sorted(unknown)[0]}: process '{req.process}' takes no such parameter")
    for name, value in req.parameters.items():
        if value <= 0:
            raise UserError(f"--{name}: must be positive, got {value}")
    try:
        req.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out: cannot create {req.out} ({err.strerror})") from None
    if not os.access(req.out, os.W_OK):
        raise UserError(f"--out: {req.out} is not writable")


def plan_chunks(events: int, events_per_file: int, seed: int) -> list[Chunk]:
    """Split ``events`` into files of at most ``events_per_file``, each with its own derived seed."""
    sizes = [events_per_file] * (events // events_per_file)
    if events % events_per_file:
        sizes.append(events % events_per_file)
    seeds = np.random.SeedSequence(seed).generate_state(len(sizes), dtype=np.uint32)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return [Chunk(i, n, int(s), int(first)) for i, (n, s, first) in enumerate(zip(sizes, seeds, starts))]


def chunk_path(req: Request, chunk: Chunk) -> Path:
    return req.out / f"{req.experiment}_{req.dataset}_{chunk.index:04d}.root"


def make_generator(req: Request, chunk: Chunk):
    """The generator object for the request's process (Pythia or a dedicated one)."""
    catalogue = load_catalogue()
    proc = catalogue.get(req.process)
    exp = load_experiment(req.experiment)
    if proc.generator in ("pythia", "upsilon4s"):
        from simulation.generators.pythia import PythiaGenerator

        return PythiaGenerator(catalogue, req.process, exp, chunk.seed, chunk.index, req.parameters)
    from simulation.generators.dedicated import DedicatedGenerator

    return DedicatedGenerator(catalogue, req.process, exp, chunk.seed, chunk.index, req.parameters)


def produce_chunk(req: Request, chunk: Chunk) -> dict[str, Any]:
    """Generate, simulate and write one chunk; returns its manifest entry."""
    from simulation.detector import load_detector, simulate_detector

    start = time.perf_counter()
    generator = make_generator(req, chunk)
    try:
        truth = generator.generate(chunk.events)
        settings = list(getattr(generator, "settings", []))
    finally:
        generator.close()
    exp = load_experiment(req.experiment)
    reco = simulate_detector(truth, load_detector(req.experiment), np.random.default_rng([chunk.seed, 3]))
    collections = {**reco, "MCParticle": mcparticle_collection(truth)}
    path = chunk_path(req, chunk)
    write_ntuple(path, event_columns(truth, exp.experiment_number, chunk.index, chunk.first_event), collections)
    return {
        "path": path.name,
        "entries": chunk.events,
        "chunk": chunk.index,
        "seed": chunk.seed,
        "seconds": round(time.perf_counter() - start, 3),
        "generator_settings": settings,
    }


def cross_section(req: Request) -> tuple[float, str]:
    """sigma x BR (nb) that one generated event of this dataset represents, and how it was formed."""
    catalogue = load_catalogue()
    proc = catalogue.get(req.process)
    exp = load_experiment(req.experiment)
    keys = catalogue.cross_section_keys(req.process)
    if proc.reference_cross_section_nb is not None:
        return proc.reference_cross_section_nb, "reference cross section (normalisation only)"
    assert keys is not None
    base = sum(exp.cross_section(k) for k in keys)
    source = " + ".join(f"sigma({k})" for k in keys)
    if proc.generator == "upsilon4s" and proc.b_pair != "both" and proc.forced_decay_charged is None:
        f = exp.upsilon4s_charged_fraction if proc.b_pair == "charged" else 1 - exp.upsilon4s_charged_fraction
        base *= f
        source += f" x f({proc.b_pair})={f:g}"
    if proc.kind == "signal":
        bf = proc.reference_branching_fraction or 1.0
        base *= 2.0 * bf * proc.sub_branching_fraction
        source += f" x 2 x BR_ref={bf:g}"
        if proc.sub_branching_fraction != 1.0:
            source += f" x {proc.sub_branching_fraction:g}"
    return base, source


def _executor_map(req: Request, chunks: list[Chunk], workers: int, scheduler: str | None):
    """Yield chunk results as they complete, on local processes or a dask scheduler."""
    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            futures = [client.submit(produce_chunk, req, c, pure=False) for c in chunks]
            for fut in as_completed(futures):
                yield fut.result()
        return
    if workers <= 1 or len(chunks) == 1:
        for c in chunks:
            yield produce_chunk(req, c)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed as done

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(produce_chunk, req, c) for c in chunks]
        for fut in done(futures):
            yield fut.result()


def produce(req: Request, workers: int = 1, scheduler: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run a whole request; write ``<out>/<experiment>_<dataset>.json`` last. Returns the manifest."""
    validate_request(req)
    chunks = plan_chunks(req.events, req.events_per_file, req.seed)
    results: list[dict[str, Any]] = []
    start = time.perf_counter()
    try:
        if progress:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"{req.experiment} {req.dataset}", total=req.events)
                for result in _executor_map(req, chunks, workers, scheduler):
                    results.append(result)
                    bar.advance(task, result["entries"])
        else:
            results.extend(_executor_map(req, chunks, workers, scheduler))
    except BaseException:
        for c in chunks:
            chunk_path(req, c).unlink(missing_ok=True)
        raise
    results.sort(key=lambda r: r["chunk"])
    settings = results[0].pop("generator_settings")
    for r in results[1:]:
        r.pop("generator_settings")
    proc = load_catalogue().get(req.process)
    xsec, xsec_source = cross_section(req)
    manifest = {
        "dataset": req.dataset,
        "process": req.process,
        "kind": proc.kind,
        "is_data": False,
        "description": proc.description,
        "experiment": req.experiment,
        "events": req.events,
        "cross_section_nb": xsec,
        "cross_section_source": xsec_source,
        "filter_efficiency": 1.0,
        "equivalent_luminosity_fb": equivalent_luminosity_fb(req.events, xsec),
        "reference_branching_fraction": proc.reference_branching_fraction,
        "parameters": {**proc.parameters, **req.parameters},
        "seed": req.seed,
        "tree": TREE_NAME,
        "files": results,
        "generator": {"name": proc.generator, "pythia8mc": _pythia_version(), "settings": settings},
        "detector": f"configs/detector/{req.experiment}.yaml",
        "code_version": code_version(),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(req.out / f"{req.experiment}_{req.dataset}.json", manifest)
    return manifest


def _pythia_version() -> str:
    from importlib.metadata import version

    return version("pythia8mc")

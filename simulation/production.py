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

from belle_rare.core.errors import UserError
from belle_rare.configs.experiment import EXPERIMENTS, load_experiment
from belle_rare.configs.processes import GeneratorFilter, load_catalogue
from belle_rare.core.atomic import write_json as write_json_atomic
from belle_rare.core.provenance import code_version
from belle_rare.simulation.manifest import NB_TO_INV_FB, equivalent_luminosity_fb
from belle_rare.simulation.ntuple import TREE_NAME, event_columns, mcparticle_collection, write_ntuple

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
    generator_filter: GeneratorFilter | None = None
    prefix: str = ""  # "data_" for the components of pseudo-data

    @property
    def dataset(self) -> str:
        """Dataset name: the process, with its parameters if any (e.g. ``sig_zprime_m3``)."""
        suffix = "".join(f"_{'m' if k == 'mass' else k}{v:g}" for k, v in sorted(self.parameters.items()))
        return f"{self.prefix}{self.process}{suffix}"


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
        from belle_rare.simulation.generators.pythia import PythiaGenerator

        return PythiaGenerator(catalogue, req.process, exp, chunk.seed, chunk.index, req.parameters)
    from belle_rare.simulation.generators.dedicated import DedicatedGenerator

    return DedicatedGenerator(catalogue, req.process, exp, chunk.seed, chunk.index, req.parameters)


def produce_chunk(req: Request, chunk: Chunk) -> dict[str, Any]:
    """Generate, simulate and write one chunk; returns its manifest entry."""
    from belle_rare.simulation.detector import load_detector, simulate_detector
    from belle_rare.simulation.detector.trigger import beam_four_momentum, emulate_trigger

    start = time.perf_counter()
    generator = make_generator(req, chunk)
    try:
        truth = generator.generate(chunk.events)
        settings = list(getattr(generator, "settings", []))
    finally:
        generator.close()
    if req.generator_filter is not None:
        truth = truth[passes_filter(truth, req.generator_filter)]
    exp = load_experiment(req.experiment)
    reco = simulate_detector(truth, load_detector(req.experiment), np.random.default_rng([chunk.seed, 3]))
    collections = {**reco, "MCParticle": mcparticle_collection(truth)}
    path = chunk_path(req, chunk)
    events = event_columns(truth, exp.experiment_number, chunk.index, chunk.first_event)
    # L1 trigger bits, from their own random stream (the other detector draws stay unchanged)
    events |= emulate_trigger(reco, beam_four_momentum(truth), load_detector(req.experiment), np.random.default_rng([chunk.seed, 6]))
    write_ntuple(path, events, collections)
    return {
        "path": path.name,
        "entries": len(truth),
        "generated": chunk.events,
        "chunk": chunk.index,
        "seed": chunk.seed,
        "seconds": round(time.perf_counter() - start, 3),
        "generator_settings": settings,
    }


def passes_filter(truth, spec: GeneratorFilter) -> np.ndarray:
    """Events with a final-state photon above the energy threshold inside the polar-angle range."""
    import awkward as ak

    mc = truth.mc
    cos_theta = mc.pz / np.sqrt(mc.px**2 + mc.py**2 + mc.pz**2)
    lo, hi = np.cos(np.radians(spec.photon_theta_deg[1])), np.cos(np.radians(spec.photon_theta_deg[0]))
    photon = (mc.pdg == 22) & (mc.status > 0) & (mc.E > spec.min_photon_energy) & (cos_theta > lo) & (cos_theta < hi)
    return ak.to_numpy(ak.any(photon, axis=1))


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
        # the forced sub-decays' branching fraction stays in: one event is the physical rate of the
        # forced final state (configs/processes.py, forced_sub_branching_fraction)
        bf = proc.reference_branching_fraction or 1.0
        sub = catalogue.forced_sub_branching_fraction(req.process)
        base *= 2.0 * bf * sub
        source += f" x 2 x BR_ref={bf:g}"
        if sub != 1.0:
            source += f" x BR(forced sub-decays)={sub:g}"
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


def run_chunks(req: Request, workers: int = 1, scheduler: str | None = None, progress: bool = True) -> list[dict[str, Any]]:
    """Produce every chunk of a request; on failure remove the files written and re-raise."""
    validate_request(req)
    chunks = plan_chunks(req.events, req.events_per_file, req.seed)
    results: list[dict[str, Any]] = []
    try:
        if progress:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"{req.experiment} {req.dataset}", total=req.events)
                for result in _executor_map(req, chunks, workers, scheduler):
                    results.append(result)
                    bar.advance(task, result["generated"])
        else:
            results.extend(_executor_map(req, chunks, workers, scheduler))
    except BaseException:
        remove_files(req, chunks)
        raise
    results.sort(key=lambda r: r["chunk"])
    return results


def remove_files(req: Request, chunks: list[Chunk]) -> None:
    for c in chunks:
        chunk_path(req, c).unlink(missing_ok=True)


def produce(req: Request, workers: int = 1, scheduler: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run a whole request; write ``<out>/<experiment>_<dataset>.json`` last. Returns the manifest."""
    start = time.perf_counter()
    results = run_chunks(req, workers, scheduler, progress)
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


def produce_pseudo_data(
    experiment: str,
    luminosity_fb: float,
    seed: int,
    out: Path,
    events_per_file: int = DEFAULT_EVENTS_PER_FILE,
    workers: int = 1,
    scheduler: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Pseudo-data: every background with Poisson(sigma x L) events, unweighted, one manifest.

    Components with a generator-level filter (``pseudo_data.filters``) are generated in full and
    only the events passing the filter are written; the measured efficiency is recorded.
    """
    if experiment not in EXPERIMENTS:
        raise UserError(f"--experiment: unknown experiment '{experiment}' (choose from {', '.join(EXPERIMENTS)})")
    if luminosity_fb <= 0:
        raise UserError(f"--luminosity: must be positive, got {luminosity_fb}")
    start = time.perf_counter()
    catalogue = load_catalogue()
    rng = np.random.default_rng([seed, 4])
    components: dict[str, Any] = {}
    files: list[dict[str, Any]] = []
    done: list[tuple[Request, list[Chunk]]] = []
    try:
        for i, process in enumerate(catalogue.pseudo_data.components):
            req = Request(experiment, process, 1, seed + 1000 * (i + 1), out, events_per_file, prefix="data_")
            xsec, source = cross_section(req)
            generated = int(rng.poisson(xsec * luminosity_fb * NB_TO_INV_FB))
            components[process] = {"cross_section_nb": xsec, "cross_section_source": source, "generated": generated}
            if generated == 0:
                components[process].update(written=0, filter_efficiency=1.0)
                continue
            req = Request(
                experiment, process, generated, req.seed, out, events_per_file,
                generator_filter=catalogue.pseudo_data.filters.get(process), prefix="data_",
            )
            done.append((req, plan_chunks(req.events, req.events_per_file, req.seed)))
            results = run_chunks(req, workers, scheduler, progress)
            written = sum(r["entries"] for r in results)
            components[process].update(
                written=written,
                filter_efficiency=written / generated,
                filter=req.generator_filter.model_dump() if req.generator_filter else None,
            )
            for r in results:
                r.pop("generator_settings")
                files.append({**r, "component": process})
    except BaseException:
        for req, chunks in done:
            remove_files(req, chunks)
        raise
    manifest = {
        "dataset": "data",
        "process": "data",
        "kind": "data",
        "is_data": True,
        "description": "pseudo-data: unweighted mixture of " + ", ".join(catalogue.pseudo_data.components),
        "experiment": experiment,
        "luminosity_fb": luminosity_fb,
        "events": sum(f["entries"] for f in files),
        "cross_section_nb": sum(c["cross_section_nb"] for c in components.values()),
        "filter_efficiency": 1.0,
        "components": components,
        "seed": seed,
        "tree": TREE_NAME,
        "files": files,
        "generator": {"pythia8mc": _pythia_version()},
        "detector": f"configs/detector/{experiment}.yaml",
        "code_version": code_version(),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(out / f"{experiment}_data.json", manifest)
    return manifest


def _pythia_version() -> str:
    from importlib.metadata import version

    return version("pythia8mc")

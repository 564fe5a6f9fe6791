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
from belle_rare.simulation.manifest import NB_TO_INV_FB, equivalent_luminosity_fb, simulation_fingerprint
from belle_rare.simulation.ntuple import TREE_NAME, NtupleWriter, event_columns, mcparticle_collection

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
    # `--filter SEARCH`: ``events`` counts events that pass the filter (generated until they do, at
    # most ``max_generated`` in all); without it ``events`` counts generated events (pseudo-data)
    filter_name: str | None = None
    max_generated: int | None = None

    @property
    def dataset(self) -> str:
        """Dataset name: the process, with its parameters if any (e.g. ``sig_zprime_m3``) and its
        generator filter (``tautau_filter_tau3mu``)."""
        suffix = "".join(f"_{'m' if k == 'mass' else k}{v:g}" for k, v in sorted(self.parameters.items()))
        if self.filter_name is not None:
            suffix += f"_filter_{self.filter_name}"
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
    if req.filter_name is not None and proc.kind != "background":
        # efficiencies are quoted per generated signal event, which the analyses count from the files
        raise UserError(f"--filter: only for background processes ('{req.process}' is a {proc.kind})")
    if req.filter_name is not None and req.filter_name not in catalogue.search_filters:
        known = ", ".join(catalogue.search_filters) or "none"
        raise UserError(f"--filter: no generator filter for search '{req.filter_name}' in configs/processes.yaml search_filters (known: {known})")
    if req.max_generated is not None and req.max_generated < req.events:
        raise UserError(f"--max-generated: must be at least --events ({req.events}), got {req.max_generated}")
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


#: events generated, simulated and written at a time in one file: a worker holds one block, not its
#: file (charged B B at 250,000 events per file took 7.6 GB, the detector response's arrays the peak)
WRITE_BLOCK_EVENTS = 10_000


def file_blocks(chunk: Chunk, block_events: int | None = None) -> list[Chunk]:
    """A file's blocks, as chunks of at most ``block_events`` (default ``WRITE_BLOCK_EVENTS``) with the
    file's index and seed (their first events follow on): ``block_random_stream`` tells their random
    streams apart."""
    block_events = block_events or WRITE_BLOCK_EVENTS
    starts = range(0, chunk.events, block_events)
    return [Chunk(chunk.index, min(block_events, chunk.events - s), chunk.seed, chunk.first_event + s) for s in starts]


def block_random_stream(seed: int, stream: int, block: int) -> np.random.Generator:
    """The random stream ``stream`` (3: detector response, 6: trigger) of a file's ``block``.

    Block 0 keeps the whole-file streams of before (``[seed, stream]``), so a file of at most one
    block (the default 10,000 events per file, make run, the golden samples) is bit-identical to the
    files written whole; a later block has its own child stream."""
    return np.random.default_rng([seed, stream] if block == 0 else [seed, stream, block])


def produce_chunk(req: Request, chunk: Chunk) -> dict[str, Any]:
    """Generate, simulate and write one chunk (one file, block by block); returns its manifest entry."""
    from belle_rare.simulation.detector import load_detector, simulate_detector
    from belle_rare.simulation.detector.trigger import beam_four_momentum, emulate_trigger

    start, cpu_start = time.perf_counter(), time.process_time()
    exp = load_experiment(req.experiment)
    detector = load_detector(req.experiment)
    path = chunk_path(req, chunk)
    entries = generated = 0
    generator = make_generator(req, chunk)
    try:
        with NtupleWriter(path) as writer:
            for k, block in enumerate(file_blocks(chunk)):
                if req.filter_name is not None:
                    truth, block_generated = generate_until_accepted(generator, req, block)
                else:
                    truth, block_generated = generator.generate(block.events), block.events
                    if req.generator_filter is not None:
                        truth = truth[passes_filter(truth, req.generator_filter)]
                reco = simulate_detector(truth, detector, block_random_stream(chunk.seed, 3, k))
                collections = {**reco, "MCParticle": mcparticle_collection(truth)}
                events = event_columns(truth, exp.experiment_number, chunk.index, chunk.first_event + entries)
                # L1 trigger bits, from their own random stream (the other detector draws stay unchanged)
                events |= emulate_trigger(reco, beam_four_momentum(truth), detector, block_random_stream(chunk.seed, 6, k))
                writer.extend(events, collections)
                entries += len(truth)
                generated += block_generated
                del truth, reco, collections, events  # before the next block is generated
        settings = list(getattr(generator, "settings", []))
    finally:
        generator.close()
    return {
        "path": path.name,
        "entries": entries,
        "generated": generated,
        "chunk": chunk.index,
        "seed": chunk.seed,
        "seconds": round(time.perf_counter() - start, 3),
        # CPU time of this process (Pythia runs in it): what the chunk cost, whatever the machine's load
        "cpu_seconds": round(time.process_time() - cpu_start, 3),
        "generator_settings": settings,
    }


# the smallest batch a filtered chunk generates, and the margin on the measured efficiency
MIN_FILTER_BATCH = 200
FILTER_BATCH_MARGIN = 1.2
# the largest batch generated at once: a rare filter (e e mu mu for tau3mu: 0.4 %) would otherwise ask
# for millions of events in one truth record (a 30,000-event chunk took 23 GB and the OOM killer)
MAX_FILTER_BATCH = 100_000
# default cap on generated events per accepted one: a filter stricter than 1 in 1000 needs --max-generated
DEFAULT_MAX_GENERATED_PER_EVENT = 1000


def generate_until_accepted(generator, req: Request, chunk: Chunk):
    """Generate batches until ``chunk.events`` events pass the request's filter (or its share of the cap).

    The last batch is cut just after the event that completes the quota, so ``generated`` counts
    exactly the events examined: every one of them is either written or rejected by the filter.
    Returns the accepted truth record and the number generated.
    """
    import awkward as ak

    assert req.generator_filter is not None
    cap = _chunk_cap(req, chunk)
    accepted: list = []
    n_accepted = generated = 0
    while n_accepted < chunk.events and generated < cap:
        efficiency = (n_accepted + 1) / (generated + 1)
        wanted = int(FILTER_BATCH_MARGIN * (chunk.events - n_accepted) / efficiency)
        batch = min(cap - generated, MAX_FILTER_BATCH, max(MIN_FILTER_BATCH, wanted))
        truth = generator.generate(batch)
        keep = passes_filter(truth, req.generator_filter)
        position = np.cumsum(keep)
        if n_accepted + position[-1] > chunk.events:  # quota reached inside this batch: stop at that event
            last = int(np.searchsorted(position, chunk.events - n_accepted))
            truth, keep = truth[: last + 1], keep[: last + 1]
        accepted.append(truth[keep])
        n_accepted += int(np.sum(keep))
        generated += len(keep)
    return ak.concatenate(accepted), generated


def _chunk_cap(req: Request, chunk: Chunk) -> int:
    """This chunk's share of the request's cap on generated events."""
    total = req.max_generated or DEFAULT_MAX_GENERATED_PER_EVENT * req.events
    return max(chunk.events, int(np.ceil(total * chunk.events / req.events)))


def passes_filter(truth, spec: GeneratorFilter) -> np.ndarray:
    """Events passing every requirement of a generator-level filter (see ``GeneratorFilter``)."""
    import awkward as ak

    mc = truth.mc
    final = mc.status > 0
    p = np.sqrt(mc.px**2 + mc.py**2 + mc.pz**2)
    theta = np.degrees(np.arccos(np.minimum(np.maximum(mc.pz / ak.where(p > 0, p, 1.0), -1.0), 1.0)))
    keep = np.ones(len(truth), bool)
    if spec.min_photon_energy is not None:
        lo, hi = spec.photon_theta_deg
        # photons, and the neutral hadrons that also shower in the ECL (K_L, neutrons)
        neutral = (mc.pdg == 22) | (abs(mc.pdg) == 130) | (abs(mc.pdg) == 2112)
        shower = final & neutral & (mc.E > spec.min_photon_energy) & (theta > lo) & (theta < hi)
        keep &= ak.to_numpy(ak.any(shower, axis=1))
    if spec.min_charged or spec.track_pair_mass is not None:
        charge = _charge(mc.pdg)
        lo, hi = spec.charged_theta_deg
        pt = np.sqrt(mc.px**2 + mc.py**2)
        charged = final & (charge != 0) & (pt > spec.charged_pt_min) & (theta > lo) & (theta < hi)
        keep &= ak.to_numpy(ak.sum(charged, axis=1) >= spec.min_charged)
        if spec.track_pair_mass is not None:
            keep &= _has_pair_in_window(mc[charged], charge[charged], spec.track_pair_mass)
        if spec.track_triplet is not None:
            keep &= _has_triplet(truth, mc[charged], charge[charged], spec.track_pair_mass, spec.track_triplet)
    if spec.max_charged is not None:
        lo, hi = spec.charged_theta_deg
        pt = np.sqrt(mc.px**2 + mc.py**2)
        hard = final & (_charge(mc.pdg) != 0) & (pt > spec.max_charged_pt_min) & (theta > lo) & (theta < hi)
        keep &= ak.to_numpy(ak.sum(hard, axis=1) <= spec.max_charged)
    if spec.pair_recoil is not None:
        keep &= _pair_recoil_inside(truth, final & (_charge(mc.pdg) != 0) & (theta > spec.charged_theta_deg[0])
                                    & (theta < spec.charged_theta_deg[1]) & (np.sqrt(mc.px**2 + mc.py**2) > spec.charged_pt_min),
                                    spec.pair_recoil)
    return keep


def _pair_recoil_inside(truth, charged, spec) -> np.ndarray:
    """Events whose recoil against their two highest-pT ``charged`` particles has the polar angle and mass
    squared of ``spec`` (lab beams from the truth record); events with fewer than two fail."""
    import awkward as ak

    mc = truth.mc[charged]
    order = ak.argsort(np.sqrt(mc.px**2 + mc.py**2), axis=1, ascending=False)
    two = ak.pad_none(mc[order][:, :2], 2, clip=True)
    has_two = ak.to_numpy(ak.num(mc, axis=1) >= 2)
    p = {c: ak.to_numpy(ak.fill_none(ak.sum(two[c], axis=1), 0.0)) for c in ("px", "py", "pz", "E")}
    rec = {c: ak.to_numpy(truth[f"beam_{c}"]) - p[c] for c in ("px", "py", "pz", "E")}
    p_rec = np.sqrt(rec["px"] ** 2 + rec["py"] ** 2 + rec["pz"] ** 2)
    m2 = rec["E"] ** 2 - p_rec**2
    theta = np.degrees(np.arccos(np.clip(rec["pz"] / np.where(p_rec > 0, p_rec, 1.0), -1.0, 1.0)))
    angle_ok = ((theta > spec.theta_deg[0]) & (theta < spec.theta_deg[1])) | (p_rec <= spec.theta_min_momentum)
    return has_two & angle_ok & (m2 > spec.m2[0]) & (m2 < spec.m2[1])


def _charge(pdg):
    """Electric charge of the stable charged particles the tracker sees (e, mu, pi, K, p); 0 otherwise."""
    import awkward as ak

    from belle_rare.simulation.detector import pdg as pdgtab

    flat = ak.to_numpy(ak.flatten(pdg))
    _, charge = pdgtab.lookup(flat)
    tracked = np.isin(np.abs(flat), pdgtab.TRACKED)
    return ak.unflatten(np.where(tracked, charge, 0.0).astype(np.int32), ak.num(pdg))


def _has_pair_in_window(mc, charge, spec) -> np.ndarray:
    """Events with an opposite-charge pair whose mass (both in the ``spec.hypothesis`` mass) lies in the window."""
    import awkward as ak

    from belle_rare.core.units import pdg_mass

    mass = pdg_mass(spec.hypothesis)
    p2 = mc.px**2 + mc.py**2 + mc.pz**2
    tracks = ak.zip({"px": mc.px, "py": mc.py, "pz": mc.pz, "E": np.sqrt(p2 + mass**2), "q": charge})
    a, b = ak.unzip(ak.combinations(tracks, 2))
    m2 = (a.E + b.E) ** 2 - (a.px + b.px) ** 2 - (a.py + b.py) ** 2 - (a.pz + b.pz) ** 2
    m = np.sqrt(np.maximum(m2, 0.0))
    good = (a.q * b.q < 0) & (m > spec.window[0]) & (m < spec.window[1])
    return ak.to_numpy(ak.any(good, axis=1))


def _has_triplet(truth, mc, charge, pair, spec) -> np.ndarray:
    """Events with an opposite-charge pair in ``pair``'s mass window and a third particle (``spec``: the triplet's
    mass window and CM energy above sqrt(s) / 2 + de_min, beams from the truth record). The pairs in the window
    are few, so pairs x third particles stays small (all triplets of a B B event would be ~10^2 per event)."""
    import awkward as ak

    from belle_rare.core.units import pdg_mass

    m_pair, m_third = pdg_mass(pair.hypothesis), pdg_mass(spec.third_hypothesis)
    p2 = mc.px**2 + mc.py**2 + mc.pz**2
    tracks = ak.zip({"px": mc.px, "py": mc.py, "pz": mc.pz, "p2": p2, "q": charge, "i": ak.local_index(mc.px)})
    a, b = ak.unzip(ak.combinations(tracks, 2))
    ea, eb = np.sqrt(a.p2 + m_pair**2), np.sqrt(b.p2 + m_pair**2)
    m2 = (ea + eb) ** 2 - (a.px + b.px) ** 2 - (a.py + b.py) ** 2 - (a.pz + b.pz) ** 2
    m = np.sqrt(np.maximum(m2, 0.0))
    good = (a.q * b.q < 0) & (m > pair.window[0]) & (m < pair.window[1])
    pairs = ak.zip({"E": (ea + eb)[good], "px": (a.px + b.px)[good], "py": (a.py + b.py)[good], "pz": (a.pz + b.pz)[good],
                    "ia": a.i[good], "ib": b.i[good]})
    pr, third = ak.unzip(ak.cartesian([pairs, tracks]))
    e = pr.E + np.sqrt(third.p2 + m_third**2)
    px, py, pz = pr.px + third.px, pr.py + third.py, pr.pz + third.pz
    mass = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0.0))
    # CM energy E* = (E E_beam - p . p_beam) / sqrt(s), the beams' total four-momentum per event
    beam = {c: ak.Array(ak.to_numpy(truth[f"beam_{c}"])) for c in ("px", "py", "pz", "E")}
    roots = np.sqrt(beam["E"] ** 2 - beam["px"] ** 2 - beam["py"] ** 2 - beam["pz"] ** 2)
    e_cm = (e * beam["E"] - px * beam["px"] - py * beam["py"] - pz * beam["pz"]) / roots
    ok = (third.i != pr.ia) & (third.i != pr.ib) & (mass > spec.mass[0]) & (mass < spec.mass[1]) & (e_cm - roots / 2 > spec.de_min)
    return ak.to_numpy(ak.any(ok, axis=1))


def cross_section(req: Request) -> tuple[float, str]:
    """sigma x BR (nb) that one generated event of this dataset represents, and how it was formed."""
    catalogue = load_catalogue()
    proc = catalogue.get(req.process)
    exp = load_experiment(req.experiment)
    keys = catalogue.cross_section_keys(req.process)
    if proc.zprime_model is not None:
        return _zprime_cross_section(proc, exp, req.parameters.get("mass", proc.parameters["mass"]))
    if proc.reference_cross_section_nb is not None:
        return proc.reference_cross_section_nb, "reference cross section (normalisation only)"
    assert keys is not None
    base = sum(exp.cross_section(k) for k in keys)
    source = " + ".join(f"sigma({k})" for k in keys)
    if proc.generator == "upsilon4s" and proc.b_pair != "both" and proc.forced_decay_charged is None:
        f = exp.upsilon4s_charged_fraction if proc.b_pair == "charged" else 1 - exp.upsilon4s_charged_fraction
        base *= f
        source += f" x f({proc.b_pair})={f:g}"
    mass_slice = catalogue.gamma_star_mass(req.process)
    if mass_slice is not None:
        share = gamma_star_share(req.process, req.experiment)
        base *= share
        upper = "sqrt(s)" if mass_slice.max is None else f"{mass_slice.max:g}"
        source += f" x f(m_gamma* {mass_slice.min:g}-{upper} GeV)={share:.4f}"
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


def gamma_star_share(process: str, experiment: str) -> float:
    """The share of its e+e- -> f fbar cross section a process's gamma* mass slice generates (ISR
    structure function x Born; issue 11), 1 for an unsliced process. A tau-pair signal shares its base
    process's slice (Pythia's gamma* floor at 10 GeV: 0.798 of the tau pairs): its cross section
    carries the share, the limit's reference branching fraction divides it out and the efficiency in
    the papers' definition (per produced signal decay) includes it, the signal of the harder-ISR tau
    pairs counted as not selected (taulgamma: 0.0001 +- 0.0001 in that slice, README)."""
    mass_slice = load_catalogue().gamma_star_mass(process)
    if mass_slice is None:
        return 1.0
    from belle_rare.core.units import pdg_mass
    from belle_rare.simulation.generators.isr import gamma_star_mass_fraction

    return float(gamma_star_mass_fraction(load_experiment(experiment).sqrt_s_nominal, pdg_mass(mass_slice.fermion),
                                          mass_slice.min, mass_slice.max))


def signal_sample_fraction(process: str, experiment: str) -> float:
    """What one generated signal event stands for, as a fraction of a produced signal decay: the
    forced sub-decays' branching fraction (configs/processes.py ``forced_sub_branching_fraction``)
    times the gamma* slice share (``gamma_star_share``). The sample's cross section carries it; the
    limit's reference branching fraction divides it out; an efficiency per generated event times it
    is the papers' efficiency (selected / produced signal decays)."""
    return load_catalogue().forced_sub_branching_fraction(process) * gamma_star_share(process, experiment)


def _zprime_cross_section(proc, exp, mass: float) -> tuple[float, str]:
    """sigma(e+e- -> mu mu Z') x BR(Z' -> inv) with ISR of the process's L_mu - L_tau model (fixed seed:
    the same number for every chunk and rerun)."""
    from belle_rare.simulation.generators import dedicated

    sampler = dedicated.zprime_sampler(proc, mass, exp, np.random.default_rng(0))
    sigma = sampler.cross_section_with_isr(exp.sqrt_s, dedicated.zprime_isr_x_max(exp, mass))
    model = proc.zprime_model
    return sigma, (f"sigma(mu mu Z') x BR(inv), L_mu - L_tau ({model.invisible}, g' = {model.coupling:g}, "
                   f"Gamma/M = {model.width_over_mass:g}), tree level with ISR")


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
                    bar.advance(task, result["entries"] if req.filter_name else result["generated"])
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
    """Run a whole request; write ``<out>/<experiment>_<dataset>.json`` last. Returns the manifest.

    An earlier production of the same dataset in ``<out>`` loses its manifest first: its files are about to be
    overwritten (or, on failure, removed), so a run stopped half-way must not leave a manifest that describes files
    it no longer matches (a resumed paper-mode run would trust it)."""
    start = time.perf_counter()
    validate_request(req)
    (req.out / f"{req.experiment}_{req.dataset}.json").unlink(missing_ok=True)
    results = run_chunks(req, workers, scheduler, progress)
    settings = results[0].pop("generator_settings")
    for r in results[1:]:
        r.pop("generator_settings")
    catalogue = load_catalogue()
    proc = catalogue.get(req.process)
    xsec, xsec_source = cross_section(req)
    accepted = sum(r["entries"] for r in results)
    generated = sum(r["generated"] for r in results)
    efficiency = accepted / generated if generated else 1.0
    manifest = {
        "dataset": req.dataset,
        "process": req.process,
        "kind": proc.kind,
        "is_data": False,
        "description": proc.description,
        "experiment": req.experiment,
        # events written; every generated event is written or rejected by the filter (per file too)
        "events": accepted,
        "generated_events": generated,
        "rejected_events": generated - accepted,
        "cross_section_nb": xsec,
        "cross_section_source": xsec_source,
        # dataset weight: sigma x L x filter_efficiency / events = sigma x L / generated_events
        "filter_efficiency": efficiency,
        "filter_efficiency_error": float(np.sqrt(efficiency * (1.0 - efficiency) / generated)) if generated else 0.0,
        "filter": None if req.filter_name is None else {
            "search": req.filter_name, **catalogue.search_filters[req.filter_name].model_dump(),
        },
        "biased_production": _biased_production(proc),
        "equivalent_luminosity_fb": equivalent_luminosity_fb(generated, xsec),
        "reference_branching_fraction": proc.reference_branching_fraction,
        "parameters": {**proc.parameters, **req.parameters},
        "seed": req.seed,
        "tree": TREE_NAME,
        "files": results,
        "generator": {"name": proc.generator, "pythia8mc": _pythia_version(), "settings": settings},
        "detector": f"configs/detector/{req.experiment}.yaml",
        "code_version": code_version(),
        "simulation_fingerprint": simulation_fingerprint(req.experiment),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "cpu_seconds": round(sum(r["cpu_seconds"] for r in results), 2),
    }
    write_json_atomic(req.out / f"{req.experiment}_{req.dataset}.json", manifest)
    return manifest


def _biased_production(proc) -> dict[str, Any] | None:
    """What a biased production enhanced (its events carry weights in ``__weight__``), or None."""
    if proc.tau_decay_enhancement is not None:
        return {"tau_decay_enhancement": proc.tau_decay_enhancement.model_dump(), "weights": "__weight__"}
    if proc.bhabha_central_enhancement is not None:
        return {"bhabha_central_enhancement": proc.bhabha_central_enhancement.model_dump(), "weights": "__weight__"}
    if proc.isr_central_enhancement is not None:
        return {"isr_central_enhancement": proc.isr_central_enhancement.model_dump(), "weights": "__weight__"}
    if proc.two_photon_tag_enhancement is not None:
        return {"two_photon_tag_enhancement": proc.two_photon_tag_enhancement.model_dump(), "weights": "__weight__"}
    return None


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
    (out / f"{experiment}_data.json").unlink(missing_ok=True)   # as produce(): no manifest over replaced files
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
        "simulation_fingerprint": simulation_fingerprint(experiment),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(out / f"{experiment}_data.json", manifest)
    return manifest


def _pythia_version() -> str:
    from importlib.metadata import version

    return version("pythia8mc")

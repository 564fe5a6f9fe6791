"""Shared fixtures: tiny generated truth samples, cached per test session."""

from __future__ import annotations

import functools

import pytest

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue


@functools.lru_cache(maxsize=None)
def truth_sample(process: str, experiment: str = "belle2", events: int = 2000, seed: int = 11, chunk: int = 0, **params):
    """Truth record of ``events`` events (no detector), cached across tests."""
    from belle_rare.simulation.production import Chunk, Request, make_generator

    req = Request(experiment=experiment, process=process, events=events, seed=seed, out=None, parameters=params)  # type: ignore[arg-type]
    gen = make_generator(req, Chunk(chunk, events, seed, 0))
    try:
        return gen.generate(events)
    finally:
        gen.close()


@pytest.fixture(scope="session")
def catalogue():
    return load_catalogue()


@pytest.fixture(scope="session")
def belle2():
    return load_experiment("belle2")

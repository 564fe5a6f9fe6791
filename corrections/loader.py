"""Find and load the correctionlib payload of an experiment (cached per process)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import correctionlib

from belle_rare.configs.experiment import EXPERIMENTS

PAYLOAD_DIR = Path(str(resources.files("belle_rare.corrections")))


def payload_path(experiment: str) -> Path:
    """Path of ``corrections/<experiment>.json`` (or ``.json.gz``); errors name the experiment."""
    if experiment not in EXPERIMENTS:
        raise ValueError(
            f"unknown experiment '{experiment}' for corrections (choose from {', '.join(EXPERIMENTS)})"
        )
    for suffix in (".json", ".json.gz"):
        path = PAYLOAD_DIR / f"{experiment}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no correction payload for experiment '{experiment}' in {PAYLOAD_DIR} "
        "(build it with `python -m corrections.build_payloads`)"
    )


@lru_cache(maxsize=None)
def load(experiment: str) -> correctionlib.CorrectionSet:
    """The CorrectionSet of ``belle`` or ``belle2``, read once per process."""
    return correctionlib.CorrectionSet.from_file(str(payload_path(experiment)))

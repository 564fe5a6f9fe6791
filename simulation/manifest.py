"""Dataset manifests: one JSON file per dataset beside its ROOT files.

A manifest records what a later ``belle-rare run`` needs to normalise a sample (cross section,
generator-filter efficiency, generated events) and what is needed to reproduce it (seed,
generator settings, experiment, code version).
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any

from belle_rare.configs.loader import CONFIG_DIR
from belle_rare.core.units import FB_PER_NB as NB_TO_INV_FB


def equivalent_luminosity_fb(events: int, cross_section_nb: float, filter_efficiency: float = 1.0) -> float:
    """Integrated luminosity (/fb) at which ``events`` generated events are expected."""
    return events / (cross_section_nb * filter_efficiency * NB_TO_INV_FB)


@cache
def simulation_fingerprint(experiment: str) -> str:
    """Hash of everything that decides what a generated event looks like: the simulation package's
    sources, the process catalogue and the experiment's beam and detector configs. A production
    whose manifest carries another fingerprint was made by other physics (e.g. before a detector
    or generator change) and is not reused by a resumed production."""
    digest = hashlib.sha256()
    sources = sorted(Path(__file__).resolve().parent.rglob("*.py"))
    configs = [CONFIG_DIR / "processes.yaml", CONFIG_DIR / "experiments" / f"{experiment}.yaml",
               CONFIG_DIR / "detector" / f"{experiment}.yaml"]
    for path in [*sources, *configs]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def read_manifest(path: Path) -> dict[str, Any]:
    """Read one manifest; errors name the file."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable dataset manifest ({err})") from None
    for key in ("dataset", "files", "cross_section_nb", "events"):
        if key not in manifest:
            raise ValueError(f"{path}: dataset manifest lacks '{key}'")
    return manifest


def find_manifests(samples: Path) -> list[Path]:
    """A manifest file, or every ``*.json`` manifest in a sample directory."""
    samples = Path(samples)
    if samples.is_file():
        return [samples]
    if not samples.is_dir():
        raise FileNotFoundError(f"{samples}: no such sample directory or manifest")
    found = sorted(p for p in samples.glob("*.json") if not p.name.startswith("."))
    if not found:
        raise FileNotFoundError(f"{samples}: no dataset manifests (*.json)")
    return found

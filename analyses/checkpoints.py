"""Per-chunk checkpoints of a run, for ``belle-rare run --resume``.

Every chunk a worker finishes is saved as ``OUT/.SEARCH.checkpoints/FINGERPRINT/DATASET/FILEUUID/
START-STOP.coffea`` (lz4 cloudpickle of coffea's chunk output, written to a temporary file and
renamed, so a checkpoint is either complete or absent). ``FINGERPRINT`` hashes everything that
changes a chunk's output besides its input (search, experiment, search config, PID weighting, model
directory, chunk size, code version); the file's UUID (ROOT's, written by uproot) changes when a file
is regenerated. A resumed run gets the saved output back from coffea's checkpointer hook without
reading the chunk, so the merge at the end is the same as in one uninterrupted run. The directory
is removed once the run's outputs are written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cloudpickle
import lz4.frame
from coffea.processor import CheckpointerABC

from belle_rare.core.errors import UserError
from belle_rare.core.provenance import code_version


def checkpoint_root(out: Path, search: str) -> Path:
    """Where the chunk checkpoints of ``belle-rare run SEARCH --out OUT`` live."""
    return Path(out) / f".{search}.checkpoints"


def run_fingerprint(search: str, experiment: str, config: Any, pid_weighting: bool, model_dir: Path | None,
                    chunksize: int) -> str:
    """16 hex digits over everything besides the input chunk that a chunk's output depends on."""
    dumped = config.model_dump(mode="json") if hasattr(config, "model_dump") else repr(config)
    payload = json.dumps(
        {"search": search, "experiment": experiment, "config": dumped, "pid_weighting": pid_weighting,
         "model_dir": str(Path(model_dir).resolve()) if model_dir else None, "chunksize": chunksize,
         "code": code_version()},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class ChunkCheckpointer(CheckpointerABC):
    """coffea checkpointer: loads a chunk's saved output if present, saves it atomically otherwise.

    Runs on the workers: ``directory`` must be on a file system they share with the client.
    A checkpoint that cannot be written (full disk) is skipped: the run goes on, only that chunk
    would be re-processed by a later ``--resume``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = str(directory)

    def path(self, metadata: dict[str, Any]) -> Path:
        return (Path(self.directory) / str(metadata["dataset"]) / (metadata.get("fileuuid") or "nouuid")
                / f"{metadata['entrystart']}-{metadata['entrystop']}.coffea")

    def load(self, metadata: Any, processor_instance: Any) -> Any:
        path = self.path(metadata)
        try:
            return cloudpickle.loads(lz4.frame.decompress(path.read_bytes()))
        except FileNotFoundError:
            return None
        except Exception:  # unreadable (should not happen: writes are atomic): process the chunk again
            return None

    def save(self, output: Any, metadata: Any, processor_instance: Any) -> None:
        path = self.path(metadata)
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                f.write(lz4.frame.compress(cloudpickle.dumps(output), compression_level=1))
            os.replace(tmp, path)
        except OSError:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)


def count_checkpoints(directory: Path) -> int:
    return sum(1 for _ in Path(directory).rglob("*.coffea")) if Path(directory).is_dir() else 0


def prepare_checkpoints(root: Path, fingerprint: str, resume: bool) -> tuple[Path, int]:
    """The checkpoint directory of this run and how many finished chunks it already holds.

    Without ``resume`` earlier checkpoints are removed (a fresh run). With ``resume``, checkpoints of
    another fingerprint (config or code changed) are a UserError rather than silently mixed in.
    """
    here = root / fingerprint
    if not resume:
        shutil.rmtree(root, ignore_errors=True)
        return here, 0
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != fingerprint) if root.is_dir() else []
    if others and not here.is_dir():
        raise UserError(f"--resume: the checkpoints in {root} were made with another configuration or code version "
                        f"({', '.join(others)}; this run is {fingerprint}); run without --resume to start again")
    return here, count_checkpoints(here)


def remove_checkpoints(root: Path) -> None:
    """After the outputs are written: the checkpoints are no longer needed."""
    shutil.rmtree(root, ignore_errors=True)

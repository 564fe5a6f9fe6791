"""Write NanoAOD-like ROOT ntuples (one TTree per file) in basf2 naming habits, atomically.

Event-level branches (``__experiment__``, ``__run__``, ``__event__``, ``__weight__``, ``Ecms``,
``beamE``, ``beamPx``, ``beamPy``, ``beamPz``, ``mcSignalIndex``) and jagged collections written as a
counter plus one branch per field (``nTrack``, ``Track_px``, ...), the layout of basf2's
``VariablesToEventBasedTree`` and of NanoAOD. The truth record is the ``MCParticle`` collection.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from belle_rare.simulation.truth import MC_INT_FIELDS, flat_mc

TREE_NAME = "tree"

# LZ4 level 4: ROOT's preset for analysis files (``kUseAnalysis = 404`` in ROOT's
# core/foundation/inc/Compression.h, "fast reading but poor compression ratio"). CPU time for one
# file of 10,000 Belle II tau pairs (benchmarks/bench_generation.py --codecs; Belle in brackets):
#   setting   write [ms]   size [MB]      read [ms]
#   none       58 (53)     21.5 (19.4)    53 (53)
#   ZLIB(4)   446 (386)    10.1 (8.6)    104 (94)     the previous setting: 35% of the production time
#   LZ4(4)     70 (68)     13.2 (11.3)    56 (52)     used
#   ZSTD(1)    95 (86)     10.7 (9.3)     68 (64)     ROOT's general-purpose preset is ZSTD(5): 178 ms
# LZ4 writes and reads fastest (the files are read by every analysis pass) for +23% in size over
# ZSTD(1); with ZSTD(1) the full production of tau pairs drops from ~0.53 to ~0.50 of the bare
# generator's rate (the realism issue's target is 0.5). ZSTD(1) is the choice if disk matters more.
COMPRESSION = uproot.LZ4(4)

# truth-record field -> MCParticle branch suffix
MCPARTICLE_FIELDS = {
    "pdg": "PDG",
    "status": "status",
    "mother": "motherIndex",
    "px": "px",
    "py": "py",
    "pz": "pz",
    "E": "E",
    "mass": "mass",
    "x": "prodVertexX",
    "y": "prodVertexY",
    "z": "prodVertexZ",
}


def mcparticle_collection(truth: ak.Array) -> ak.Array:
    """The truth record as the ``MCParticle`` collection (float32 kinematics, int32 codes)."""
    offsets, flat = flat_mc(truth)
    fields = [
        ak.contents.NumpyArray(flat[field].astype(np.int32 if field in MC_INT_FIELDS else np.float32))
        for field in MCPARTICLE_FIELDS
    ]
    # the layout directly: ak.zip of ak.values_astype gives the same array at several times the cost
    record = ak.contents.RecordArray(fields, list(MCPARTICLE_FIELDS.values()), length=int(offsets[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def event_columns(truth: ak.Array, experiment_number: int, run: int, first_event: int) -> dict[str, np.ndarray]:
    """Event-level branches from the truth record."""
    n = len(truth)
    beam_e = ak.to_numpy(truth.beam_E)
    beam_p = np.stack([ak.to_numpy(truth[f"beam_p{c}"]) for c in "xyz"], axis=1)
    return {
        "__experiment__": np.full(n, experiment_number, np.int32),
        "__run__": np.full(n, run, np.int32),
        "__event__": np.arange(first_event, first_event + n, dtype=np.int64),
        "__weight__": ak.to_numpy(truth.weight).astype(np.float32),
        "Ecms": np.sqrt(beam_e**2 - np.sum(beam_p**2, axis=1)).astype(np.float32),
        "beamE": beam_e.astype(np.float32),
        "beamPx": beam_p[:, 0].astype(np.float32),
        "beamPy": beam_p[:, 1].astype(np.float32),
        "beamPz": beam_p[:, 2].astype(np.float32),
        "mcSignalIndex": ak.to_numpy(truth.signal_index).astype(np.int32),
    }


def write_ntuple(
    path: Path,
    events: dict[str, np.ndarray],
    collections: dict[str, ak.Array],
    tree: str = TREE_NAME,
) -> None:
    """Write one TTree with flat ``events`` branches and jagged ``collections`` to ``path``.

    The file is written under a temporary name in the same directory and renamed when complete,
    so an interrupted write never leaves a partial file at ``path``.
    """
    with NtupleWriter(path, tree) as writer:
        writer.extend(events, collections)


class NtupleWriter:
    """Write one TTree block by block (``extend``: one basket per branch and block), atomically.

    A context manager: the file grows under a temporary name in the same directory and is renamed
    to ``path`` when the ``with`` block ends without an exception; on any exception (KeyboardInterrupt
    included) the temporary file is removed, so ``path`` is either complete or absent. The tree is
    made at the first ``extend`` from its branches' types: every block must have the same branches.
    """

    def __init__(self, path: Path, tree: str = TREE_NAME) -> None:
        self.path = Path(path)
        self.tree = tree
        self._tmp: str | None = None
        self._file: uproot.WritableDirectory | None = None
        self._made = False  # the tree exists (made at the first extend)

    def __enter__(self) -> "NtupleWriter":
        fd, self._tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".root.part", dir=self.path.parent)
        os.close(fd)
        try:
            self._file = uproot.recreate(self._tmp, compression=COMPRESSION)
        except BaseException:
            Path(self._tmp).unlink(missing_ok=True)
            raise
        return self

    def extend(self, events: dict[str, np.ndarray], collections: dict[str, ak.Array]) -> None:
        """Append one block of events (flat ``events`` branches, jagged ``collections``)."""
        assert self._file is not None, "NtupleWriter.extend outside its with block"
        if not self._made:
            branch_types: dict[str, object] = {name: values.dtype for name, values in events.items()}
            for name, records in collections.items():
                branch_types[name] = records.type.content
            self._file.mktree(self.tree, branch_types, title="belle-rare simulated events")
            self._made = True
        self._file[self.tree].extend({**events, **collections})

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: object) -> None:
        assert self._file is not None and self._tmp is not None
        try:
            self._file.close()
            if kind is None:
                os.replace(self._tmp, self.path)
        finally:
            Path(self._tmp).unlink(missing_ok=True)  # absent after the rename

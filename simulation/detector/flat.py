"""Flat numpy views of the truth record and the way back to jagged per-event collections.

The response works on flat numpy columns (one row per particle, rows grouped by event in event
order) and turns its results into jagged awkward arrays only at the end, so every step is a
vectorised numpy operation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import awkward as ak
import numpy as np

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.truth import MC_FIELDS, MC_INT_FIELDS, flat_mc


@dataclass(frozen=True)
class FlatTruth:
    """The ``mc`` record of all events as flat columns, plus the event bookkeeping."""

    n_events: int
    offsets: np.ndarray  # (n_events + 1,) first flat row of each event
    event: np.ndarray  # event number of each flat row
    columns: dict[str, np.ndarray]

    @classmethod
    def from_truth(cls, truth: ak.Array) -> "FlatTruth":
        offsets, flat = flat_mc(truth)
        counts = np.diff(offsets)
        # explicit dtypes: an all-empty input has no inferred type. Columns already of the right
        # type are read-only views of the truth record (no copy); a step that wrote into them would
        # change the MCParticle collection written out, so it gets an error instead.
        columns = {}
        for f in MC_FIELDS:
            values = flat[f].astype(np.int64 if f in MC_INT_FIELDS else np.float64, copy=False).view()
            values.flags.writeable = False
            columns[f] = values
        event = np.repeat(np.arange(len(counts)), counts)
        return cls(len(counts), offsets, event, columns)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    @property
    def local(self) -> np.ndarray:
        """Index of each row inside its event's ``mc`` list."""
        return np.arange(len(self.event)) - self.offsets[self.event]

    def global_index(self, event: np.ndarray, local: np.ndarray) -> np.ndarray:
        """Flat row of particle ``local`` of ``event`` (``local`` must be >= 0)."""
        return self.offsets[event] + local


@dataclass
class Particles:
    """Detector inputs: final-state truth particles and beam-background pseudo-particles.

    ``pdg`` is the species the response treats the row as (beam-background tracks are pions);
    ``mc_index`` / ``mc_pdg`` are what is written out (-1 / 0 for beam background).
    """

    event: np.ndarray
    mc_index: np.ndarray
    mc_pdg: np.ndarray
    pdg: np.ndarray
    mother: np.ndarray  # local index of the mother in the event's mc list, -1 if none
    charge: np.ndarray
    mass: np.ndarray
    px: np.ndarray
    py: np.ndarray
    pz: np.ndarray
    E: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    background: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.event)

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> "Particles":
        return cls(**{f.name: columns[f.name] for f in fields(cls)})

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_truth(cls, flat: FlatTruth) -> "Particles":
        """The final-state particles of the truth record, masses and charges from ``particle``."""
        final = np.flatnonzero(flat["status"] > 0)
        pdg = flat["pdg"][final]
        mass, charge = pdgtab.lookup(pdg)
        # unknown codes (no table mass) fall back to the generated mass
        mass = np.where(np.isnan(mass), flat["mass"][final], mass)
        event = flat.event[final]
        return cls(
            event=event,
            mc_index=(final - flat.offsets[event]).astype(np.int32),  # flat.local of these rows only
            mc_pdg=pdg.astype(np.int32),
            pdg=pdg.astype(np.int32),
            mother=flat["mother"][final].astype(np.int32),
            charge=charge,
            mass=mass,
            **{c: flat[c][final] for c in ("px", "py", "pz", "E", "x", "y", "z")},
            background=np.zeros(len(final), dtype=bool),
        )

    @classmethod
    def created(
        cls, event: np.ndarray, *, pdg: np.ndarray, charge: np.ndarray, mass: np.ndarray,
        momentum: tuple[np.ndarray, ...], vertex: tuple[np.ndarray, ...], mc_index: np.ndarray,
        mc_pdg: np.ndarray, mother: np.ndarray, background: bool,
    ) -> "Particles":
        """Rows the response creates itself (beam background, conversion pairs, brems photons):
        on-shell energies from the momenta and masses, one ``background`` flag for all."""
        px, py, pz = momentum
        mass = np.asarray(mass, dtype=np.float64)
        return cls(
            event=event,
            mc_index=np.asarray(mc_index).astype(np.int32),
            mc_pdg=np.asarray(mc_pdg).astype(np.int32),
            pdg=np.asarray(pdg).astype(np.int32),
            mother=np.asarray(mother).astype(np.int32),
            charge=np.asarray(charge, dtype=np.float64),
            mass=mass,
            px=px,
            py=py,
            pz=pz,
            E=np.sqrt(px**2 + py**2 + pz**2 + mass**2),
            x=vertex[0],
            y=vertex[1],
            z=vertex[2],
            background=np.full(len(event), background, dtype=bool),
        )

    @classmethod
    def concatenate(cls, parts: list["Particles"]) -> "Particles":
        """Rows of all parts, re-grouped by event (stable, so each event keeps the parts' order)."""
        names = [f.name for f in fields(cls)]
        events = [p.event for p in parts]
        if not all(is_grouped(e) for e in events):
            columns = {name: np.concatenate([getattr(p, name) for p in parts]) for name in names}
            order = np.argsort(columns["event"], kind="stable")
            return cls.from_columns({name: values[order] for name, values in columns.items()})
        # every part is grouped by event: merge by placing each row directly, as a stable sort of the
        # concatenation would (same rows, same order), without the sort and the intermediate copy
        rows = merged_rows(events)
        total = sum(len(e) for e in events)
        columns = {}
        for name in names:
            values = [getattr(p, name) for p in parts]
            merged = np.empty(total, dtype=np.result_type(*values))
            for where, v in zip(rows, values):
                merged[where] = v
            columns[name] = merged
        return cls.from_columns(columns)

    @property
    def pt(self) -> np.ndarray:
        return np.hypot(self.px, self.py)

    @property
    def p(self) -> np.ndarray:
        return np.sqrt(self.px**2 + self.py**2 + self.pz**2)


def event_counts(event: np.ndarray, n_events: int) -> np.ndarray:
    return np.bincount(event, minlength=n_events).astype(np.int64)


def local_index(event: np.ndarray, n_events: int) -> np.ndarray:
    """Position of each row inside its event, for rows grouped by event."""
    counts = event_counts(event, n_events)
    starts = np.cumsum(counts) - counts
    return (np.arange(len(event)) - starts[event]).astype(np.int32)


def is_grouped(event: np.ndarray) -> bool:
    """Whether rows are grouped by event in event order (event numbers non-decreasing)."""
    return len(event) < 2 or not np.any(event[1:] < event[:-1])


def merged_rows(events: list[np.ndarray]) -> list[np.ndarray]:
    """Row of each input row in the stable event-ordered merge of several event-grouped row sets.

    A row of part k goes after the rows of its event in parts before k and before those in parts
    after k, i.e. where ``np.argsort(np.concatenate(events), kind="stable")`` would put it.
    """
    rows = []
    for k, event in enumerate(events):
        where = np.arange(len(event), dtype=np.int64)
        for j, other in enumerate(events):
            if j != k:
                where += np.searchsorted(other, event, side="right" if j < k else "left")
        rows.append(where)
    return rows


def to_jagged(columns: dict[str, np.ndarray], event: np.ndarray, n_events: int) -> ak.Array:
    """Jagged record array (one list per event) from flat columns whose rows are grouped by event."""
    if not is_grouped(event):
        raise ValueError("rows must be grouped by event in event order")
    arrays = [np.ascontiguousarray(values) for values in columns.values()]
    if any(len(values) != len(event) for values in arrays):
        raise ValueError("every column needs one value per row")
    # the layout is built directly (offsets + record of numpy columns): ak.zip + ak.unflatten give
    # the same array through their general broadcasting, at 5x the cost
    offsets = np.zeros(n_events + 1, dtype=np.int64)
    np.cumsum(event_counts(event, n_events), out=offsets[1:])
    content = ak.contents.RecordArray([ak.contents.NumpyArray(v) for v in arrays], list(columns), length=len(event))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), content))


def pairs_within_events(event: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All unordered pairs i < j of rows sharing an event: (event, row i, row j), grouped by event.

    Within an event the pairs come in ``ak.combinations`` order: (0,1), (0,2), ..., (1,2), ...
    """
    counts = event_counts(event, n_events)
    starts = np.cumsum(counts) - counts
    # rows i with the number of later rows of their event: row i pairs with each of them
    local = np.arange(len(event), dtype=np.int64) - starts[event]
    later = counts[event] - 1 - local
    first = np.repeat(np.arange(len(event), dtype=np.int64), later)
    # second = first + 1, first + 2, ...: a running count that restarts for every first row
    block_start = np.cumsum(later) - later
    step = np.arange(len(first), dtype=np.int64) - np.repeat(block_start, later) + 1
    n_pairs = counts * (counts - 1) // 2
    return np.repeat(np.arange(n_events), n_pairs), first, first + step

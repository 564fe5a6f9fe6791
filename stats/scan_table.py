"""The table of a many-hypothesis scan: one row per hypothesis, shared by every scanning search.

Columns (``COLUMNS``): ``channel`` (str), ``mass`` (GeV), ``lifetime_cm`` (float, NaN where the search has
no lifetime), the limits on the search's POI (e.g. BR x BR or sigma x BR) ``observed`` and
``expected_m2`` .. ``expected_p2`` (-2..+2 sigma), ``local_significance`` (signed Z of the best-fit signal:
positive for an excess, negative for a deficit) and ``resolution`` (GeV, the signal width the hypothesis
was fitted with). Any further column is free (e.g. ``coupling_observed``, ``efficiency``). ``metadata``
(search, POI name and unit, CL, look-elsewhere calibration, ...) travels with the table: in the Parquet
schema, or as a ``# {json}`` first line of the CSV.

Writers are atomic (temporary file + rename, ``belle_rare.core.atomic``); ``read_scan_table`` reads
either format back. ``largest_excess`` finds the row with the largest local significance and its global
significance (``stats.look_elsewhere``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from belle_rare.core.atomic import atomic_path
from belle_rare.stats.errors import StatsError
from belle_rare.stats.look_elsewhere import Calibration, global_p_value, rice_calibration, significance_of

EXPECTED_COLUMNS = ("expected_m2", "expected_m1", "expected", "expected_p1", "expected_p2")
# optional: the same bands as the quantiles of the observed limit over background-only toys (a scan that runs them)
TOY_EXPECTED_COLUMNS = tuple(f"toy_{c}" for c in EXPECTED_COLUMNS)
COLUMNS = ("channel", "mass", "lifetime_cm", "observed", *EXPECTED_COLUMNS, "local_significance", "resolution")
_METADATA_KEY = b"belle_rare.scan_table"


@dataclass
class ScanTable:
    """One row per hypothesis (``frame``, a pandas DataFrame with at least ``COLUMNS``) + ``metadata``."""

    frame: pd.DataFrame
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise StatsError(f"scan table: missing column(s) {', '.join(missing)} (needs {', '.join(COLUMNS)})")
        frame = self.frame.copy()
        frame["channel"] = frame["channel"].astype(str)
        for c in COLUMNS[1:]:
            frame[c] = frame[c].astype(float)
        extra = [c for c in frame.columns if c not in COLUMNS]
        self.frame = frame[list(COLUMNS) + extra].reset_index(drop=True)

    @classmethod
    def from_arrays(cls, channel: str | Sequence[str], mass: np.ndarray, observed: np.ndarray, expected: np.ndarray,
                    local_significance: np.ndarray, resolution: np.ndarray, lifetime_cm: float | np.ndarray = np.nan,
                    metadata: Mapping | None = None, **extra: np.ndarray) -> "ScanTable":
        """A table from arrays of H hypotheses; ``expected`` is (5, H), rows -2..+2 sigma (the order of
        ``FastLimits``); a scalar ``channel`` / ``lifetime_cm`` applies to every row."""
        mass = np.asarray(mass, float)
        h = len(mass)
        expected = np.asarray(expected, float)
        if expected.shape != (5, h):
            raise StatsError(f"scan table: expected limits must have shape (5, {h}), got {expected.shape}")
        columns = {
            "channel": np.broadcast_to(np.asarray(channel, dtype=object), (h,)),
            "mass": mass,
            "lifetime_cm": np.broadcast_to(np.asarray(lifetime_cm, float), (h,)),
            "observed": np.asarray(observed, float),
            **{name: expected[i] for i, name in enumerate(EXPECTED_COLUMNS)},
            "local_significance": np.asarray(local_significance, float),
            "resolution": np.broadcast_to(np.asarray(resolution, float), (h,)),
            **{k: np.broadcast_to(np.asarray(v), (h,)) for k, v in extra.items()},
        }
        return cls(pd.DataFrame(columns), dict(metadata or {}))

    @classmethod
    def concat(cls, tables: Sequence["ScanTable"], metadata: Mapping | None = None) -> "ScanTable":
        """Rows of several tables (metadata: ``metadata``, else the first table's)."""
        if not tables:
            raise StatsError("scan table: nothing to concatenate")
        return cls(pd.concat([t.frame for t in tables], ignore_index=True),
                   dict(metadata if metadata is not None else tables[0].metadata))

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def expected(self) -> np.ndarray:
        """(5, H): expected limits -2..+2 sigma."""
        return self.frame[list(EXPECTED_COLUMNS)].to_numpy().T

    def curves(self) -> Iterator[tuple[tuple[str, float], pd.DataFrame]]:
        """((channel, lifetime_cm), rows sorted by mass) for every limit curve, NaN lifetimes included."""
        for (channel, lifetime), rows in self.frame.groupby(["channel", "lifetime_cm"], dropna=False, sort=True):
            yield (str(channel), float(lifetime)), rows.sort_values("mass")

    # ---- files -------------------------------------------------------------------------------------

    def write(self, path: str | Path) -> Path:
        """Write as Parquet (``.parquet``) or CSV (``.csv``), atomically; returns the path."""
        path = Path(path)
        if path.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            arrow = pa.Table.from_pandas(self.frame, preserve_index=False)
            meta = {**(arrow.schema.metadata or {}), _METADATA_KEY: json.dumps(self.metadata).encode()}
            with atomic_path(path) as tmp:
                pq.write_table(arrow.replace_schema_metadata(meta), tmp)
        elif path.suffix == ".csv":
            with atomic_path(path) as tmp:
                with open(tmp, "w") as out:
                    out.write("# " + json.dumps(self.metadata) + "\n")
                    self.frame.to_csv(out, index=False, float_format="%.8g")
        else:
            raise StatsError(f"scan table {path}: write .parquet or .csv, not '{path.suffix}'")
        return path


def read_scan_table(path: str | Path) -> ScanTable:
    """A table written by ``ScanTable.write`` (Parquet or CSV)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        arrow = pq.read_table(path)
        meta = json.loads((arrow.schema.metadata or {}).get(_METADATA_KEY, b"{}"))
        return ScanTable(arrow.to_pandas(), meta)
    if path.suffix == ".csv":
        with open(path) as f:
            first = f.readline()
        meta = json.loads(first[2:]) if first.startswith("# ") else {}
        frame = pd.read_csv(path, skiprows=1 if first.startswith("# ") else 0, dtype={"channel": str})
        return ScanTable(frame, meta)
    raise StatsError(f"scan table {path}: read .parquet or .csv, not '{path.suffix}'")


# ---- the largest excess --------------------------------------------------------------------------


@dataclass(frozen=True)
class Excess:
    """The hypothesis with the largest local significance and its global significance."""

    row: dict
    local_significance: float
    local_p: float
    global_p: float
    global_significance: float
    method: str

    def to_dict(self) -> dict:
        return {"hypothesis": self.row, "local_significance": self.local_significance, "local_p": self.local_p,
                "global_p": self.global_p, "global_significance": self.global_significance, "method": self.method}


def scan_calibration(table: ScanTable, calibrations: Mapping[str, Calibration] | None = None) -> Calibration:
    """The look-elsewhere calibration of the whole table: the sum over channels of each channel's expected
    upcrossings (channels are independent spectra). The lifetimes of one channel fit the same spectrum with
    the same peak shape (only the signal efficiency differs, which does not change Z), so a channel counts
    once, over its widest mass coverage. A channel without a toy calibration in ``calibrations`` gets the
    analytic Rice count from its masses and resolutions (``look_elsewhere.rice_calibration``)."""
    total: Calibration | None = None
    for channel, rows in table.frame.groupby("channel", sort=True):
        if calibrations and channel in calibrations:
            cal = calibrations[channel]
        else:
            widest = max((r for _, r in rows.groupby("lifetime_cm", dropna=False)), key=len).sort_values("mass")
            cal = rice_calibration(widest["mass"].to_numpy(), widest["resolution"].to_numpy())
        total = cal if total is None else total + cal
    if total is None:
        raise StatsError("scan table: no rows")
    return total


def largest_excess(table: ScanTable, calibrations: Mapping[str, Calibration] | None = None) -> Excess:
    """The row with the largest local significance and its global significance (Gross-Vitells with the
    calibration of ``scan_calibration``; ``calibrations``: per-channel toy calibrations, else Rice)."""
    z = table.frame["local_significance"].to_numpy()
    if not np.isfinite(z).any():
        raise StatsError("scan table: no finite local significance")
    best = int(np.nanargmax(z))
    z_max = float(z[best])
    cal = scan_calibration(table, calibrations)
    p_global = float(global_p_value(z_max, cal))
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in table.frame.iloc[best].to_dict().items()}
    local_p = float(global_p_value(z_max, None))
    return Excess(row, z_max, local_p, p_global, float(significance_of(p_global)), cal.method)

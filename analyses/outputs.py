"""Write a run's outputs into ``DIR/SEARCH/`` atomically.

Everything is written into a temporary directory beside the target, which replaces
``DIR/SEARCH`` only once complete: a failed run leaves the previous output (or nothing).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hist
import uproot
from coffea.util import save

from belle_rare.processors.histograms import CATEGORY_AXES


def root_key(name: str, region: str, channel: str, dataset: str, variation: str) -> str:
    """ROOT path of one histogram slice: ``region/channel/dataset/name__variation``."""
    return f"{region}/{channel}/{dataset}/{name}__{variation}"


def _physics_slices(name: str, h: hist.Hist):
    """(key suffix, histogram) pairs over any extra categorical axis (e.g. a tag class): the sum
    first, then one per category value, so that only physics axes remain."""
    extra = [a.name for a in h.axes if isinstance(a, hist.axis.StrCategory) and a.name not in CATEGORY_AXES]
    if not extra:
        yield name, h
        return
    axis = extra[0]
    yield from _physics_slices(name, h[{axis: sum}])
    for value in h.axes[axis]:
        yield from _physics_slices(f"{name}_{axis}_{value}", h[{axis: value}])


def write_root(path: Path, histograms: dict[str, hist.Hist]) -> int:
    """One TH1/TH2 per (histogram, region, channel, dataset, variation[, extra category]). Returns how many."""
    written = 0
    with uproot.recreate(path) as out:
        for hist_name, full in histograms.items():
            for name, h in _physics_slices(hist_name, full):
                if h.ndim - len(CATEGORY_AXES) > 2:
                    continue  # TH3 and beyond: in the .coffea file only
                for dataset in h.axes["dataset"]:
                    for channel in h.axes["channel"]:
                        for region in h.axes["region"]:
                            for variation in h.axes["variation"]:
                                sliced = h[{"dataset": dataset, "channel": channel, "region": region, "variation": variation}]
                                if variation != "nominal" and sliced.sum(flow=True).value == 0:
                                    continue
                                out[root_key(name, region, channel, dataset, variation)] = sliced
                                written += 1
    return written


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def write_run_outputs(
    out_dir: Path,
    search: str,
    histograms: dict[str, hist.Hist],
    cutflow: dict[str, Any],
    metadata: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write histograms (.coffea and .root), cutflow.json, metadata.json (and ``extra(tmpdir)``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / search
    tmp = Path(tempfile.mkdtemp(prefix=f".{search}.", dir=out_dir))
    try:
        save(histograms, tmp / "histograms.coffea")
        metadata["root_histograms"] = write_root(tmp / "histograms.root", histograms)
        write_json(tmp / "cutflow.json", cutflow)
        write_json(tmp / "metadata.json", metadata)
        if extra is not None:
            extra(tmp)
        backup = None
        if target.exists():
            backup = out_dir / f".{search}.old"
            shutil.rmtree(backup, ignore_errors=True)
            target.rename(backup)
        tmp.rename(target)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target

"""Write a run's outputs into ``DIR/SEARCH/`` atomically.

``histograms.coffea`` holds the run's histograms as the processors fill them, ``{dataset: {name:
hist.Hist}}`` (``belle_rare.core.histograms``); ``histograms.root`` the same as one TH1/TH2 per
(histogram, region, channel, dataset, variation[, value of a further categorical axis]) at
``region/channel/dataset/NAME__VARIATION``; ``cutflow.json`` and ``metadata.json`` beside them.
Everything is written into a temporary directory beside the target, which replaces
``DIR/SEARCH`` only once complete: a failed or interrupted run leaves the previous output (or
nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import hist
import uproot
from coffea.util import save

from belle_rare.core.atomic import write_json
from belle_rare.core.errors import UserError
from belle_rare.core.histograms import NOMINAL, VARIATION_AXIS, contract_error, has_variations, physics_axes

CATEGORICAL = (hist.axis.StrCategory, hist.axis.IntCategory)


def root_key(name: str, region: str, channel: str, dataset: str, variation: str) -> str:
    """ROOT path of one histogram slice: ``region/channel/dataset/name__variation``."""
    return f"{region}/{channel}/{dataset}/{name}__{variation}"


def _physics_slices(name: str, h: hist.Hist) -> Iterator[tuple[str, hist.Hist]]:
    """(key name, histogram) pairs over the categorical physics axes (e.g. a tag class): the sum
    first, then one per category value (``NAME_AXIS_VALUE``), until only numeric physics axes
    remain. A histogram whose physics axes are all categorical keeps its last one as the labelled
    axis of the TH1 (a counting histogram by tag class, say)."""
    physics = physics_axes(h)
    categorical = [ax.name for ax in physics if isinstance(ax, CATEGORICAL)]
    if len(categorical) == len(physics):
        categorical = categorical[:-1]
    if not categorical:
        yield name, h
        return
    axis = categorical[0]
    yield from _physics_slices(name, h[{axis: sum}])
    for value in h.axes[axis]:
        yield from _physics_slices(f"{name}_{axis}_{value}", h[{axis: value}])


def write_root(path: Path, histograms: Mapping[str, Mapping[str, hist.Hist]]) -> int:
    """One TH1/TH2 per (histogram, region, channel, dataset, variation[, extra category]). Returns how many.

    Histograms without a ``variation`` axis are written as ``__nominal``; an empty non-nominal
    variation slice is left out; a counting histogram (one ``count`` bin) is a one-bin TH1;
    three or more physics axes stay in the .coffea file only.
    """
    written = 0
    with uproot.recreate(path) as out:
        for dataset, hists in histograms.items():
            for hist_name, full in hists.items():
                for name, h in _physics_slices(hist_name, full):
                    if len(physics_axes(h)) > 2:
                        continue  # TH3 and beyond: in the .coffea file only
                    variations = list(h.axes[VARIATION_AXIS]) if has_variations(h) else [None]
                    for channel in h.axes["channel"]:
                        for region in h.axes["region"]:
                            for variation in variations:
                                cut = {"channel": channel, "region": region}
                                if variation is not None:
                                    cut[VARIATION_AXIS] = variation
                                sliced = h[cut]
                                if variation not in (None, NOMINAL) and sliced.sum(flow=True).value == 0:
                                    continue
                                out[root_key(name, region, channel, dataset, variation or NOMINAL)] = sliced
                                written += 1
    return written


def check_histograms(histograms: Mapping[str, Mapping[str, hist.Hist]]) -> None:
    """UserError unless ``histograms`` is ``{dataset: {name: Hist}}`` with every Hist on the contract."""
    for dataset, hists in histograms.items():
        if not isinstance(hists, Mapping):
            raise UserError(f"run output not written: histograms['{dataset}'] is a {type(hists).__name__}, "
                            "expected {histogram name: Hist} (the layout of belle_rare.core.histograms)")
        for name, h in hists.items():
            problem = contract_error(name, h) if isinstance(h, hist.Hist) else f"histogram '{name}' is a {type(h).__name__}"
            if problem:
                raise UserError(f"run output not written: dataset '{dataset}': {problem}")


def _plain(payload: Any) -> Any:
    """JSON-ready copy (paths, numpy scalars and the like as strings or numbers)."""
    return json.loads(json.dumps(payload, default=lambda obj: obj.item() if hasattr(obj, "item") else str(obj)))


def write_run_outputs(
    out_dir: str | Path,
    search: Any,
    histograms: Mapping[str, Mapping[str, hist.Hist]],
    cutflow: dict[str, Any],
    metadata: dict[str, Any],
    extra: Callable[[Path], None] | None = None,
) -> Path:
    """Write histograms (.coffea and .root), cutflow.json, metadata.json (and ``extra(tmpdir)``)
    into ``out_dir/SEARCH``, replacing what was there only once everything is written.

    ``search`` is the search's name or its ``Search``; ``histograms`` ``{dataset: {name: Hist}}``.
    ``metadata`` gains ``root_histograms`` (how many TH1/TH2 histograms.root holds).
    """
    name = str(getattr(search, "name", search))
    out_dir = Path(out_dir)
    check_histograms(histograms)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    backup = out_dir / f".{name}.old"
    if backup.is_dir() and not target.exists():
        os.replace(backup, target)  # a run killed between the two renames below: its previous output
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
    moved = False
    try:
        save(dict(histograms), tmp / "histograms.coffea")
        metadata["root_histograms"] = write_root(tmp / "histograms.root", histograms)
        write_json(tmp / "cutflow.json", _plain(cutflow))
        write_json(tmp / "metadata.json", _plain(metadata))
        if extra is not None:
            extra(tmp)
        shutil.rmtree(backup, ignore_errors=True)
        if target.exists():
            os.replace(target, backup)
            moved = True
        os.replace(tmp, target)
    except BaseException as err:
        if moved and not target.exists():
            os.replace(backup, target)  # put the previous output back
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):  # a full disk, a quota, a read-only file system: one line, nothing half-written
            where = f" ({err.filename})" if err.filename else ""
            kept = "the previous output is kept" if target.exists() else "nothing written"
            raise UserError(f"{target}: cannot write the run's outputs: {err.strerror or err}{where}; {kept}") from err
        raise
    shutil.rmtree(backup, ignore_errors=True)
    return target

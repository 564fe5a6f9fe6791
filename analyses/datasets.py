"""Datasets from sample manifests: the coffea fileset, normalisation, and input validation.

Every file is checked before processing (exists, is ROOT, has the tree, has the branches the
search reads, has the entries its manifest says), so that bad input is a one-line error naming
the file — or, with ``--skip-bad-files``, a listed skip — instead of a failure deep in a worker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import uproot

from belle_rare.core.errors import UserError
from belle_rare.simulation.manifest import NB_TO_INV_FB, find_manifests, read_manifest


@dataclass
class Dataset:
    """One dataset of a sample directory, as its manifest describes it."""

    name: str
    kind: str  # signal | background | data
    experiment: str
    cross_section_nb: float
    filter_efficiency: float
    events: int
    tree: str
    files: dict[str, int]  # absolute path -> entries
    manifest: Path
    parameters: dict[str, float] = field(default_factory=dict)
    luminosity_fb: float | None = None  # pseudo-data only
    process: str | None = None  # catalogue process (configs/processes.yaml) the sample was generated from
    #: absolute path -> the file's ROOT UUID, recorded by ``validate_inputs`` (the runner hands it to
    #: coffea with the entries, so that coffea does not open every file again to get them)
    uuids: dict[str, bytes] = field(default_factory=dict)

    @property
    def is_data(self) -> bool:
        return self.kind == "data"

    def scale(self, luminosity_fb: float, processed_events: int) -> float:
        """Weight per processed event that normalises this dataset to ``luminosity_fb``.

        A filtered sample (``belle-rare generate --filter``) wrote ``events`` of the events it
        generated, ``filter_efficiency`` = written / generated, so the scale is sigma x L / generated
        when every file is read. Biased productions carry their weights per event (``__weight__``,
        mean 1 over the generated events) on top of this scale.
        """
        if self.is_data or processed_events == 0:
            return 1.0
        return self.cross_section_nb * NB_TO_INV_FB * self.filter_efficiency * luminosity_fb / processed_events


def of_process(name: str, process: str | None, wanted: str) -> bool:
    """Whether dataset ``name``, generated from catalogue ``process`` (None where its manifest does not say),
    is a sample of ``wanted``: its process, else its name -- ``wanted`` itself or with its parameters
    (``sig_zprime_m3``, simulation/production.py ``Request.dataset``), never another process that shares the
    prefix (``sig_zprime_wide_m3`` is not a ``sig_zprime`` sample)."""
    if process:
        return process == wanted
    return re.fullmatch(rf"{re.escape(wanted)}(_[a-z]+-?[0-9.]+(e[+-]?[0-9]+)?)*", name) is not None


def load_datasets(samples: Path, experiment: str) -> dict[str, Dataset]:
    """All datasets of ``experiment`` in a sample directory (or one manifest)."""
    try:
        paths = find_manifests(Path(samples))
    except FileNotFoundError as err:
        raise UserError(f"--samples: {err}") from None
    datasets: dict[str, Dataset] = {}
    background_of: dict[str, Path] = {}  # background process -> its manifest: one sample of each
    for path in paths:
        try:
            m = read_manifest(path)
        except ValueError as err:
            raise UserError(str(err)) from None
        if m.get("experiment") != experiment:
            continue
        if m.get("kind", "background") == "background" and not m.get("is_data"):
            # a plain and a filtered or biased sample of one physics process (same cross section, e.g.
            # tautau and tautau_3prong) would both be counted in full
            physics = m.get("cross_section_source") or m.get("process", m["dataset"])
            if physics in background_of:
                raise UserError(f"--samples: {background_of[physics].name} and {path.name} are both samples of "
                                f"{physics}: keep one per sample directory")
            background_of[physics] = path
        files = {str((path.parent / f["path"]).resolve()): int(f["entries"]) for f in m["files"]}
        datasets[m["dataset"]] = Dataset(
            name=m["dataset"],
            kind=m.get("kind", "background"),
            experiment=m["experiment"],
            cross_section_nb=float(m["cross_section_nb"]),
            filter_efficiency=float(m.get("filter_efficiency", 1.0)),
            events=int(m["events"]),
            tree=m.get("tree", "tree"),
            files=files,
            manifest=path,
            parameters=m.get("parameters", {}),
            luminosity_fb=m.get("luminosity_fb"),
            process=m.get("process"),
        )
    if not datasets:
        raise UserError(f"--samples: no {experiment} datasets in {samples}")
    return datasets


#: files that passed ``check_file`` in this process: (path, size, mtime, inode, tree, branches, entries) -> UUID.
#: A second run over the same files (a notebook's re-run, a benchmark's measured pass) then parses each tree
#: once instead of twice, as coffea's Runner keeps its file metadata per process (``DEFAULT_METADATA_CACHE``).
#: A file that changed on disk has another size or mtime, so it is checked again; failures are not kept.
_CHECKED: dict[tuple[Any, ...], bytes] = {}
_CHECKED_MAX = 100_000


def check_file(path: str, tree: str, branches: list[str], entries: int) -> bytes:
    """Raise ``UserError`` naming ``path`` if it cannot be processed; returns the file's UUID.

    Reads the file's header and the tree's metadata only: no basket is decompressed (it was the
    last basket of every branch: with one basket per branch, as in the benchmark suite's files, a
    second full read). A basket whose bytes lie beyond the end of the file is refused here; a
    damaged basket inside the file fails in the worker that reads it (a one-line error naming the
    file, ``runner._failure_message``). A file this process already checked, unchanged on disk since,
    is not read again (``_CHECKED``)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: file does not exist")
    stat = Path(path).stat()
    if stat.st_size == 0:
        raise UserError(f"{path}: file is empty")
    key = (path, stat.st_size, stat.st_mtime_ns, stat.st_ino, tree, tuple(branches), entries)
    if (uuid := _CHECKED.get(key)) is not None:
        return uuid
    uuid = _check_contents(path, tree, branches, entries)
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED[key] = uuid
    return uuid


def _check_contents(path: str, tree: str, branches: list[str], entries: int) -> bytes:
    """``check_file``'s reading part: the header, the tree and the baskets' positions."""
    try:
        with uproot.open(path) as f:
            # the header records where the file ends: a shorter file was cut off while written or copied
            if Path(path).stat().st_size < f.file.fEND:
                raise UserError(f"{path}: truncated ({Path(path).stat().st_size} of {f.file.fEND} bytes)")
            if tree not in f:
                raise UserError(f"{path}: no tree '{tree}' (has: {', '.join(f.keys(cycle=False)) or 'nothing'})")
            t = f[tree]
            missing = [b for b in branches if b not in t]
            if missing:
                raise UserError(f"{path}: missing branch '{missing[0]}'" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""))
            if t.num_entries != entries:
                raise UserError(f"{path}: {t.num_entries} entries, manifest says {entries}")
            # every basket of the branches the search uses lies inside the file (their headers say where)
            size = Path(path).stat().st_size
            for branch in branches:
                b = t[branch]
                n = int(b.member("fWriteBasket"))
                end = (np.asarray(b.member("fBasketSeek")[:n], np.int64) + np.asarray(b.member("fBasketBytes")[:n], np.int64)).max(initial=0)
                if end > size:
                    raise UserError(f"{path}: branch '{branch}' has a basket beyond the end of the file ({end} > {size} bytes)")
            return f.file.fUUID
    except UserError:
        raise
    except Exception as err:  # uproot raises many types for corrupt input
        raise UserError(f"{path}: not a readable ROOT file ({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None


def validate_inputs(
    datasets: dict[str, Dataset], branches: list[str], skip_bad_files: bool
) -> list[dict[str, Any]]:
    """Check every file; drop bad ones when ``skip_bad_files`` (returned as skips), else raise."""
    skipped = []
    for ds in datasets.values():
        for path, entries in list(ds.files.items()):
            try:
                ds.uuids[path] = check_file(path, ds.tree, branches, entries)
            except UserError as err:
                if not skip_bad_files:
                    raise
                skipped.append({"dataset": ds.name, "file": path, "entries": entries, "reason": str(err)})
                del ds.files[path]
    return skipped


def fileset(datasets: dict[str, Dataset]) -> dict[str, dict[str, Any]]:
    """coffea fileset ``{dataset: {"files": {path: tree}}}`` (datasets with no files left are dropped)."""
    return {
        name: {"files": {p: ds.tree for p in ds.files},
               # parameters: generation settings (e.g. the signal's ctau, which bkscalar reweights from)
               "metadata": {"is_data": ds.is_data, "kind": ds.kind, "parameters": dict(ds.parameters)}}
        for name, ds in datasets.items()
        if ds.files
    }

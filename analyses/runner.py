"""Run one search over a sample directory with coffea's ``processor.Runner``.

configs -> datasets (manifests) -> validated fileset -> Runner(executor, BelleSchema) -> merged
histograms and cutflows -> per-dataset luminosity scaling -> event accounting -> outputs.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uproot
from coffea import processor

from belle_rare.analyses.checkpoints import ChunkCheckpointer, checkpoint_root, prepare_checkpoints, run_fingerprint
from belle_rare.analyses.datasets import Dataset, fileset, load_datasets, validate_inputs
from belle_rare.core.errors import UserError
from belle_rare.analyses.executors import make_executor
from belle_rare.configs.experiment import load_experiment
from belle_rare.core.histograms import NOMINAL, VARIATION_AXIS, canonical_categories, scale_datasets
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema
from belle_rare.core.provenance import code_version

#: ``uproot.open`` options of every chunk: no array or object cache. coffea opens the file per chunk
#: and the file, its TTree models and its array cache (every branch the chunk read, decompressed) form
#: reference cycles, so each chunk's arrays stayed until a full garbage collection, which came about
#: every 6 chunks: the peak RSS grew with the number of chunks (issue 15: bkscalar 1.38 x, taulgamma
#: 1.35-1.46 x for 10 x the events; flat after, ``benchmarks/bench_memory_growth.py``). The cache only
#: saved coffea's second read of a collection's first branch (offsets, then content: 3 of 39 branches
#: of a bkscalar chunk, ~4 ms per 10,000 events); a ``gc.collect()`` per chunk instead costs ~50 ms.
#: The files are read through uproot's memory map (``MemmapSource``), not its default fsspec source,
#: which hands every branch read to an asyncio thread: ~0.23 CPU ms more per branch (11.4 vs 6.3
#: CPU ms for zprime's 22 branches of a 10,000-event file). Local paths only, which ``validate_inputs``
#: requires anyway (the samples directory is on a local or shared file system).
CHUNK_UPROOT_OPTIONS = {"array_cache": None, "object_cache": None, "handler": uproot.source.file.MemmapSource}


@dataclass
class RunOptions:
    search: str
    experiment: str
    samples: Path
    out: Path
    executor: str = "iterative"
    workers: int = 1
    scheduler: str | None = None
    cluster: str | None = None
    chunksize: int = 50_000
    max_chunks: int | None = None
    skip_bad_files: bool = False
    progress: bool = True
    model_dir: Path | None = None  # trained models (default: the ones shipped with the package)
    pid_weighting: bool | None = None  # background PID requirements replaced by pass-probability weights (None: the search's default)
    # background processes not run (process -> why; configs/paper_mode.yaml left_out): listed in metadata.json
    left_out: Mapping[str, str] = field(default_factory=dict)
    # per-chunk checkpoints under OUT/.SEARCH.checkpoints (belle-rare run; removed once the outputs are written)
    checkpoint: bool = False
    resume: bool = False  # reuse the checkpoints of an interrupted or failed run with the same fingerprint


def luminosity_for(datasets: dict[str, Dataset], search_config: Any, experiment: str) -> tuple[float, str]:
    """Pseudo-data's luminosity if present (so simulation matches it), else the search's data set."""
    data = [d for d in datasets.values() if d.is_data and d.luminosity_fb]
    if data:
        return float(data[0].luminosity_fb), f"pseudo-data '{data[0].name}'"
    key = getattr(search_config, "luminosity", None)
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return float(key), "the search config (luminosity, /fb)"
    if key is None:
        raise UserError("the search config has no 'luminosity' (a data set of configs/experiments/<experiment>.yaml or a number in /fb)")
    lumi = load_experiment(experiment).luminosity_fb
    if key not in lumi:
        raise UserError(f"configs/searches: luminosity '{key}' not in configs/experiments/{experiment}.yaml")
    return lumi[key], f"configs/experiments/{experiment}.yaml luminosity_fb.{key}"


def account_events(datasets: dict[str, Dataset], processed: dict[str, dict[str, int]], skipped: list[dict], max_chunks: int | None) -> dict[str, Any]:
    """Compare events read per file with the manifests; name every file that fell short."""
    report: dict[str, Any] = {"datasets": {}, "failed": [], "skipped": skipped}
    for name, ds in datasets.items():
        read = processed.get(name, {})
        expected = sum(ds.files.values()) + sum(s["entries"] for s in skipped if s["dataset"] == name)
        got = sum(read.values())
        report["datasets"][name] = {"manifest_events": ds.events, "expected": expected, "read": got}
        if max_chunks is None:
            for path, entries in ds.files.items():
                if read.get(path, 0) != entries:
                    report["failed"].append(
                        {"dataset": name, "file": path, "expected": entries, "read": read.get(path, 0),
                         "reason": "chunk(s) failed while reading; see the console warnings"}
                    )
    return report


def run_search(opts: RunOptions) -> dict[str, Any]:
    """Run a search; returns ``{"histograms": {dataset: {name: Hist}}, "cutflow", "metadata", "processor",
    "search", "columns", "checkpoints"}`` (outputs not yet written).

    An interrupt (KeyboardInterrupt) stops the executor's queued chunks and propagates; with
    ``opts.checkpoint`` the chunks finished so far stay in ``checkpoints`` for ``opts.resume``."""
    search = get_search(opts.search)
    config = search.load_config()
    if opts.experiment not in search.experiments:
        raise UserError(f"--experiment: search '{search.name}' is defined for {', '.join(search.experiments)}, not '{opts.experiment}'")
    datasets = load_datasets(opts.samples, opts.experiment)
    left_out = {name: {"process": ds.process, "events": ds.events, "reason": opts.left_out[ds.process]}
                for name, ds in datasets.items() if ds.kind == "background" and ds.process in opts.left_out}
    datasets = {name: ds for name, ds in datasets.items() if name not in left_out}
    proc = search.processor(opts.experiment, config, model_dir=opts.model_dir, pid_weighting=opts.pid_weighting)
    skipped = validate_inputs(datasets, proc.required_branches(), opts.skip_bad_files)
    files = fileset(datasets)
    if not files:
        raise UserError("no input files left to process")
    checkpointer, resumed = None, 0
    if opts.checkpoint or opts.resume:
        fingerprint = run_fingerprint(opts.search, opts.experiment, config, proc.pid_weighting, opts.model_dir, opts.chunksize)
        directory, resumed = prepare_checkpoints(checkpoint_root(opts.out, search.name), fingerprint, opts.resume)
        checkpointer = ChunkCheckpointer(directory.resolve())  # absolute: workers elsewhere write it (shared file system)
    start = time.perf_counter()
    # coffea's futures executor prints a traceback before it re-raises a chunk's failure: held back
    # here so that a failure is the one-line error below (and shown again if the run succeeds)
    held = io.StringIO()
    with make_executor(opts.executor, opts.workers, opts.scheduler, opts.cluster, status=opts.progress) as executor:
        runner = ChunkRunner(
            executor=executor,
            schema=BelleSchema,
            chunksize=opts.chunksize,
            maxchunks=opts.max_chunks,
            skipbadfiles=opts.skip_bad_files,
            checkpointer=checkpointer,
            metadata_cache=checked_metadata(datasets, files),
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with contextlib.redirect_stderr(held) if opts.executor == "futures" else contextlib.nullcontext():
                    read = proc.read_filter()
                    output = runner(files, proc, treename="tree", uproot_options=CHUNK_UPROOT_OPTIONS, iteritems_options={"filter_name": read} if read else {})
            except Exception as err:  # coffea wraps a chunk's failure with its file and entry range
                raise UserError(_failure_message(err, checkpointer is not None)) from err
            finally:
                release_chunk_file()  # the iterative executor's chunks ran in this process
    sys.stderr.write(held.getvalue())
    elapsed = time.perf_counter() - start
    # categories in a fixed order (the processor's channels first, nominal first), whatever the merge order
    first = {"channel": list(proc.channels), VARIATION_AXIS: [NOMINAL]}
    merged = output.get("histograms", {})
    # datasets in manifest order (a dict merged from chunks lists them in completion order)
    histograms = {ds: {name: canonical_categories(h, first) for name, h in merged[ds].items()}
                  for ds in [*datasets, *sorted(set(merged) - set(datasets))] if ds in merged}
    processed = output.get("processed", {})
    lumi, lumi_source = luminosity_for(datasets, config, opts.experiment)
    scales = {name: ds.scale(lumi, sum(processed.get(name, {}).values())) for name, ds in datasets.items()}
    scale_datasets(histograms, scales)
    cutflow = output.get("cutflow", {})
    cutflow = {ds: cutflow[ds] for ds in [*datasets, *sorted(set(cutflow) - set(datasets))] if ds in cutflow}
    for name, channels in cutflow.items():
        for counts in channels.values():
            counts["weighted"] = {k: v * scales.get(name, 1.0) for k, v in counts["weighted"].items()}
    accounting = account_events(datasets, processed, skipped, opts.max_chunks)
    metadata = {
        "search": opts.search,
        "experiment": opts.experiment,
        "luminosity_fb": lumi,
        "luminosity_source": lumi_source,
        "samples": str(opts.samples),
        "pid_weighting": proc.pid_weighting,  # as applied (the search's default when not chosen)
        "inputs": {name: str(ds.manifest) for name, ds in datasets.items()},
        "datasets": {
            name: {"kind": ds.kind, "process": ds.process, "cross_section_nb": ds.cross_section_nb, "scale": scales[name],
                   "parameters": ds.parameters, **_largest_weight(output, name, scales[name])}
            for name, ds in datasets.items()
        },
        "events": accounting["datasets"],
        "left_out": left_out,  # datasets in --samples not run, each with its reason (not read: not in "events")
        # area of each channel's signal region over the window around it (stats: window_area background)
        "sr_area_fraction": ({c: search.training.sr_fraction(config, c) for c in proc.channels}
                             if search.training is not None else {}),
        "chunk_report": {
            "chunksize": opts.chunksize,
            "max_chunks": opts.max_chunks,
            "failed": accounting["failed"],
            "skipped_files": accounting["skipped"],
            "warnings": sorted({str(w.message) for w in caught})[:50],
        },
        "executor": {"name": opts.executor, "workers": opts.workers, "scheduler": opts.scheduler, "cluster": opts.cluster},
        "seeds": {name: _manifest_seed(ds) for name, ds in datasets.items()},
        "code_version": code_version(),
        "wall_seconds": round(elapsed, 2),
        "resumed_chunks": resumed,  # chunks taken from an earlier run's checkpoints (--resume)
        "cpu_seconds": {name: round(float(v), 2) for name, v in sorted(output.get("cpu_seconds", {}).items())},
    }
    # unbinned columns some searches return for their reports (e.g. tau3mu's signal candidates)
    columns = output.get("columns", {})
    return {"histograms": histograms, "cutflow": cutflow, "metadata": metadata, "processor": proc, "search": search,
            "columns": columns,
            # removed by the caller once the outputs are written (analyses.checkpoints.remove_checkpoints)
            "checkpoints": checkpoint_root(opts.out, search.name) if checkpointer is not None else None}


class ChunkRunner(processor.Runner):
    """coffea's ``Runner`` whose chunks (ROOT, without metrics or preloading) keep the file they read
    open for the next chunk of the same file in the same worker thread (``chunk_file``), and build
    their events without the type names of every branch of the tree.

    coffea's own ``_work_function`` opens the file for every chunk, parses the tree's metadata
    (~20 CPU ms for the ~125 branches of a belle-rare tree) and its factory asks every branch for its
    type name (~10 ms: the interpretation of all ~125 branches, for a ``typenames`` entry of the base
    form that only the EDM4HEP schema reads; ``BelleSchema`` does not). Consecutive chunks of one file
    (files larger than the chunk size) reuse the parsed tree and its branches' interpretations; the
    events are built by coffea's own mapping (``UprootSourceMapping``, ``_extract_base_form`` with the
    processor's ``iteritems_options``) and factory (``NanoEventsFactory._from_mapping``), as its
    ``from_root`` builds them. Anything else (parquet, ``savemetrics``, preloaded branches) goes to
    coffea's ``_work_function`` unchanged. Memory stays flat: one file per worker thread is held,
    opened with ``CHUNK_UPROOT_OPTIONS`` (no array cache: no chunk's arrays are kept with it)."""

    @staticmethod
    def _work_function(format: str, xrootdtimeout: int, schema: Any, use_dataframes: bool, savemetrics: bool, item: Any,
                       processor_instance: Any, uproot_options: dict, iteritems_options: dict, checkpointer: Any,
                       cache_function: Any) -> dict:
        import cloudpickle
        import lz4.frame
        import uuid

        heavy = processor_instance == "heavy"
        work = item[0] if heavy else item
        if format != "root" or use_dataframes or savemetrics or schema is None or work.preload is not None:
            return processor.Runner._work_function(format, xrootdtimeout, schema, use_dataframes, savemetrics, item,
                                                   processor_instance, uproot_options, iteritems_options, checkpointer,
                                                   cache_function)
        if heavy:
            item, processor_instance = item
        if not isinstance(processor_instance, processor.ProcessorABC) and not callable(processor_instance):
            processor_instance = cloudpickle.loads(lz4.frame.decompress(processor_instance))
        metadata = {"dataset": item.dataset, "filename": item.filename, "treename": item.treename,
                    "entrystart": item.entrystart, "entrystop": item.entrystop,
                    "fileuuid": str(uuid.UUID(bytes=item.fileuuid)) if len(item.fileuuid) > 0 else ""}
        if item.usermeta is not None:
            metadata.update(item.usermeta)
        if checkpointer is not None:
            out = checkpointer.load(metadata, processor_instance)
            if out is not None:
                return out
        # the same messages as coffea's (``_failure_message`` reads the file name from them)
        options = dict(uproot_options)
        options.setdefault("timeout", xrootdtimeout)
        try:
            file = chunk_file(item.filename, options)
        except Exception as e:
            raise Exception(f"Failed to open file: {item!r}. The error was: {e!r}.") from e
        try:
            events = chunk_events(file, item, schema, metadata, options, iteritems_options, cache_function())
        except Exception as e:
            raise Exception(f"Failed creating nanoevents: {item!r}. The error was: {e!r}.") from e
        try:
            out = processor_instance.process(events) if isinstance(processor_instance, processor.ProcessorABC) else processor_instance(events)
        except Exception as e:
            raise Exception(f"Failed processing file: {item!r}. The error was: {e!r}.") from e
        if out is None:
            raise ValueError("Output of process() should not be None. Make sure your processor's process() function returns an accumulator.")
        out = {"out": out, "processed": {item}}
        if checkpointer is not None:
            checkpointer.save(out, metadata, processor_instance)
        return out


#: the file the last chunk of this worker thread read (``chunk_file``): {"key": (path, options), "file": ...}
_HELD = threading.local()


def chunk_file(path: str, options: dict) -> Any:
    """The file ``path`` opened with ``options`` (an uproot ``ReadOnlyDirectory``): the one the previous
    chunk of this thread read when it is the same, else newly opened (the previous one closed).
    Opened with a per-file object cache, so that its tree's metadata is parsed once per file."""
    key = (path, repr(sorted(options.items())))
    if getattr(_HELD, "key", None) == key and not _HELD.file.file.closed:
        return _HELD.file
    release_chunk_file()
    _HELD.file = uproot.open({path: None}, **{**options, "object_cache": {}})
    _HELD.key = key
    return _HELD.file


def release_chunk_file() -> None:
    """Close the file this thread's last chunk read (if any)."""
    file = getattr(_HELD, "file", None)
    _HELD.file, _HELD.key = None, None
    if file is not None:
        file.close()


def chunk_events(file: Any, item: Any, schema: Any, metadata: dict, uproot_options: dict, iteritems_options: dict,
                 buffer_cache: Any) -> Any:
    """The chunk's NanoEvents (virtual), as coffea's ``NanoEventsFactory.from_root`` builds them from
    an open file, without its ``typenames`` of every branch (read by no schema of ours) and with the
    base form of the process's earlier chunks of the same tree layout (``base_form_of``)."""
    from coffea.nanoevents import NanoEventsFactory
    from coffea.nanoevents.mapping.uproot import TrivialUprootOpener, UprootSourceMapping

    tree = file[item.treename]
    start, stop = max(item.entrystart, 0), min(item.entrystop, tree.num_entries)
    partition_key = (str(tree.file.uuid), tree.object_path, f"{start}-{stop}")
    mapping = UprootSourceMapping(TrivialUprootOpener({partition_key[0]: tree.file.file_path}, uproot_options), start, stop,
                                  cache={}, file_handle=file, use_ak_forth=True, virtual=True, buffer_cache=buffer_cache)
    mapping.preload_column_source(partition_key[0], partition_key[1], tree)
    return NanoEventsFactory._from_mapping(mapping, partition_key, base_form_of(mapping, tree, iteritems_options), schema,
                                           metadata, mode="virtual").events()


#: the base forms this process built, by tree layout (``tree_layout``), as JSON: a run's files share one layout
_BASE_FORMS: dict[tuple, str] = {}


def base_form_of(mapping: Any, tree: Any, iteritems_options: dict) -> dict:
    """coffea's base form of the tree's (read) branches (``UprootSourceMapping._extract_base_form``), built
    once per process and tree layout: it interprets every branch it lists (~85 us each, ~10 ms for a
    search without a read filter) although a chunk reads only some (the others are never interpreted
    now), and normalises each form through JSON. A tree with another layout or any branch beyond plain
    leaves (``tree_layout`` None) gets its own base form."""
    import json

    layout = tree_layout(tree, iteritems_options)
    if layout is None:
        return mapping._extract_base_form(tree, iteritems_options=iteritems_options)
    cached = _BASE_FORMS.get(layout)
    if cached is None:
        if len(_BASE_FORMS) >= 16:  # a handful of layouts per process; bounded anyway
            _BASE_FORMS.clear()
        cached = _BASE_FORMS[layout] = json.dumps(mapping._extract_base_form(tree, iteritems_options=iteritems_options))
    return json.loads(cached)  # a fresh copy: the schema edits the form it is given


def tree_layout(tree: Any, iteritems_options: dict) -> tuple | None:
    """What the base form of ``tree``'s branches listed by ``iteritems_options`` depends on, or None
    when a branch is not a plain ``TBranch`` of leaves (objects, sub-branches: not cached). For a plain
    TBranch uproot's interpretation (``identify.interpretation_of`` -> ``_from_leaves``) follows from its
    leaves' class (the type), title (dimensions, the counter of a jagged branch), length, length type,
    signedness and counter; the form adds the branch title (doc) and the tree title."""
    layout: list[Any] = [repr(sorted(iteritems_options.items())), tree.title]
    for key, branch in tree.iteritems(**iteritems_options):
        if branch.classname != "TBranch" or len(branch.branches) != 0:
            return None
        leaves = []
        for leaf in branch.member("fLeaves"):
            count = leaf.member("fLeafCount")
            leaves.append((leaf.classname, leaf.member("fTitle"), leaf.member("fLen"), leaf.member("fLenType"),
                           leaf.member("fIsUnsigned"), None if count is None else count.member("fName")))
        layout.append((key, branch.title, tuple(leaves)))
    return tuple(layout)


def checked_metadata(datasets: dict[str, Dataset], files: dict[str, dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """coffea's per-file metadata (entries, UUID, the fileset's metadata), as ``validate_inputs``
    read it: given to the ``Runner`` as its metadata cache, coffea does not open every file a second
    time before the chunks (its "Preprocessing" step) -- the same dict its ``metadata_fetcher_root``
    would have built."""
    from coffea.processor.executor import FileMeta

    return {FileMeta(name, path, tree): {**(files[name].get("metadata") or {}), "numentries": datasets[name].files[path],
                                         "uuid": datasets[name].uuids[path]}
            for name in files for path, tree in files[name]["files"].items() if path in datasets[name].uuids}


def _failure_message(err: Exception, checkpointed: bool) -> str:
    """One line for a failed run: a file that vanished is named as such, else coffea's first line."""
    text = str(err) or type(err).__name__
    resume = "; the finished chunks are checkpointed: rerun with --resume" if checkpointed else ""
    missing = re.search(r"filename='([^']+)'", text)
    if missing and ("FileNotFoundError" in text or "No such file" in text):
        return f"{missing.group(1)}: the file disappeared during the run (nothing written{resume})"
    return f"processing failed (nothing written{resume}): {text.splitlines()[0][:400]}"


def _largest_weight(output: dict, dataset: str, scale: float) -> dict[str, float]:
    """``max_event_weight``: the largest weight one event of the dataset carried into candidate
    building (luminosity scale x generator weight x PID weight; processors/base.py
    ``largest_event_weight``), the scale of its MC statistical bound. Absent when no event of a
    PID-weighted dataset formed a candidate (the bound then falls back to the scale)."""
    largest = output.get("largest_event_weight", {}).get(dataset)
    return {"max_event_weight": scale * largest.value} if largest is not None and largest.value > 0 else {}


def _manifest_seed(ds: Dataset) -> Any:
    import json

    return json.loads(ds.manifest.read_text()).get("seed")

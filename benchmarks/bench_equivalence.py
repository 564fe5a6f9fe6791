"""A search's outputs with two versions of the code on the same chunks: every histogram bin (every
channel, region and variation, values and variances), cutflow and largest event weight compared, and
every selection's cuts (running ANDs in cutflow order, as the cutflow and the regions read them) and
per-event values bit for bit (issue 15's profiling rounds: a faster processor must select the same
events with the same values; exit status 1 if anything differs).

Run: ``.venv/bin/python benchmarks/bench_equivalence.py SEARCH SAMPLES --experiment EXP --before DIR
[--after DIR] [--events N]``, ``DIR`` a checkout of the other version (``git archive COMMIT | tar -x -C DIR``);
used for bkscalar (``ScalarEvents`` round) and kstartautau (flat-numpy round).
Each version runs ``process`` on the first ``N`` events of every file of ``SAMPLES`` (all
calibrations and weight variations) in its own subprocess, as ``bench_code_versions.py`` does, and
pickles the outputs; the comparison prints the largest relative difference per histogram and the
number of bins (values or variances) that differ at all; per calibration, the number of event cuts
(any channel) that differ and the largest relative difference of the per-event values.
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]

# the child: re-point the editable install's package map at TREE, run process() on every file's
# first N events, pickle {file: output}
CHILD = '''
import pickle, sys
from pathlib import Path
import numpy as np
tree, samples, events, out, experiment, search_name = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
import __editable___belle_rare_0_1_0_finder as finder
for k, v in finder.MAPPING.items():
    finder.MAPPING[k] = v.replace(HERE, tree)
for k, v in finder.NAMESPACES.items():
    finder.NAMESPACES[k] = [p.replace(HERE, tree) for p in v]
from coffea.nanoevents import NanoEventsFactory
import belle_rare.processors.base as base
assert base.__file__.startswith(tree), base.__file__
from belle_rare.analyses.datasets import load_datasets
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema
search = get_search(search_name)
proc = search.processor(experiment, search.load_config())
proc.setup()
outputs = {}
for name, ds in load_datasets(samples, experiment).items():
    for path in ds.files:
        metadata = {"dataset": name, "filename": str(path), "parameters": dict(ds.parameters or {}), "is_data": False}
        ev = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, entry_stop=events,
                                         metadata=metadata, mode="eager").events()
        result = proc.process(ev)
        result.pop("cpu_seconds")
        # every selection's cuts and per-event values, per calibration and channel
        result["selections"] = {
            # the cuts as the cutflow and the regions read them: running ANDs in cutflow order
            (str(calibration), channel): ({n: selection.cuts.all(*list(selection.cuts.names)[:i + 1])
                                           for i, n in enumerate(selection.cuts.names)},
                                          {k: v for k, v in selection.values.items() if isinstance(v, np.ndarray)})
            for calibration, channel, selection, _ in proc._passes(ev, False)}
        outputs[str(path)] = result
with open(out, "wb") as f:
    pickle.dump(outputs, f)
'''


def run(tree: Path, samples: Path, events: int, out: Path, experiment: str, search: str) -> dict:
    code = CHILD.replace("HERE", repr(str(HERE)))
    subprocess.run([sys.executable, "-c", code, str(tree.resolve()), str(samples), str(events), str(out), experiment, search],
                   check=True)
    with open(out, "rb") as f:
        return pickle.load(f)


#: per search, values computed only for the events a cut reads them on (NaN elsewhere), with that cut and the
#: running AND before it: kstartautau's event shape, since its round, only for events that reach "event shape"
#: (the step after "topology"); compared there, and not at all for a channel without that cut
PARTIAL_VALUES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "kstartautau": (("thrust", "cos_thrust", "r2"), "event shape", "topology"),
}


def compared(before: tuple, after: tuple, name: str, search: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(before, after, name) of one per-event value of a (cuts, values) selection, on the events where it is defined."""
    b, a = before[1][name], after[1][name]
    partial, cut, reached = PARTIAL_VALUES.get(search, ((), "", ""))
    if name in partial:
        read = before[0][reached] if cut in before[0] else np.zeros(len(b), bool)
        b, a = b[read], a[read]
    return b, a, name


def compare(before: dict, after: dict, search: str) -> int:
    """Print per histogram the largest relative bin difference; return the number of differing bins."""
    differing = 0
    for path in before:
        (dataset, hb), = before[path]["histograms"].items()
        ha = after[path]["histograms"][dataset]
        for name in hb:
            vb, va = hb[name].values(flow=True), ha[name].values(flow=True)
            rel = np.abs(va - vb) / np.maximum(np.abs(vb), 1e-300)
            bad = int(np.sum(va != vb)) + int(np.sum(hb[name].variances(flow=True) != ha[name].variances(flow=True)))
            differing += bad
            print(f"{Path(path).name:32s} {name:10s} entries {np.count_nonzero(vb):6d}  max rel diff {np.max(rel, initial=0):.1e}  bins not identical: {bad}")
        sb, sa = before[path]["selections"], after[path]["selections"]
        assert sb.keys() == sa.keys()
        calibrations = dict.fromkeys(key[0] for key in sb)
        for calibration in calibrations:
            keys = [key for key in sb if key[0] == calibration]
            cuts = sum(not np.array_equal(sb[k][0][n], sa[k][0][n]) for k in keys for n in sb[k][0])
            pairs = [compared(sb[k], sa[k], n, search) for k in keys for n in sb[k][1]]
            identical = all(np.array_equal(b, a, equal_nan=True) and b.dtype == a.dtype for b, a, _ in pairs)
            largest, worst = max((float(np.nanmax(np.abs(a.astype(float) - b.astype(float)) / np.maximum(np.abs(b.astype(float)), 1e-300),
                                                  initial=0.0)), n) for b, a, n in pairs)
            label = calibration.split("(")[1].split(", momentum_scale")[0]
            print(f"{Path(path).name:32s} {label:45s} cuts differing: {cuts}; values bit-identical: {identical}, "
                  f"largest relative difference {largest:.1e} ({worst})")
            differing += cuts + (0 if identical else 1)
        same_cutflow = before[path]["cutflow"] == after[path]["cutflow"]
        print(f"{Path(path).name:32s} cutflow identical: {same_cutflow}; largest event weight identical: "
              f"{before[path]['largest_event_weight'][dataset].value == after[path]['largest_event_weight'][dataset].value}")
        same_keys = all(list(sb[k][1]) == list(sa[k][1]) for k in sb)
        print(f"{Path(path).name:32s} value names in the same order: {same_keys}")
        differing += (0 if same_cutflow else 1) + (0 if same_keys else 1)
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search", help="the search whose processor runs (bkscalar, kstartautau, ...)")
    parser.add_argument("samples", type=Path)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=HERE)
    parser.add_argument("--experiment", default="belle2", choices=("belle", "belle2"))
    parser.add_argument("--events", type=int, default=10_000, help="events per file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        before = run(args.before, args.samples, args.events, Path(tmp) / "before.pkl", args.experiment, args.search)
        after = run(args.after, args.samples, args.events, Path(tmp) / "after.pkl", args.experiment, args.search)
    differing = compare(before, after, args.search)
    print(f"bins, cuts, values or cutflows that differ: {differing}")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()

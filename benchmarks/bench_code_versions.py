"""Before / after: events/s/core of one search with two versions of the code, on the same samples.

Run: ``.venv/bin/python benchmarks/bench_code_versions.py SEARCH SAMPLES --before DIR [--after DIR]
[--chunksize C] [--repeats R]``, with ``DIR`` a checkout of the other version (``git archive COMMIT |
tar -x -C DIR``; default ``--after``: this checkout). Each version runs in its own subprocess of this
interpreter, one after the other (the machines are shared: CPU seconds, as ``suite.timed_run``),
with this virtual environment's editable install pointed at that version's packages. With
``--repeats R`` the two versions alternate R times and the median (and the range) of each is
printed: on a loaded machine one run of a few CPU seconds varies by +-10 %.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
MARK = "VERSION "

# the child: re-point the editable install's package map at TREE, then suite.timed_run (warm-up,
# nominal pass, all variations)
CHILD = '''
import contextlib, sys, tempfile
from pathlib import Path
tree, search, samples, chunk = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
import __editable___belle_rare_0_1_0_finder as finder
for k, v in finder.MAPPING.items():
    finder.MAPPING[k] = v.replace(HERE, tree)
for k, v in finder.NAMESPACES.items():
    finder.NAMESPACES[k] = [p.replace(HERE, tree) for p in v]
sys.path.insert(0, tree + "/benchmarks")
import suite
import belle_rare.processors.base as base
assert base.__file__.startswith(tree), base.__file__
from belle_rare.processors.registry import get_search
experiment = get_search(search).experiments[0]
with tempfile.TemporaryDirectory() as tmp:
    suite.timed_run(search, experiment, samples, Path(tmp) / "warm", chunk, max_chunks=1)
    for mode in ("nominal", "all"):
        with suite.nominal_pass() if mode == "nominal" else contextlib.nullcontext():
            cpu, _, n = suite.timed_run(search, experiment, samples, Path(tmp) / mode, chunk)
        print(f"MARK{mode} {n} {cpu}", flush=True)
'''


def measure(tree: Path, search: str, samples: Path, chunksize: int) -> dict[str, tuple[int, float]]:
    """{mode: (events, CPU seconds)} of the nominal pass and of all variations with the code in ``tree``."""
    code = CHILD.replace("HERE", repr(str(HERE))).replace("MARK", MARK)
    out = subprocess.run([sys.executable, "-c", code, str(tree.resolve()), search, str(samples), str(chunksize)],
                         capture_output=True, text=True)
    if out.returncode:
        tail = out.stderr.strip().splitlines()[-1:] or [f"exit status {out.returncode}"]
        raise SystemExit(f"bench_code_versions: {search} with the code in {tree} failed: {tail[0]}")
    rows = [line[len(MARK):].split() for line in out.stdout.splitlines() if line.startswith(MARK)]
    return {mode: (int(n), float(cpu)) for mode, n, cpu in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search")
    parser.add_argument("samples", type=Path)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=HERE)
    parser.add_argument("--chunksize", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=1, help="alternate the two versions this many times (median)")
    args = parser.parse_args()
    runs: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for _ in range(args.repeats):
        for label, tree in (("before", args.before), ("after", args.after)):
            for mode, (n, cpu) in measure(tree, args.search, args.samples, args.chunksize).items():
                runs.setdefault((label, mode), []).append((n, cpu))
                print(f"{label:6s} {args.search} {mode:8s} {n} events {cpu:7.2f} CPU s {n / cpu:9,.0f} events/s/core", flush=True)
    if args.repeats > 1:
        for (label, mode), done in runs.items():
            n, cpus = done[0][0], sorted(cpu for _, cpu in done)
            cpu = statistics.median(cpus)
            print(f"median {label:6s} {args.search} {mode:8s} {n} events {cpu:7.2f} CPU s {n / cpu:9,.0f} events/s/core "
                  f"(range {n / cpus[-1]:,.0f}-{n / cpus[0]:,.0f}, {args.repeats} runs)", flush=True)


if __name__ == "__main__":
    main()

"""bkscalar's nominal pass with the fit's start points from the numba midpoint kernel against the stacked numpy
expression it replaced (stop 32, issue 15), alternating three times in one process (CPU seconds; the two give the
same bits: tests/test_vertex_fit_exact.py).

    .venv/bin/python benchmarks/bench_midpoint_ab.py SAMPLES [--chunksize 100000]

SAMPLES: a Belle II sample directory (e.g. ``belle-rare generate --experiment belle2 --process charged --events
100000 --events-per-file 100000`` and ``--process sig_bkscalar --mass 1.5 --ctau 10 --events 20000``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

from belle_rare.processors import bkscalar
from belle_rare.processors.vertex_fit import measured_lines

sys.path.insert(0, str(Path(__file__).parent))
from suite import nominal_pass, timed_run  # noqa: E402


def stacked_closest_approach_pairs(tracks, first, second, lines=None):  # noqa: ANN001, ANN201
    """The code before: fancy-indexed copies of both lines, then the stacked numpy expression."""
    origin, u = measured_lines(tracks) if lines is None else lines
    o1, u1, o2, u2 = origin[first], u[first], origin[second], u[second]
    w0 = o1 - o2
    b, d, e = np.sum(u1 * u2, axis=1), np.sum(u1 * w0, axis=1), np.sum(u2 * w0, axis=1)
    denom = np.where(1.0 - b * b < 1e-12, 1.0, 1.0 - b * b)
    s = (b * e - d) / denom
    t = (e - b * d) / denom
    return 0.5 * (o1 + s[:, None] * u1 + o2 + t[:, None] * u2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", type=Path)
    ap.add_argument("--chunksize", type=int, default=100_000)
    args = ap.parse_args()
    today = bkscalar.closest_approach_pairs
    cpu = {"kernel": [], "stacked": []}
    with nominal_pass(), tempfile.TemporaryDirectory() as tmp:
        timed_run("bkscalar", "belle2", args.samples, Path(tmp) / "warm", args.chunksize)
        for k in range(3):
            for name, function in (("kernel", today), ("stacked", stacked_closest_approach_pairs)):
                bkscalar.closest_approach_pairs = function
                seconds, _, events = timed_run("bkscalar", "belle2", args.samples, Path(tmp) / f"{name}{k}", args.chunksize)
                cpu[name].append(seconds)
        bkscalar.closest_approach_pairs = today
    for name, values in cpu.items():
        print(f"{name:8s} CPU s {' '.join(f'{v:.2f}' for v in values)}  median {statistics.median(values):.2f}  ({events} events)")
    print(f"kernel / stacked: {statistics.median(cpu['kernel']) / statistics.median(cpu['stacked']):.3f}")


if __name__ == "__main__":
    main()

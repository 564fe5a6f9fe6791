"""The thrust kernel's seeds (processors/event_shape.py): what the exact events' single seed saves, A/B in one process.

Events with at most ``exact_max`` particles (every tau-pair event) get the exact O(n^3) plane enumeration and, since
stop 27, only the hardest momentum as iterative seed (for the all-collinear events the enumeration cannot see); before,
they also ran the 2^(5-1) + 8 seeds of the large events. "before" is emulated exactly: the seeds alone on every event
(``exact_max = 0``), then today's kernel -- the old cost plus one seed. Prints the kernel's CPU on random events of
tau-pair multiplicities and, with ``--search SEARCH EXPERIMENT SAMPLES``, the nominal pass of a search on suite
samples (``benchmarks/suite.py --work DIR`` writes them to ``DIR/selected/SEARCH_EXPERIMENT``), alternating the two
three times. The emulation's outputs are today's kernel's (its last call); tests/test_kinematics.py checks those against
a brute-force thrust.

    .venv/bin/python benchmarks/bench_thrust.py --search tau3mu belle2 /tmp/bench100k/selected/tau3mu_belle2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import belle_rare.processors.event_shape as es
from belle_rare.processors.jagged_kernels import offsets_of

TODAY = es._thrust_kernel


def before(offsets, px, py, pz, n_seed, n_single, exact_max, max_iter, axis_out, thrust_out):
    """The kernel as before stop 27: every seed on every event, then the enumeration (and one more seed)."""
    TODAY(offsets, px, py, pz, n_seed, n_single, 0, max_iter, axis_out, thrust_out)
    TODAY(offsets, px, py, pz, n_seed, n_single, exact_max, max_iter, axis_out, thrust_out)


def kernel_cpu(events: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    offsets = offsets_of(rng.integers(4, 14, events).astype(np.int64))   # tau-pair events: 4-13 tracks and photons
    p = rng.normal(size=(3, offsets[-1]))
    for name, kernel in (("today", TODAY), ("before", before)):
        es._thrust_kernel = kernel
        es.thrust_axis_flat(offsets[:101], *(c[:offsets[100]] for c in p))   # compile / warm up
        start = time.process_time()
        es.thrust_axis_flat(offsets, *p)
        print(f"  kernel, {events} events of 4-13 particles, {name}: {time.process_time() - start:.3f} CPU s")
    es._thrust_kernel = TODAY


def search_cpu(search: str, experiment: str, samples: Path, chunksize: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import suite

    out = Path(tempfile.mkdtemp())
    cpu: dict[str, list[float]] = {"today": [], "before": []}
    with suite.nominal_pass():
        suite.timed_run(search, experiment, samples, out / "warm", chunksize, max_chunks=1)
        for i in range(3):
            for name, kernel in (("today", TODAY), ("before", before)):
                es._thrust_kernel = kernel
                cpu[name].append(suite.timed_run(search, experiment, samples, out / f"{name}{i}", chunksize)[0])
    es._thrust_kernel = TODAY
    ratio = statistics.median(cpu["today"]) / statistics.median(cpu["before"])
    print(f"  {search} nominal pass CPU s, today {[round(c, 2) for c in cpu['today']]}, before "
          f"{[round(c, 2) for c in cpu['before']]}: today / before {ratio:.3f} (medians)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="random events for the kernel timing")
    ap.add_argument("--search", nargs=3, action="append", default=[], metavar=("SEARCH", "EXPERIMENT", "SAMPLES"))
    ap.add_argument("--chunksize", type=int, default=100_000)
    args = ap.parse_args()
    kernel_cpu(args.events)
    for search, experiment, samples in args.search:
        search_cpu(search, experiment, Path(samples), args.chunksize)


if __name__ == "__main__":
    main()

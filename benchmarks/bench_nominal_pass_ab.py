"""Stop 27's two nominal-pass changes, each A/B against its emulated "before" in one process (CPU seconds).

- ``thrust``: events with at most ``exact_max`` particles (every tau-pair event) get the exact O(n^3) plane
  enumeration and now only the hardest momentum as iterative seed (for the all-collinear events the enumeration cannot
  see); before, they also ran the 2^(5-1) + 8 seeds of the large events. "before" = the seeds alone on every event
  (``exact_max = 0``), then today's kernel: the old cost plus one seed; its outputs are today's (tests/test_kinematics.py
  compares them with a brute-force thrust). Also timed on random events of tau-pair multiplicities.
- ``lepton-id``: the lepton-ID / fake-rate corrections are now evaluated on candidate tracks only (weight 1 where an
  event has none); "before" = the same call with the missing candidates' NaN momenta and angles replaced by 1 GeV and
  0, as the searches did (the cost of evaluating them; its weights are the old ones).

``--search SEARCH EXPERIMENT SAMPLES``: the nominal pass of a search on suite samples (``benchmarks/suite.py --work DIR``
writes them to ``DIR/selected/SEARCH_EXPERIMENT``), today and before alternating three times, per change.

    .venv/bin/python benchmarks/bench_nominal_pass_ab.py --search tau3mu belle2 /tmp/bench100k/selected/tau3mu_belle2
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
from belle_rare.processors import base
from belle_rare.processors.jagged_kernels import offsets_of

TODAY = es._thrust_kernel
LEPTON_ID_TODAY = base.SearchProcessor.add_lepton_id_weights


def thrust_before(offsets, px, py, pz, n_seed, n_single, exact_max, max_iter, axis_out, thrust_out):
    """The kernel as before stop 27: every seed on every event, then the enumeration (and one more seed)."""
    TODAY(offsets, px, py, pz, n_seed, n_single, 0, max_iter, axis_out, thrust_out)
    TODAY(offsets, px, py, pz, n_seed, n_single, exact_max, max_iter, axis_out, thrust_out)


def lepton_id_before(self, weights, species, p, cos_theta, is_lepton, tracks_per_event=1):
    """The corrections read at placeholder kinematics for missing candidates, as the searches did before stop 27."""
    p, cos_theta = np.nan_to_num(np.asarray(p, float), nan=1.0), np.nan_to_num(np.asarray(cos_theta, float), nan=0.0)
    return LEPTON_ID_TODAY(self, weights, species, p, cos_theta, is_lepton, tracks_per_event)


def use(change: str, when: str) -> None:
    """Install today's or the emulated earlier code of one change."""
    if change == "thrust":
        es._thrust_kernel = TODAY if when == "today" else thrust_before
    else:
        base.SearchProcessor.add_lepton_id_weights = LEPTON_ID_TODAY if when == "today" else lepton_id_before


def kernel_cpu(events: int, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    offsets = offsets_of(rng.integers(4, 14, events).astype(np.int64))   # tau-pair events: 4-13 tracks and photons
    p = rng.normal(size=(3, offsets[-1]))
    for name, kernel in (("today", TODAY), ("before", thrust_before)):
        es._thrust_kernel = kernel
        es.thrust_axis_flat(offsets[:101], *(c[:offsets[100]] for c in p))   # compile / warm up
        start = time.process_time()
        es.thrust_axis_flat(offsets, *p)
        print(f"  kernel, {events} events of 4-13 particles, {name}: {time.process_time() - start:.3f} CPU s")
    es._thrust_kernel = TODAY


def search_cpu(search: str, experiment: str, samples: Path, chunksize: int, change: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import suite

    out = Path(tempfile.mkdtemp())
    cpu: dict[str, list[float]] = {"today": [], "before": []}
    with suite.nominal_pass():
        suite.timed_run(search, experiment, samples, out / "warm", chunksize, max_chunks=1)
        for i in range(3):
            for when in ("today", "before"):
                use(change, when)
                cpu[when].append(suite.timed_run(search, experiment, samples, out / f"{change}_{when}{i}", chunksize)[0])
    use(change, "today")
    ratio = statistics.median(cpu["today"]) / statistics.median(cpu["before"])
    print(f"  {search}, {change}: nominal pass CPU s, today {[round(c, 2) for c in cpu['today']]}, before "
          f"{[round(c, 2) for c in cpu['before']]}: today / before {ratio:.3f} (medians)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=100_000, help="random events for the kernel timing")
    ap.add_argument("--search", nargs=3, action="append", default=[], metavar=("SEARCH", "EXPERIMENT", "SAMPLES"))
    ap.add_argument("--chunksize", type=int, default=100_000)
    ap.add_argument("--change", choices=("thrust", "lepton-id"), nargs="*", default=["thrust", "lepton-id"])
    args = ap.parse_args()
    if "thrust" in args.change:
        kernel_cpu(args.events)
    for search, experiment, samples in args.search:
        for change in args.change:
            search_cpu(search, experiment, Path(samples), args.chunksize, change)


if __name__ == "__main__":
    main()

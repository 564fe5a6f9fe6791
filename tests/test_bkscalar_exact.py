"""The bks-perf2 round's sort-free / per-pair rewrites of bkscalar's candidate bookkeeping (issue 15) give
what the code they replaced gave: the best candidate of a stable (event, score) sort, ties and NaN
included, and each pair cut's event flag from the per-pair stage instead of one bincount per cut over
the candidates. (The whole processor: ``benchmarks/bench_equivalence.py bkscalar``.)"""

from __future__ import annotations

import numpy as np

from belle_rare.processors.bkscalar import Pairs, _cartesian, _first_per_event


def _first_per_event_by_sort(event: np.ndarray, score: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """The replaced implementation, verbatim: lexsort by (event, score), first per event."""
    best = np.full(n, -1)
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return best
    order = idx[np.lexsort((score[idx], event[idx]))]
    ev, first = np.unique(event[order], return_index=True)
    best[ev] = order[first]
    return best


def test_best_candidate_without_a_sort_is_the_stable_sorts_choice():
    rng = np.random.default_rng(3)
    for trial in range(2000):
        n, m = int(rng.integers(1, 12)), int(rng.integers(0, 40))
        event = np.sort(rng.integers(0, n, m))
        # half the trials with ties, -0 and NaN scores (an event can have only NaN scores)
        score = rng.choice([0.0, -0.0, 0.5, 1.0, np.nan], m) if trial % 2 else rng.random(m)
        valid = rng.random(m) < 0.7
        assert np.array_equal(_first_per_event(event, score, valid, n), _first_per_event_by_sort(event, score, valid, n))


def test_pair_stage_flags_equal_one_bincount_per_cut_over_the_candidates():
    rng = np.random.default_rng(8)
    n, n_pairs, n_candidates = 200, 300, 400
    event = np.sort(rng.integers(0, n, n_pairs))
    none = np.zeros(0, dtype=int)
    pairs = Pairs(event, np.zeros(n_pairs, dtype=int), np.zeros(n_pairs, dtype=int), None, np.ones(n_pairs, dtype=bool),
                  (none, none, none), lambda index: np.ones(len(index), dtype=bool))
    cp = np.sort(rng.integers(0, n_pairs, n_candidates))  # candidates' pairs (some pairs in none)
    running, cuts = np.ones(n_pairs, dtype=bool), []
    for _ in range(7):
        running = running & (rng.random(n_pairs) < 0.8)
        cuts.append(running)
    # the replaced formulation, on the candidates' events
    cand_event = event[cp]
    expected = [np.bincount(cand_event, minlength=n) > 0] + [np.bincount(cand_event[c[cp]], minlength=n) > 0 for c in cuts]
    stage = np.sum(cuts, axis=0, dtype=np.int8)
    in_candidate = np.bincount(cp, minlength=n_pairs) > 0
    best = pairs.per_event_max(np.where(in_candidate, stage, np.int8(-1)), n)
    got = [best >= k for k in range(8)]
    for e, g in zip(expected, got):
        assert np.array_equal(e, g)
    assert 0 < expected[-1].sum() < expected[0].sum() < n  # the cuts do drop events


def _cartesian_by_repeat(event_a: np.ndarray, event_b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The replaced implementation (stop 33), verbatim: index arithmetic on np.repeat."""
    count_a, count_b = np.bincount(event_a, minlength=n), np.bincount(event_b, minlength=n)
    start_a, start_b = np.cumsum(count_a) - count_a, np.cumsum(count_b) - count_b
    per_event = count_a * count_b
    event = np.repeat(np.arange(n), per_event)
    k = np.arange(int(per_event.sum())) - np.repeat(np.cumsum(per_event) - per_event, per_event)
    nb = np.maximum(count_b[event], 1)
    return start_a[event] + k // nb, start_b[event] + k % nb


def test_cartesian_by_the_jagged_kernel_gives_the_replaced_combinations_in_their_order():
    rng = np.random.default_rng(5)
    for trial in range(300):
        n = int(rng.integers(1, 30))
        a, b = (np.sort(rng.integers(0, n, int(rng.integers(0, 60)))) for _ in range(2))
        for got, want in zip(_cartesian(a, b, n), _cartesian_by_repeat(a, b, n)):
            assert np.array_equal(got, want), trial

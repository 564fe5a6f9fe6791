"""Limits for many hypotheses (masses x lifetimes x channels): vectorised where possible, parallel always.

Every hypothesis arrives as a pyhf workspace spec. One-bin models (a counting channel) are
summarised to (n, b +- db, s +- ds) and solved together by :mod:`stats.fast_scan`, in chunks,
one vectorised call per chunk; anything else (several bins or channels) gets a full pyhf
limit. Chunks and pyhf limits are spread over local processes (``concurrent.futures``) or a
dask cluster (``dask.distributed``; optional).

Fast-path rule, the same as the pyhf calculator rule: exact Poisson CLs (the infinite-toy
counting limit) when b < 10, else the closed-form asymptotic qtilde CLs. The fast path treats the background uncertainty as one Poisson-
constrained (asymptotic) or Gaussian (Poisson) term, the quadrature sum of the model's
background modifiers; the asymptotic fast path neglects signal-yield uncertainties. pyhf
stays the reference: ``method="pyhf"`` runs the full model for every hypothesis.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from belle_rare.core.parallel import Executor, parallel_map
from belle_rare.stats import fast_scan
from belle_rare.stats.counting import OneBin, one_bin_summary
from belle_rare.stats.limits import TOY_BACKGROUND_THRESHOLD, model_and_data, upper_limit, workspace_from_spec

Method = Literal["auto", "fast", "pyhf"]
SCAN_RULE = f"one-bin models: exact Poisson CLs if b < {TOY_BACKGROUND_THRESHOLD:g} else closed-form asymptotic; others: pyhf"


@dataclass
class ScanTask:
    key: dict  # carried to the result (signal, limit, hypothesis, ...)
    spec: dict
    measurement: str


@dataclass
class ScanResult:
    key: dict
    observed: float  # POI units
    expected: list[float]
    method: str
    calculator: str  # "asymptotics" or "toybased" (exact Poisson = infinitely many toys)
    signal_per_poi: float | None = None
    notes: list[str] = field(default_factory=list)


def fast_method(item: OneBin, calculator: str = "auto") -> str:
    """``poisson`` or ``asymptotic`` for one summarised hypothesis (see the module doc)."""
    if calculator == "auto":
        return "poisson" if item.b < TOY_BACKGROUND_THRESHOLD else "asymptotic"
    return "poisson" if calculator == "toybased" else "asymptotic"


def fast_limits(items: list[OneBin], cl: float, calculator: str = "auto") -> list[tuple[float, list[float], str, str]]:
    """(observed, expected -2..+2 sigma, method, calculator) POI limits of one-bin hypotheses, vectorised."""
    out: list = [None] * len(items)
    methods = [fast_method(it, calculator) for it in items]
    for method in ("poisson", "asymptotic"):
        idx = [i for i, m in enumerate(methods) if m == method]
        if not idx:
            continue
        n = np.array([items[i].n for i in idx])
        b = np.array([items[i].b for i in idx])
        db = np.array([items[i].b_unc for i in idx])
        s = np.array([items[i].s for i in idx])
        if method == "poisson":
            rel_b = np.divide(db, b, out=np.zeros_like(db), where=b > 0)
            rel_s = np.array([items[i].s_rel_unc for i in idx])
            res = fast_scan.poisson_limits(n, b, rel_b, rel_s, cl=cl).scaled(s)
        else:
            ok = (db > 0) & (b > 0)
            res_list = []
            # the Poisson-constrained background needs db > 0; exact-background points go separately
            for mask, unc in ((ok, True), (~ok, False)):
                if mask.any():
                    r = fast_scan.asymptotic_limits(n[mask], b[mask], db[mask] if unc else None, cl=cl).scaled(s[mask])
                    res_list.append((mask, r))
            obs = np.empty(len(idx))
            exp = np.empty((5, len(idx)))
            for mask, r in res_list:
                obs[mask], exp[:, mask] = r.observed, r.expected
            res = fast_scan.FastLimits(obs, exp, "asymptotic")
        label = "fast exact Poisson CLs" if method == "poisson" else "fast asymptotic CLs"
        calc = "toybased" if method == "poisson" else "asymptotics"
        for j, i in enumerate(idx):
            out[i] = (float(res.observed[j]), [float(v) for v in res.expected[:, j]], label, calc)
    return out


# ---------------------------------------------------------------------------------------------
# parallel driver
# ---------------------------------------------------------------------------------------------


def _fast_chunk(args: tuple) -> list:
    items, cl, calculator = args
    return fast_limits(items, cl, calculator)


def _pyhf_task(args: tuple) -> tuple[float, list[float], str, str]:
    spec, measurement, cl, calculator, ntoys, seed = args
    model, data = model_and_data(workspace_from_spec(spec), measurement=measurement)
    res = upper_limit(model, data, cl=cl, calculator=calculator, ntoys=ntoys, seed=seed)
    return res.observed, list(res.expected), f"pyhf {res.calculator}", res.calculator


def run_scan(
    tasks: list[ScanTask],
    cl: float,
    method: Method = "auto",
    calculator: str = "auto",
    ntoys: int = 1000,
    seed: int = 0,
    executor: Executor = "local",
    workers: int = 1,
    scheduler: str | None = None,
) -> list[ScanResult]:
    """Limits for every task; one-bin tasks through the vectorised fast path unless ``method='pyhf'``."""
    summaries = [one_bin_summary(t.spec, t.measurement) if method != "pyhf" else None for t in tasks]
    fast_idx = [i for i, s in enumerate(summaries) if s is not None]
    slow_idx = [i for i, s in enumerate(summaries) if s is None]
    results: list[ScanResult | None] = [None] * len(tasks)
    if fast_idx:
        n_chunks = max(1, min(workers, len(fast_idx) // 200))  # small scans: one vectorised call
        chunks = [list(c) for c in np.array_split(np.array(fast_idx), n_chunks)]
        outs = parallel_map(_fast_chunk, [([summaries[i] for i in c], cl, calculator) for c in chunks], executor, workers, scheduler)
        for chunk, out in zip(chunks, outs):
            for i, (obs, exp, label, calc) in zip(chunk, out):
                results[i] = ScanResult(tasks[i].key, obs, exp, label, calc, summaries[i].s)
    if slow_idx:
        args = [(tasks[i].spec, tasks[i].measurement, cl, calculator, ntoys, seed) for i in slow_idx]
        outs = parallel_map(_pyhf_task, args, executor, workers, scheduler)
        for i, (obs, exp, label, calc) in zip(slow_idx, outs):
            note = ["not a one-bin model: full pyhf limit"] if method == "fast" else []
            results[i] = ScanResult(tasks[i].key, obs, exp, label, calc, None, note)
    return results

"""Closure of zprime's factorised after-classifier background (analyses/zprime_background.py) on a run.

Where a background dataset's plain after-cut window has statistics (>= --min-events effective simulated
events), the factorised estimate (pre-cut window x the pass fraction in sidebands that exclude the window)
and the plain count should agree within their errors: the pulls (factorised - plain) / sigma, with the
covariance of the shared window events (``zprime_background.closure_pulls``), should have mean ~0 and
width ~1. Non-overlapping windows only (every ``2 half_width / step``-th hypothesis), raw (unsmoothed) spectra.

    .venv/bin/python benchmarks/bench_zprime_factorised.py --results /tmp/zprime4-L-out

``--independent DIR``: a run over independent (larger) samples of some of the same background datasets; per such
dataset the factorised after-cut windows of ``--results`` (non-overlapping, ``--mass-range``) are summed against the
plain after-cut windows of DIR: the closure where the after-cut windows of ``--results`` hold no simulated event.
"""

from __future__ import annotations

import argparse

import numpy as np

from belle_rare.analyses import zprime_background as zb
from belle_rare.analyses import zprime_scan as zs
from belle_rare.processors.registry import get_search
from belle_rare.stats.histograms import load_run_output


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True)
    ap.add_argument("--min-events", type=float, nargs="+", default=[10.0, 3.0],
                    help="plain after-cut effective events for a window to enter the closure")
    ap.add_argument("--independent", default=None, help="results directory of a run over independent samples")
    ap.add_argument("--mass-range", type=float, nargs=2, default=[3.0, 6.0], help="GeV, with --independent")
    args = ap.parse_args()
    cfg = zs.load_scan_config(None)
    run = load_run_output(args.results, "zprime")
    samples, _ = zs.signal_samples(run, cfg, get_search("zprime").load_config().paper_m2_resolution)
    spec = zs.spectra(run, cfg.model_copy(update={"background_estimate": "factorised"}))
    p = zs.plan(zs.hypotheses(samples, cfg), samples, spec.m2_edges, cfg)
    every = max(1, int(round(2 * cfg.scan.half_width_sigma / cfg.scan.step_over_sigma)))
    pick = np.arange(0, len(p.mass), every)
    f = cfg.factorised
    at = any(fi.pass_masses is not None for fi in spec.factor_inputs.values())
    print(f"{len(pick)} non-overlapping windows of {len(p.mass)}; sidebands {f.sideband_widths} GeV^2, "
          f"pass fraction from >= {f.min_events:g} effective after-cut events, sideband events classified at "
          f"{'the window hypothesis (m2_pass)' if at else 'their nearest trained mass'}")
    all_pulls: dict[float, list] = {m: [] for m in args.min_events}
    terms: dict[float, list] = {m: [] for m in args.min_events}   # (difference, variance, eps S) for the systematic
    for name, fi in sorted(spec.factor_inputs.items()):   # a loop over background datasets
        exclude = f.exclude_m2.get(spec.background_sets[name][1])
        # the statistical closure: no closure systematic in the pass fraction
        pf = zs.sideband_pass_fraction(fi, spec.m2_edges, p, f, exclude=exclude)
        s_w, sv_w = zs._gather_1d(fi.raw_before_m2, p), zs._gather_1d(fi.raw_before_m2_var, p)
        c_w, cv_w = zs._gather_1d(fi.raw_after_m2, p), zs._gather_1d(fi.raw_after_m2_var, p)
        pulls = zb.closure_pulls(s_w, sv_w, c_w, cv_w, pf)
        plain_events = zb.effective_events(c_w, cv_w)
        free = np.ones(len(p.mass), bool) if exclude is None else \
            ~((spec.m2_edges[p.first + p.width] > exclude[0]) & (spec.m2_edges[p.first] < exclude[1]))
        for m in args.min_events:
            use = pick[(plain_events[pick] >= m) & np.isfinite(pulls[pick]) & free[pick]]
            all_pulls[m].append(pulls[use])
            diff = (pf.eps * s_w - c_w)[use]
            terms[m].append((diff, (diff / pulls[use]) ** 2, (pf.eps * s_w)[use]))
            if len(use):
                ratio = (pf.eps * s_w)[use].sum() / c_w[use].sum()
                print(f"{name:40s} plain >= {m:4g} ev: {len(use):3d} windows (M {p.mass[use].min():.2f}-{p.mass[use].max():.2f} GeV), "
                      f"pull mean {pulls[use].mean():+.2f} rms {np.sqrt(np.mean(pulls[use] ** 2)):.2f}, "
                      f"sum factorised / plain {ratio:.3f}")
            else:
                print(f"{name:40s} plain >= {m:4g} ev: no window")
    if args.independent:
        independent_closure(args.independent, cfg, spec, p, pick, args.mass_range)
    for m, parts in all_pulls.items():
        x = np.concatenate(parts) if parts else np.zeros(0)
        if len(x):
            print(f"ALL plain >= {m:g} events: {len(x)} windows, pull mean {x.mean():+.3f} +- {x.std(ddof=1) / np.sqrt(len(x)):.3f}, "
                  f"rms {np.sqrt(np.mean(x ** 2)):.3f}, |pull| > 2: {np.sum(np.abs(x) > 2)}, > 3: {np.sum(np.abs(x) > 3)}")
            d, v, fs = (np.concatenate([t[i] for t in terms[m]]) for i in range(3))
            # the relative systematic r on eps that brings the pulls' rms to 1 (bisection)
            rms = lambda r: np.sqrt(np.mean(d**2 / (v + (r * fs) ** 2)))  # noqa: E731
            lo, hi = 0.0, 5.0
            if rms(0.0) > 1.0:
                for _ in range(60):
                    lo, hi = ((lo + hi) / 2, hi) if rms((lo + hi) / 2) > 1.0 else (lo, (lo + hi) / 2)
            configured = f.closure_systematic if at else f.closure_systematic_nearest
            print(f"    relative systematic on eps for rms 1: {lo:.3f} (configured for this run: {configured:g}); "
                  f"rms with the configured one {rms(configured):.3f}")


def independent_closure(results: str, cfg: zs.ScanConfig, spec: zs.Spectra, p: zs.Plan, pick: np.ndarray,
                        mass_range: list[float]) -> None:
    """Per dataset in both runs: sum over the picked windows in ``mass_range`` of the factorised after-cut yield (this
    run: pre-cut window x sideband pass fraction, raw, with its variance) against the other run's plain after-cut sum."""
    other = load_run_output(results, "zprime")
    f = cfg.factorised
    use = pick[(p.mass[pick] >= mass_range[0]) & (p.mass[pick] <= mass_range[1])]
    for name, fi in sorted(spec.factor_inputs.items()):   # a loop over background datasets
        if name not in other.histograms:
            continue
        pf = zs.sideband_pass_fraction(fi, spec.m2_edges, p, f, exclude=f.exclude_m2.get(spec.background_sets[name][1]))
        s_w, sv_w = zs._gather_1d(fi.raw_before_m2, p), zs._gather_1d(fi.raw_before_m2_var, p)
        fact = (pf.eps * s_w)[use]
        fact_var = (pf.var * s_w**2 + pf.eps**2 * sv_w)[use]
        values, variances, _, _ = zs._hist2d(other, name, cfg)
        plain = zs._gather_1d(values.sum(axis=1), p)[use]
        plain_var = zs._gather_1d(variances.sum(axis=1), p)[use]
        n_eff = plain.sum() ** 2 / plain_var.sum() if plain_var.sum() > 0 else 0.0
        pull = (fact.sum() - plain.sum()) / np.sqrt(fact_var.sum() + plain_var.sum())
        print(f"{name:40s} independent closure, {len(use)} windows at {mass_range[0]:g}-{mass_range[1]:g} GeV: factorised "
              f"{fact.sum():.4g} +- {np.sqrt(fact_var.sum()):.2g} (this run, {zb.effective_events(zs._gather_1d(fi.raw_after_m2, p)[use].sum(), zs._gather_1d(fi.raw_after_m2_var, p)[use].sum()):.0f} "
              f"simulated events after the cut) vs plain {plain.sum():.4g} +- {np.sqrt(plain_var.sum()):.2g} "
              f"({n_eff:.0f} effective events; {results}): ratio "
              f"{f'{fact.sum() / plain.sum():.2f}' if plain.sum() > 0 else 'n/a'}, pull {pull:+.2f}")


if __name__ == "__main__":
    main()

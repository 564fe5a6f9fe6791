"""How often kstartautau's K*0 vertex fit fails, and on which pairs (Belle; issue 12).

Every pair of the four signal-side tracks of the events the processor keeps is fitted once per chunk
(``kstartautau.kstar_vertex_fits``); this records those fits on the samples of ``bench_kstartautau.py`` and prints,
per sample, the share of pairs (and of events with at least one pair) whose fit fails, why (not converged in
``vertex_fit.MAX_STEPS`` steps, singular, or a non-positive vertex variance), and the distance of closest approach,
opening angle and chi^2 of failing against succeeding pairs: a failed fit should be two tracks without a common
vertex, not a numerical accident.

    .venv/bin/python benchmarks/bench_kstar_vertex_fit.py --samples S   # S: bench_kstartautau.py's --samples
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from coffea.nanoevents import NanoEventsFactory

from belle_rare.processors import kstartautau
from belle_rare.processors import vertex_fit as vf
from belle_rare.processors.base import calibrations
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, required=True)
    ap.add_argument("--processes", nargs="+", default=["sig_kstartautau", "mixed", "charged"])
    args = ap.parse_args()
    fits: list[np.ndarray] = []  # per fitted pair: succeeded, converged, finite chi2, cos(opening), DOCA (cm), chi2
    fit_pairs = kstartautau.fit_pairs

    def recording(tracks: vf.TrackParameters, first: np.ndarray, second: np.ndarray) -> vf.VertexFit:
        fit = fit_pairs(tracks, first, second)
        origin, u = vf.measured_lines(tracks)
        normal = np.cross(u[first], u[second])
        length = np.linalg.norm(normal, axis=1)
        doca = np.abs(np.sum((origin[first] - origin[second]) * normal, axis=1)) / np.where(length > 0, length, 1.0)
        fits.append(np.stack([fit.succeeded, fit.converged, np.isfinite(fit.chi2), np.sum(u[first] * u[second], axis=1),
                              doca, fit.chi2], axis=1))
        return fit

    kstartautau.fit_pairs = recording
    search = get_search("kstartautau")
    proc = search.processor("belle", search.load_config())
    nominal = calibrations("belle", nominal_only=True)[0]
    every = []
    for process in args.processes:
        fits.clear()
        for path in sorted(args.samples.glob(f"belle_{process}_*.root")):
            events = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, mode="eager",
                                                 metadata={"dataset": process, "filename": str(path)}).events()
            proc.objects(events, nominal)
        if not fits:
            print(f"{process}: no kept four-track event")
            continue
        rows = np.concatenate(fits)
        ok = rows[:, 0] > 0
        per_event = ok.reshape(-1, 6)  # the six pairs of each kept event, in a row
        print(f"{process}: {len(per_event)} kept events, {len(ok)} pairs; failed {1 - ok.mean():.4f} of the pairs, "
              f"events with a failed pair {(~per_event).any(axis=1).mean():.4f}")
        every.append(rows)
    rows = np.concatenate(every)
    ok, converged, finite = rows[:, 0] > 0, rows[:, 1] > 0, rows[:, 2] > 0
    print(f"\nall samples: {(~ok).sum()} failed fits: not converged {(~ok & finite & ~converged).sum()}, singular "
          f"{(~ok & ~finite).sum()}, a non-positive vertex variance {(~ok & finite & converged).sum()} (MAX_STEPS {vf.MAX_STEPS})")
    for name, sel in (("succeeded", ok), ("failed", ~ok)):
        q = lambda column: np.round(np.nanquantile(rows[sel, column], [0.05, 0.5, 0.95]), 3)  # noqa: E731
        print(f"  {name:9s} cos(opening) 5/50/95 % {q(3)}  DOCA (cm) {q(4)}  median chi2 {np.nanmedian(rows[sel, 5]):.3g}")


if __name__ == "__main__":
    main()

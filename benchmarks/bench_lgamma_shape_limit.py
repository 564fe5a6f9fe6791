"""taulgamma expected limits at the paper's numbers: the (M_bc, dE) shape fit against the counting version, Asimov.

Run: ``.venv/bin/python benchmarks/bench_lgamma_shape_limit.py [--ntoys N] [--out DIR]``

A synthetic run output at 988 /fb (stats/synthetic.py ``taulgamma_plane_output``): the tau tau
background as a smooth density in (M_bc, dE/sqrt(s)) (flat M_bc x Landau + exponential dE, the
paper's sec. 3 model), normalised to the paper's expected background in the 2 sigma ellipse
(5.8 mu gamma / 5.1 e gamma, sec. 3), simulated with 10^5 events on the plane (the sideband fit
has the statistics to run); the signal Gaussian in the ellipse with the widths of our own ellipse
(configs/searches/taulgamma.yaml, half-axes = 2 sigma) and the paper's efficiency (3.7 / 2.9 %,
912e6 tau pairs). Observations: the Asimov background (no pseudo-data).

Printed per channel: the sideband-fit background in the ellipse, and the expected 90 % CL limits
(median, +-1 sigma) in signal events and branching fraction, from the counting model (exact
Poisson CLs) and from the shape fit (pyhf toys, ``--ntoys``; asymptotic with ``--ntoys 0``),
beside the paper's expected 4.9e-8 / 6.4e-8 (toy MC of its unbinned fit: s90 = 3.3 / 3.4 events).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from belle_rare.stats.model_config import load_stats_config
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.sideband_fit import Plane, PlaneGeometry, _Model, bin_probabilities
from belle_rare.stats.synthetic import taulgamma_plane_output
from belle_rare.processors.registry import get_search

MBC_EDGES = np.linspace(1.5, 2.0, 201)
DE_EDGES = np.linspace(-0.1, 0.05, 151)
SHAPE = np.array([-0.01, math.log(0.008), 1.0, 30.0])  # Landau mpv, log width, logit fraction; exponential slope
PAPER = {"mugamma": {"b": 5.8, "eff": 0.037, "expected": 4.9e-8}, "egamma": {"b": 5.1, "eff": 0.029, "expected": 6.4e-8}}
N_TAU_PAIRS = 912.0e6
N_SIMULATED = 1.0e5


def density() -> np.ndarray:
    q = np.diff(MBC_EDGES) / 0.5
    return np.outer(q, bin_probabilities("landau_exponential", SHAPE, DE_EDGES))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ntoys", type=int, default=300, help="toys of the shape-fit limit (0: asymptotic)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench-lgamma-shape-limit"))
    args = parser.parse_args()
    cfg = get_search("taulgamma").load_config()
    stats_config = load_stats_config("taulgamma")
    rows = []
    for channel, paper in PAPER.items():
        g = PlaneGeometry(**cfg.sideband_plane(channel))
        nu = N_SIMULATED * density()
        model = _Model(Plane(nu, nu, MBC_EDGES, DE_EDGES), g, "landau_exponential", "flat")
        in_ellipse = model.ellipse_yield(np.concatenate([[math.log(nu[model.sb_bins].sum())], SHAPE]))
        weight = paper["b"] / in_ellipse
        s_per_br_ref = 2 * N_TAU_PAIRS * 1e-7 * paper["eff"]
        directory = args.out / channel
        taulgamma_plane_output(directory, nu, weight, signal_events=s_per_br_ref)  # Asimov: no Poisson draw
        signal = "taumugamma" if channel == "mugamma" else "tauegamma"
        config = stats_config.model_copy(update={"channels": [c for c in stats_config.channels if c.name == channel],
                                                 "signals": {signal: stats_config.signals[signal]}})
        settings = Settings(ntoys=args.ntoys or None, calculator="asymptotics" if args.ntoys == 0 else "toybased")
        start = time.perf_counter()
        (entry,) = compute_search_limits("taulgamma", directory, settings, config=config).document["limits"]
        seconds = time.perf_counter() - start
        fit = next(e for e in entry["background_estimates"] if e["estimate"] == "sideband_fit")
        counting = entry["counting_cross_check"]
        per_event = entry["physics"]["expected"][2] / entry["signal_events"]["expected"][2]
        rows.append({
            "channel": channel, "background_true": paper["b"], "background_fit": fit["value"], "background_fit_error": fit["uncertainty"],
            "signal_events_per_br": entry["signal_events"]["per_unit_poi"] / 1e-7,
            "shape": {"method": entry["method"], "s90_expected": entry["signal_events"]["expected"], "br_expected": entry["physics"]["expected"]},
            "counting": {"method": counting["method"], "s90_expected": counting["signal_events"]["expected"],
                         "br_expected": counting["physics"]["expected"]},
            "paper_br_expected": paper["expected"], "paper_s90_expected": paper["expected"] * 2 * N_TAU_PAIRS * paper["eff"],
            "seconds": round(seconds, 1), "br_per_signal_event": per_event,
        })
        r = rows[-1]
        print(f"{channel}: b(ellipse) fit {r['background_fit']:.3f} +- {r['background_fit_error']:.3f} (true {paper['b']}); "
              f"expected s90 shape {r['shape']['s90_expected'][2]:.2f} [{r['shape']['s90_expected'][1]:.2f}, {r['shape']['s90_expected'][3]:.2f}] "
              f"-> BR {r['shape']['br_expected'][2]:.3g}; counting {r['counting']['s90_expected'][2]:.2f} -> BR {r['counting']['br_expected'][2]:.3g}; "
              f"paper s90 {r['paper_s90_expected']:.2f} -> BR {paper['expected']:.3g} ({seconds:.0f} s)")
    (args.out / "bench_lgamma_shape_limit.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

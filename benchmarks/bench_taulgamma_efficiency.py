"""tau -> l gamma signal efficiency with and without hard ISR (issue 11, the efficiency gap).

The signal samples (``sig_taumugamma``, ``sig_tauegamma``) are tau pairs from Pythia's ``ffbar2gmZ``
with its default gamma* mass floor of 10 GeV: no ISR photon above 0.56 GeV (CM). The paper's signal
MC (KKMC) has the full ISR spectrum; 20.2 % of tau pairs (Kuraev-Fadin x Born,
``isr.gamma_star_mass_fraction``) have a gamma* mass of 3.6-10 GeV, where the tau carries less than
sqrt(s)/2 and the l gamma pair misses the ellipse. This generates each signal in both slices and
quotes eps = f_soft eps(m > 10 GeV) + f_hard eps(3.6-10 GeV), the efficiency in the paper's definition
(selected / produced signal decays, every ISR energy).

    .venv/bin/python benchmarks/bench_taulgamma_efficiency.py --events 20000 [--fsr off]

``--fsr off`` switches off the final-state radiation in the tau decays (on in the catalogue's signals).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import GammaStarMass, load_catalogue
from belle_rare.core.units import pdg_mass
from belle_rare.processors.base import calibrations
from belle_rare.processors.registry import get_search
from belle_rare.processors.taulgamma import CUT_VALUES, STEPS
from belle_rare.simulation.generators.isr import gamma_star_mass_fraction
from belle_rare.simulation.production import Request, produce

HARD = GammaStarMass(min=3.6, max=10.0, fermion=15)
SIGNALS = {"mugamma": "sig_taumugamma", "egamma": "sig_tauegamma"}


def produce_signal(process: str, events: int, seed: int, out: Path, hard_isr: bool, fsr: bool | None = None) -> dict:
    """The signal sample, in the gamma* slice 3.6-10 GeV if ``hard_isr`` (set on this process only: the
    signals generate their base's slice, m > 10 GeV); ``fsr`` overrides the
    catalogue's ``tau_decay_fsr`` (simulation/generators/decay_fsr.py) when given."""
    catalogue = load_catalogue()  # cached: the changes below reach produce(), and are undone after
    original = catalogue.get(process)
    update: dict = {}
    if hard_isr:  # the signal's own slice: it would otherwise inherit its base's (tautau, m > 10 GeV), whose
        # Pythia lines come after extra_pythia and would win (that made the hard slice a copy of the soft one)
        update["gamma_star_mass"] = HARD
    if fsr is not None:
        update["tau_decay_fsr"] = fsr
    catalogue.processes[process] = original.model_copy(update=update)
    try:
        return produce(Request("belle", process, events, seed, out, events_per_file=events), progress=False)
    finally:
        catalogue.processes[process] = original


def efficiency(manifest: dict, out: Path, channel: str) -> tuple[float, float, dict[str, float]]:
    """Selected / generated signal events (thrown PID, every cut and the ellipse) and the raw cutflow."""
    from bench_taulgamma_background import read_events  # same directory

    search = get_search("taulgamma")
    proc = search.processor("belle", search.load_config())
    nominal = calibrations("belle", nominal_only=True)[0]
    counts: dict[str, float] = {}
    selected = generated = 0
    for f in manifest["files"]:
        events = read_events(str(out / f["path"]), manifest["dataset"], "signal")
        sel = proc.select(events, proc.objects(events, nominal), channel)
        fired = proc.trigger_fired(events)
        names: list[str] = []
        base = fired if fired is not None else np.ones(len(events), bool)
        counts["trigger"] = counts.get("trigger", 0) + float(base.sum())
        for step in [*STEPS, *CUT_VALUES]:
            names.append(step)
            counts[step] = counts.get(step, 0) + float((base & sel.passing(*names)).sum())
        passed = base & sel.passing(*names) & sel.regions["signal"]
        counts["signal region"] = counts.get("signal region", 0) + float(passed.sum())
        # the xi cut inside the ellipse: every other cut and the ellipse, with and without xi
        in_ellipse = proc.config.ellipse(channel).contains(sel.values["mbc"], sel.values["de"], proc.config.signal_region.n_sigma)
        no_xi = base & sel.passing(*(n for n in names if n != "xi")) & in_ellipse
        counts["ellipse, all but xi"] = counts.get("ellipse, all but xi", 0) + float(no_xi.sum())
        counts["ellipse, all but xi, xi > 1"] = counts.get("ellipse, all but xi, xi > 1", 0) + float((no_xi & (sel.values["xi"] > 1)).sum())
        selected += int(passed.sum())
        generated += len(events)
    eps = selected / generated
    return eps, float(np.sqrt(eps * (1 - eps) / generated)), counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--soft-only", action="store_true",
                        help="only the m > 10 GeV slice (the hard one selects ~1e-4): for paired on / off comparisons")
    parser.add_argument("--fsr", choices=("on", "off"), help="FSR in the signal tau decay (default: the catalogue's tau_decay_fsr)")
    args = parser.parse_args()
    exp = load_experiment("belle")
    f_hard = gamma_star_mass_fraction(exp.sqrt_s_nominal, pdg_mass(15), HARD.min, HARD.max)
    f_soft = gamma_star_mass_fraction(exp.sqrt_s_nominal, pdg_mass(15), HARD.max, None)
    paper = get_search("taulgamma").load_config().paper.efficiency
    result = {"f_soft": f_soft, "f_hard": f_hard}
    for channel, process in SIGNALS.items():
        row = {}
        for i, hard in enumerate((False,) if args.soft_only else (False, True)):
            with tempfile.TemporaryDirectory(prefix="lgamma-eff-") as tmp:
                manifest = produce_signal(process, args.events, args.seed + i, Path(tmp), hard,
                                          None if args.fsr is None else args.fsr == "on")
                eps, err, counts = efficiency(manifest, Path(tmp), channel)
            row["hard" if hard else "soft"] = {"efficiency": eps, "error": err, "cutflow": counts}
        if args.soft_only:  # the hard slice taken as selecting nothing (measured: 1e-4 to 3e-4)
            row["hard"] = {"efficiency": 0.0, "error": 0.0, "cutflow": {step: 0.0 for step in row["soft"]["cutflow"]}}
        eps = f_soft * row["soft"]["efficiency"] + f_hard * row["hard"]["efficiency"]
        err = float(np.hypot(f_soft * row["soft"]["error"], f_hard * row["hard"]["error"]))
        row["with_isr"] = {"efficiency": eps, "error": err, "paper": getattr(paper, channel)}
        result[channel] = row
        print(f"{channel}: eps(m > 10 GeV) = {row['soft']['efficiency']:.4f} +- {row['soft']['error']:.4f}, "
              f"eps(3.6-10 GeV) = {row['hard']['efficiency']:.4f} +- {row['hard']['error']:.4f}; "
              f"with ISR ({f_soft:.3f} / {f_hard:.3f}) {eps:.4f} +- {err:.4f}; paper {getattr(paper, channel)}")
        soft = row["soft"]["cutflow"]
        print(f"    xi inside the ellipse (m > 10 GeV): {soft['signal region'] / soft['ellipse, all but xi']:.3f} pass, "
              f"{soft['ellipse, all but xi, xi > 1'] / soft['ellipse, all but xi']:.3f} have xi > 1")
        for step, n in row["hard"]["cutflow"].items():
            print(f"    hard-ISR cutflow {step:36s} {n / args.events:.4f}   (m > 10 GeV: {row['soft']['cutflow'][step] / args.events:.4f})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

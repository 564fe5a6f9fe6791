"""zprime's mu mu hard-ISR background from two ISR models, in the search's own selection (issue 14).

The background left in the 3-6 GeV windows is mostly mu pairs with hard ISR (README, zprime "Still missing"), and the
shipped samples take it from Pythia's QED ISR shower (``mumu_hard_isr``: collinear-logarithmic, several photons, the
gamma* mass slice 1-10 GeV). ``mumu_isr_central`` is the same slice from the dedicated first-order generator
(``simulation/generators/isr.py``: one photon, the Kuraev-Fadin energy spectrum times the Born cross section, the
exact first-order polar angle, the photon forced into the barrel in 75 % of the events and weighted back; Pythia's
FSR off the muons, as in the shower sample). Neither
is KKMC; where they agree, the background does not hang on the shower's approximations. Both samples are made with
the same generator filter (``zprime_recoil``, looser than the selection: ``bench_zprime_filter_closure.py``), run
through the zprime processor, and compared per M2_recoil range (the paper's three systematic ranges) in region
``selected`` (every cut before the classifier) and ``classified`` (after it), at the search's 79.7 /fb. First, at generator level
(the stored ``MCParticle`` record, no detector): the events whose true mu-pair recoil points into the ECL barrel, per
range, with their mean number of photons above 0.1 GeV and the share with such a photon inside the barrel (a
barrel photon is vetoed unless the response loses it; one outside leaves the recoil unseen).

    belle-rare generate --experiment belle2 --process mumu_hard_isr --filter zprime_recoil --events 200000 --seed 501 --out DIR
    belle-rare generate --experiment belle2 --process mumu_isr_central --filter zprime_recoil --events 200000 --seed 502 --out DIR
    .venv/bin/python benchmarks/bench_zprime_isr_models.py --samples DIR
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np
import uproot
from rich.console import Console

from belle_rare.analyses import zprime_scan as zs
from belle_rare.analyses.run_command import write_outputs
from belle_rare.analyses.runner import RunOptions, run_search
from belle_rare.configs.experiment import load_experiment
from belle_rare.processors.registry import get_search
from belle_rare.stats.histograms import load_run_output

MODELS = {"mumu_hard_isr": "Pythia ISR shower", "mumu_isr_central": "first-order ISR (weighted)"}
#: the paper's three M2_recoil ranges (GeV^2/c^4) of its efficiency and shape systematics
RANGES = ((-0.5, 9.0), (9.0, 36.0), (36.0, 81.0))


def range_sum(values: np.ndarray, variances: np.ndarray, edges: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(yield, its simulated-statistics error) of the M2 bins whose centres lie in (lo, hi), all theta bins."""
    mid = 0.5 * (edges[1:] + edges[:-1])
    inside = (mid > lo) & (mid < hi)
    return float(values[inside].sum()), float(np.sqrt(variances[inside].sum()))


def manifest_of(samples: Path, process: str) -> Path:
    """``process``'s manifest in ``samples``, plain or filtered (``belle2_<process>_filter_<name>.json``)."""
    return next(samples.glob(f"belle2_{process}.json"), None) or next(samples.glob(f"belle2_{process}_filter_*.json"))


def truth_table(samples: Path, process: str, barrel: tuple[float, float], luminosity_fb: float) -> None:
    """Generator level: per M2 range, the events whose true recoil (beams - both muons, lab) points into ``barrel``."""
    manifest = json.loads(manifest_of(samples, process).read_text())
    per_weight = manifest["cross_section_nb"] * 1e6 * luminosity_fb / manifest["generated_events"]
    sums = np.zeros((len(RANGES), 4))  # sum w, sum w^2, sum w n_photons, sum w [a barrel photon]
    for f in manifest["files"]:
        a = uproot.open(samples / f["path"])["tree"].arrays(
            ["MCParticle_PDG", "MCParticle_status", "MCParticle_px", "MCParticle_py", "MCParticle_pz", "MCParticle_E",
             "beamE", "beamPx", "beamPy", "beamPz", "__weight__"])
        final = a.MCParticle_status > 0  # Pythia's convention: final-state particles have a positive status
        muon, photon = final & (abs(a.MCParticle_PDG) == 13), final & (a.MCParticle_PDG == 22) & (a.MCParticle_E > 0.1)
        recoil = [ak.to_numpy(a[beam] - ak.sum(a[f"MCParticle_{c}"][muon], axis=1))
                  for beam, c in (("beamPx", "px"), ("beamPy", "py"), ("beamPz", "pz"), ("beamE", "E"))]
        m2 = recoil[3] ** 2 - recoil[0] ** 2 - recoil[1] ** 2 - recoil[2] ** 2
        theta = np.degrees(np.arctan2(np.hypot(recoil[0], recoil[1]), recoil[2]))
        g_theta = np.degrees(np.arctan2(np.hypot(a.MCParticle_px, a.MCParticle_py), a.MCParticle_pz))
        n_photons = ak.to_numpy(ak.sum(photon, axis=1))
        in_barrel = ak.to_numpy(ak.any(photon & (g_theta > barrel[0]) & (g_theta < barrel[1]), axis=1))
        w = ak.to_numpy(a["__weight__"])
        towards = (theta > barrel[0]) & (theta < barrel[1])
        for k, (lo, hi) in enumerate(RANGES):
            sel = towards & (m2 > lo) & (m2 < hi)
            sums[k] += [w[sel].sum(), (w[sel] ** 2).sum(), (w[sel] * n_photons[sel]).sum(), w[sel][in_barrel[sel]].sum()]
    print(f"  {MODELS[process]} ({process}):")
    for (lo, hi), (sw, sw2, sn, sb) in zip(RANGES, sums):
        print(f"    M2 {lo:5.1f}-{hi:5.1f}: {sw * per_weight:10.4g} +- {np.sqrt(sw2) * per_weight:8.3g}   photons > 0.1 GeV "
              f"{sn / sw if sw else float('nan'):.2f}, with one in the barrel {sb / sw if sw else float('nan'):.2f}")


def run_one(samples: Path, process: str, work: Path, workers: int) -> tuple[object, str]:
    """Run zprime on ``process``'s sample of ``samples`` alone (the loader keeps one sample of a physics process per
    directory): its manifest and files linked into a directory of their own. Returns (run output, dataset name)."""
    manifest = manifest_of(samples, process)
    own = work / process
    own.mkdir(parents=True, exist_ok=True)
    for f in [manifest, *samples.glob(f"{manifest.stem}_*.root")]:
        (own / f.name).unlink(missing_ok=True)
        (own / f.name).symlink_to(f.resolve())
    result = run_search(RunOptions(search="zprime", experiment="belle2", samples=own, out=work / f"{process}_results",
                                   executor="futures", workers=workers, progress=False))
    write_outputs(result, work / f"{process}_results", Console(quiet=True))
    return load_run_output(work / f"{process}_results", "zprime"), manifest.stem.removeprefix("belle2_")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, required=True, help="a directory holding both samples")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    cfg = zs.load_scan_config(None)
    config = get_search("zprime").load_config()
    barrel = tuple(config.recoil.theta_lab_deg)
    luminosity = load_experiment("belle2").luminosity_fb[config.luminosity]
    print(f"generator level, {luminosity:g} /fb: true recoil in {barrel[0]:g}-{barrel[1]:g} deg (lab), per M2 range (GeV^2)")
    for process in MODELS:
        truth_table(args.samples, process, barrel, luminosity)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_one(args.samples, process, Path(tmp), args.workers) for process in MODELS]
    print(f"\nzprime's selection, {runs[0][0].luminosity_fb:g} /fb; yield +- simulated statistics per M2_recoil range (GeV^2)")
    for region in ("selected", "classified"):
        print(f"\nregion {region}:")
        print(f"  {'M2 range':>12s} " + " ".join(f"{MODELS[m]:>28s}" for m in MODELS) + f" {'ratio':>6s} {'pull':>6s}")
        for lo, hi in RANGES:
            sums = []
            for run, dataset in runs:
                values, variances, edges, _ = zs._hist2d(run, dataset, cfg, region)
                sums.append(range_sum(values, variances, edges, lo, hi))
            (a, da), (b, db) = sums
            ratio = b / a if a > 0 else float("nan")
            pull = (b - a) / np.hypot(da, db) if da or db else float("nan")
            print(f"  {lo:5.1f}-{hi:5.1f} " + " ".join(f"{s:17.4g} +- {e:8.3g}" for s, e in sums) + f" {ratio:6.2f} {pull:6.1f}")


if __name__ == "__main__":
    main()

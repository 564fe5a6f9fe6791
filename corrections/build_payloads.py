"""Build the correctionlib payloads ``corrections/belle.json`` and ``corrections/belle2.json``.

Run ``python -m corrections.build_payloads [--out DIR]`` after editing ``TABLE``; the output is
deterministic, and tests/test_corrections.py checks that the shipped files match it.

Every number lives in ``TABLE`` below with its source. "representative" marks a value that is
not a published measurement for that quantity: chosen to be plausible and of the published
size where a related number exists (the comment says which). No collaboration calibration
tables are public, so all binned lepton-ID tables are representative.

Payload conventions (one CorrectionSet per experiment):
- every correction has a last string input ``syst`` in {"nominal", "up", "down"}, the root
  node being a Category on it; "up"/"down" are nominal +/- the 1-sigma uncertainty;
- binned corrections use ``flow="clamp"``: out-of-range inputs take the edge bin's value;
- outputs are multiplicative: per-object or per-event weights, or scale factors on E or p.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from correctionlib import JSONEncoder
from correctionlib import schemav2 as cs

PAYLOAD_DIR = Path(__file__).resolve().parent
SYSTS = ("nominal", "up", "down")
# round built values so that 1 + 0.0035 is written as 1.0035, not 1.0035000000000001
DIGITS = 10

# Lepton-ID binning (lab frame). Polar-angle regions: the track acceptance 17-150 deg
# (cos theta 0.956 / -0.866, Belle tau -> l gamma paper) split at the detector region that
# drives the identification:
#   electrons, ECL barrel 32.2-128.7 deg -> cos theta 0.846 / -0.625 (the tau -> l gamma
#     paper's photon region -0.625 < cos < 0.846; Belle and Belle II share the CsI(Tl) crystals);
#   muons, KLM barrel 45-125 deg -> cos theta 0.707 / -0.574 (Belle KLM, reused in Belle II).
COS_ECL = [-0.866, -0.625, 0.846, 0.956]
COS_KLM = [-0.866, -0.574, 0.707, 0.956]

# Each binned table: rows are momentum bins (p_edges), columns are cos theta bins (cos_edges);
# "ratio" is data/MC, "unc" its absolute 1-sigma uncertainty (symmetric).
TABLE: dict[str, dict[str, Any]] = {
    "belle": {
        "lepton_id": {
            # Working point from NOTES-detector.md (Belle e-ID: 92.4 % efficiency, 0.25 % pion
            # fakes for 1-3 GeV/c). Representative data/MC ratios: within a few % of 1, larger
            # deviations and uncertainties at low p and in the endcaps; sized so that a typical
            # two-lepton selection gets the ~2.5 % total PID uncertainty of the Belle K*tautau
            # paper (PRD 108, L011102).
            "e": {
                "pid": "eIDBelle > 0.9",
                "p_edges": [0.4, 1.0, 2.0, 3.0, 6.0],
                "cos_edges": COS_ECL,
                "ratio": [
                    [0.960, 0.975, 0.955],
                    [0.980, 0.990, 0.975],
                    [0.985, 0.995, 0.980],
                    [0.985, 0.995, 0.985],
                ],
                "unc": [
                    [0.030, 0.015, 0.030],
                    [0.020, 0.008, 0.020],
                    [0.015, 0.006, 0.015],
                    [0.015, 0.008, 0.015],
                ],
            },
            # NOTES-detector.md: Belle mu-ID 89 % efficiency, 1.4 % pion fakes (L_mu > 0.9,
            # 1-3 GeV/c); muons below ~0.6 GeV/c do not reach the KLM. Representative ratios.
            "mu": {
                "pid": "muIDBelle > 0.9",
                "p_edges": [0.6, 1.0, 2.0, 3.0, 6.0],
                "cos_edges": COS_KLM,
                "ratio": [
                    [0.900, 0.940, 0.910],
                    [0.960, 0.975, 0.960],
                    [0.970, 0.980, 0.970],
                    [0.970, 0.985, 0.975],
                ],
                "unc": [
                    [0.050, 0.030, 0.050],
                    [0.025, 0.015, 0.025],
                    [0.020, 0.012, 0.020],
                    [0.020, 0.012, 0.020],
                ],
            },
        },
        "fake_rate": {
            # pion -> lepton misidentification data/MC ratios. Representative: simulation
            # typically underestimates fakes (ratio >= 1) with 10-30 % uncertainties, the size
            # of the Belle II tau -> l alpha ranges below; no Belle table is public.
            "e": {
                "pid": "eIDBelle > 0.9",
                "p_edges": [0.4, 1.0, 2.0, 3.0, 6.0],
                "cos_edges": COS_ECL,
                "ratio": [
                    [1.25, 1.15, 1.30],
                    [1.15, 1.10, 1.20],
                    [1.10, 1.05, 1.15],
                    [1.10, 1.05, 1.10],
                ],
                "unc": [
                    [0.30, 0.20, 0.30],
                    [0.25, 0.15, 0.25],
                    [0.25, 0.15, 0.25],
                    [0.30, 0.20, 0.30],
                ],
            },
            "mu": {
                "pid": "muIDBelle > 0.9",
                "p_edges": [0.6, 1.0, 2.0, 3.0, 6.0],
                "cos_edges": COS_KLM,
                "ratio": [
                    [1.20, 1.10, 1.25],
                    [1.10, 1.05, 1.15],
                    [1.05, 1.00, 1.10],
                    [1.05, 1.00, 1.05],
                ],
                "unc": [
                    [0.20, 0.12, 0.20],
                    [0.15, 0.08, 0.15],
                    [0.15, 0.08, 0.15],
                    [0.20, 0.10, 0.20],
                ],
            },
        },
        # per track; tau -> l gamma paper (JHEP 2021) sec. 4: 0.35 % per track from partially
        # reconstructed D*+ -> D0 pi+, D0 -> KS pi+ pi- (0.7 % for two tracks; the K*tautau
        # paper's 1.4 % for four tracks is the same number). No nominal correction.
        "tracking": {"value": 1.0, "unc": 0.0035},
        # per photon; tau -> l gamma paper: photon reconstruction efficiency 2.0 % (radiative
        # Bhabha events, data and MC agree -> nominal 1).
        "photon_efficiency": {"value": 1.0, "unc": 0.020},
        # factor on photon energies. The tau -> l gamma paper calibrates with e+e- -> mu mu gamma
        # (so nominal 1) and quotes a 3.2 % effect on the efficiency, not a scale uncertainty;
        # 0.5 % on E is representative.
        "photon_energy_scale": {"value": 1.0, "unc": 0.005},
        # factor on charged-track momenta. No Belle number in our sources: nominal 1 and the
        # Belle II uncertainty size below, representative.
        "momentum_scale": {"value": 1.0, "unc": 0.00013},
        # per event, per analysis channel; nominal 1 (no published data/MC correction).
        "trigger": {
            "taulgamma_mugamma": {"value": 1.0, "unc": 0.021},  # tau -> l gamma paper, Table 1
            "taulgamma_egamma": {"value": 1.0, "unc": 0.034},  # tau -> l gamma paper, Table 1
            # the K*tautau paper lists no trigger term (negligible for B Bbar events); representative
            "kstartautau": {"value": 1.0, "unc": 0.005},
        },
        # per data set (keys of luminosity_fb in configs/experiments/belle.yaml)
        "luminosity": {
            "upsilon4s": 0.014,  # tau -> l gamma paper: integrated luminosity 1.4 %
            "all": 0.014,  # tau -> l gamma paper (988 /fb, all Upsilon(nS) + off-resonance)
            "kstartautau": 0.018,  # K*tautau paper: number of B Bbar pairs 1.8 % (its normalisation term)
        },
    },
    "belle2": {
        "lepton_id": {
            # Representative tables inside the ranges of Belle II tau -> l alpha (62.8 /fb),
            # Table II: electron-ID corrections 0.84-1.06 with 0.9-12.6 % uncertainties,
            # muon-ID 0.63-1.02 with 1.3-32.8 % (belle2_dark_sector_and_tau_talk.txt).
            "e": {
                "pid": "electronID > 0.9",
                "p_edges": [0.3, 0.7, 1.5, 3.0, 6.0],
                "cos_edges": COS_ECL,
                "ratio": [
                    [0.84, 0.93, 0.88],
                    [0.94, 0.98, 0.95],
                    [0.97, 1.00, 0.98],
                    [0.98, 1.01, 1.06],
                ],
                "unc": [
                    [0.100, 0.030, 0.060],
                    [0.040, 0.012, 0.030],
                    [0.030, 0.009, 0.020],
                    [0.030, 0.010, 0.040],
                ],
            },
            # Low-p muons do not reach the KLM (NOTES-detector.md): lowest ratios, largest
            # uncertainties there. 1.0-2.0 GeV/c barrel: the tau -> 3 mu paper's PID
            # uncertainty of 2.1 % (424 /fb, Table 2).
            "mu": {
                "pid": "muonID > 0.9",
                "p_edges": [0.4, 0.7, 1.0, 2.0, 6.0],
                "cos_edges": COS_KLM,
                "ratio": [
                    [0.63, 0.80, 0.75],
                    [0.85, 0.93, 0.90],
                    [0.95, 0.98, 0.96],
                    [0.97, 1.00, 1.02],
                ],
                "unc": [
                    [0.200, 0.080, 0.100],
                    [0.060, 0.030, 0.040],
                    [0.030, 0.021, 0.025],
                    [0.020, 0.013, 0.020],
                ],
            },
        },
        "fake_rate": {
            # Representative, inside the tau -> l alpha Table II ranges: electron mis-ID
            # 0.6-6.0 with 4.3-34.6 %, muon mis-ID 0.3-1.5 with 1.4-37.0 %.
            "e": {
                "pid": "electronID > 0.9",
                "p_edges": [0.3, 0.7, 1.5, 3.0, 6.0],
                "cos_edges": COS_ECL,
                "ratio": [
                    [2.00, 1.30, 1.80],
                    [1.50, 1.10, 1.40],
                    [1.20, 0.90, 1.30],
                    [2.50, 0.60, 6.00],
                ],
                "unc": [
                    [0.600, 0.200, 0.500],
                    [0.400, 0.100, 0.300],
                    [0.300, 0.060, 0.300],
                    [0.800, 0.026, 2.000],
                ],
            },
            "mu": {
                "pid": "muonID > 0.9",
                "p_edges": [0.4, 0.7, 1.0, 2.0, 6.0],
                "cos_edges": COS_KLM,
                "ratio": [
                    [1.50, 1.20, 1.40],
                    [1.20, 1.05, 1.10],
                    [1.00, 0.95, 0.90],
                    [0.80, 0.85, 0.30],
                ],
                "unc": [
                    [0.550, 0.200, 0.400],
                    [0.250, 0.100, 0.200],
                    [0.150, 0.050, 0.100],
                    [0.150, 0.012, 0.100],
                ],
            },
        },
        # per track; tau -> 3 mu paper (424 /fb): 0.24 % per-track data/MC discrepancy in
        # e+e- -> tau tau (3x1 prong), quoted as 1.0 % on the signal efficiency; 0.3 % per track
        # is representative (roughly 1.0 % over three tracks). No nominal correction.
        "tracking": {"value": 1.0, "unc": 0.003},
        # per photon; no Belle II number in our sources: the Belle 2.0 % taken over, representative.
        "photon_efficiency": {"value": 1.0, "unc": 0.020},
        # factor on photon energies; representative 0.5 % (as for Belle).
        "photon_energy_scale": {"value": 1.0, "unc": 0.005},
        # factor on charged-track momenta; tau -> 3 mu paper: 0.99987 from the D0 mass peak.
        # The paper's uncertainty on it was lost in the text extraction; we take the full size of
        # the correction, 1.3e-4, representative.
        "momentum_scale": {"value": 0.99987, "unc": 0.00013},
        "trigger": {
            "tau3mu": {"value": 1.0, "unc": 0.009},  # tau -> 3 mu paper, Table 2: trigger 0.9 %
            # same tau-pair topology and trigger lines as tau3mu: representative
            "taulphi": {"value": 1.0, "unc": 0.009},
            # the Z' paper folds the trigger into its 2.7-8.3 % data/MC terms: representative 1 %
            "zprime": {"value": 1.0, "unc": 0.010},
            # B Bbar events fire the ECL/CDC triggers almost always: representative 0.5 %
            "bkscalar": {"value": 1.0, "unc": 0.005},
            "kstartautau": {"value": 1.0, "unc": 0.005},
        },
        # per data set (keys of luminosity_fb in configs/experiments/belle2.yaml)
        "luminosity": {
            # Run 1 data set; the tau -> 3 mu sample contains it, same Bhabha/diphoton method:
            # 0.6 % representative
            "kstartautau": 0.006,
            "tau3mu": 0.006,  # tau -> 3 mu paper: 0.6 %
            "taulphi": 1.0 / 190.0,  # tau -> l phi: L = 190 +- 1 /fb
            "bkscalar": 0.006,  # 189 /fb subset of Run 1, same method: representative
            "zprime": 0.010,  # Z' -> invisible paper: 1 %
        },
    },
}


def _round(x: float) -> float:
    return round(float(x), DIGITS)


def _variations(value: float, unc: float) -> dict[str, float]:
    """nominal / up / down values, checked to stay positive (weights and scales)."""
    out = {"nominal": _round(value), "up": _round(value + unc), "down": _round(value - unc)}
    if not out["down"] > 0.0 or not unc > 0.0:
        raise ValueError(f"value {value} with uncertainty {unc}: need unc > 0 and value - unc > 0")
    return out


def _syst_category(build: Any) -> cs.Category:
    """Root node: a Category on 'syst' whose items are ``build(direction)``."""
    return cs.Category(
        nodetype="category",
        input="syst",
        content=[cs.CategoryItem(key=s, value=build(s)) for s in SYSTS],
    )


def _syst_input() -> cs.Variable:
    return cs.Variable(name="syst", type="string", description="nominal, up or down (1 sigma)")


def _binned(name: str, description: str, tables: dict[str, dict[str, Any]]) -> cs.Correction:
    """(species, p, cos_theta, syst) -> data/MC ratio, one MultiBinning per species."""
    for species, t in tables.items():
        n_p, n_c = len(t["p_edges"]) - 1, len(t["cos_edges"]) - 1
        for key in ("ratio", "unc"):
            if len(t[key]) != n_p or any(len(row) != n_c for row in t[key]):
                raise ValueError(f"{name}/{species}: '{key}' must be {n_p} x {n_c}")

    def grid(species: str, syst: str) -> cs.MultiBinning:
        t = tables[species]
        content = [
            _variations(r, u)[syst]
            for r_row, u_row in zip(t["ratio"], t["unc"])
            for r, u in zip(r_row, u_row)
        ]
        return cs.MultiBinning(
            nodetype="multibinning",
            inputs=["p", "cos_theta"],
            edges=[t["p_edges"], t["cos_edges"]],
            content=content,
            flow="clamp",
        )

    pids = "; ".join(f"{s}: {t['pid']}" for s, t in tables.items())
    return cs.Correction(
        name=name,
        description=f"{description} Working points: {pids}.",
        version=1,
        inputs=[
            cs.Variable(name="species", type="string", description="lepton hypothesis: e or mu"),
            cs.Variable(name="p", type="real", description="lab momentum |p| (GeV)"),
            cs.Variable(name="cos_theta", type="real", description="lab cos(polar angle)"),
            _syst_input(),
        ],
        output=cs.Variable(name="weight", type="real", description="data/MC ratio"),
        data=_syst_category(
            lambda syst: cs.Category(
                nodetype="category",
                input="species",
                content=[cs.CategoryItem(key=s, value=grid(s, syst)) for s in tables],
            )
        ),
    )


def _scalar(name: str, description: str, entry: dict[str, float], output: str) -> cs.Correction:
    """(syst) -> one number."""
    values = _variations(entry["value"], entry["unc"])
    return cs.Correction(
        name=name,
        description=description,
        version=1,
        inputs=[_syst_input()],
        output=cs.Variable(name=output, type="real"),
        data=_syst_category(lambda syst: values[syst]),
    )


def _keyed(
    name: str, description: str, key_input: cs.Variable, entries: dict[str, dict[str, float]]
) -> cs.Correction:
    """(key, syst) -> one number per key (trigger channel, data set)."""
    values = {k: _variations(e["value"], e["unc"]) for k, e in entries.items()}
    return cs.Correction(
        name=name,
        description=description,
        version=1,
        inputs=[key_input, _syst_input()],
        output=cs.Variable(name="weight", type="real"),
        data=_syst_category(
            lambda syst: cs.Category(
                nodetype="category",
                input=key_input.name,
                content=[cs.CategoryItem(key=k, value=v[syst]) for k, v in values.items()],
            )
        ),
    )


def build(experiment: str) -> cs.CorrectionSet:
    """The CorrectionSet of one experiment from ``TABLE``."""
    if experiment not in TABLE:
        raise ValueError(f"unknown experiment '{experiment}' (choose from {', '.join(TABLE)})")
    t = TABLE[experiment]
    corrections = [
        _binned("lepton_id", "Lepton-identification efficiency data/MC ratio per lepton.", t["lepton_id"]),
        _binned(
            "pion_fake_rate",
            "Pion -> lepton misidentification-rate data/MC ratio per misidentified pion.",
            t["fake_rate"],
        ),
        _scalar("tracking", "Track-finding efficiency data/MC weight per track.", t["tracking"], "weight"),
        _scalar(
            "photon_efficiency",
            "Photon-reconstruction efficiency data/MC weight per photon.",
            t["photon_efficiency"],
            "weight",
        ),
        _scalar(
            "photon_energy_scale",
            "Multiplicative factor on simulated photon (ECL cluster) energies.",
            t["photon_energy_scale"],
            "scale",
        ),
        _scalar(
            "momentum_scale",
            "Multiplicative factor on charged-track momenta.",
            t["momentum_scale"],
            "scale",
        ),
        _keyed(
            "trigger",
            "Trigger-efficiency data/MC weight per event.",
            cs.Variable(name="channel", type="string", description="analysis channel"),
            t["trigger"],
        ),
        _keyed(
            "luminosity",
            "Integrated-luminosity scale (1 +- relative uncertainty) per data set.",
            cs.Variable(
                name="dataset", type="string", description="key of luminosity_fb in the experiment config"
            ),
            {k: {"value": 1.0, "unc": u} for k, u in t["luminosity"].items()},
        ),
    ]
    return cs.CorrectionSet(
        schema_version=2,
        description=f"belle-rare corrections for {experiment}; built by corrections/build_payloads.py",
        corrections=corrections,
    )


def payload_text(experiment: str) -> str:
    """The JSON text written for one experiment (deterministic)."""
    data = build(experiment).model_dump(mode="json", by_alias=True, exclude_none=True)
    # correctionlib's encoder keeps short lists (edges, contents) on one line: readable diffs
    return JSONEncoder.dumps(data, indent=1, maxlistlen=25) + "\n"


def write_payloads(out_dir: str | Path = PAYLOAD_DIR) -> list[Path]:
    """Write ``<experiment>.json`` for every experiment into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for experiment in TABLE:
        path = out_dir / f"{experiment}.json"
        path.write_text(payload_text(experiment))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PAYLOAD_DIR), help="output directory (default: corrections/)")
    args = parser.parse_args(argv)
    for path in write_payloads(args.out):
        print(path)


if __name__ == "__main__":
    main()

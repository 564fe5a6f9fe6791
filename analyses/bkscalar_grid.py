"""bkscalar signal grid: efficiency and reduced-mass resolution versus m_S per channel and lifetime.

Built from generated signal samples (``sig_bkscalar_ee`` ... ``_kk``: one S decay each, BR(S -> x x) = 1)
at a few masses per S decay and two generated lifetimes, each run through the bkscalar processor; every
lifetime of the grid comes from the generated sample with the shortest c tau_gen >= c tau / 2 by
reweighting (processors/lifetime.py: 1 and 10 cm from 10 cm, 50 and 100 cm from 100 cm). Per grid point:

* efficiency = selected (weighted) / produced signal decays of the channel's B mode, counted in the truth
  record: B+ -> K+ S for ``K_x``, B0 -> K*0 S with K*0 -> K+ pi- for ``Kst_x`` (the paper's POI includes
  BR(K*0 -> K+ pi-)); its binomial error with the weights' effective count;
* resolution = 68 % half-width of the selected M_red (0.1 MeV bins) within 0.2 GeV of the true M_red, and
  the median's shift from it.

``SignalGrid`` reads the artefact and interpolates linearly in m_S between grid points (the efficiency
falls to 0 at the kinematic limit m_B - m_K(*), which is added as a grid point; the resolution is held
flat beyond the outermost points). The artefact (``models/bkscalar_signal_grid.json``) records its schema
version, the command that made it, the code version and the samples. Build (about 8 minutes on one core):

    .venv/bin/python -m belle_rare.analyses.bkscalar_grid --out models/bkscalar_signal_grid.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import awkward as ak
import numpy as np

from belle_rare.core.atomic import write_json
from belle_rare.core.parallel import parallel_map
from belle_rare.core.provenance import code_version
from belle_rare.core.units import pdg_mass
from belle_rare.processors.bkscalar import DAUGHTER_MASS, DECAYS, b_mode_of
from belle_rare.processors.lifetime import SCALAR_PDG

SCHEMA_VERSION = 1
ARTEFACT = "bkscalar_signal_grid.json"
#: m_S grid points per S decay (GeV): spread over the scan range, outside each decay's Table I vetoes
GRID_MASSES = {
    "ee": (0.05, 0.3, 0.7, 1.5, 2.2, 2.8, 3.5, 4.2),
    "mumu": (0.25, 0.5, 1.0, 1.5, 2.2, 2.8, 3.5, 4.2),
    "pipi": (0.3, 0.6, 1.0, 1.4, 2.2, 2.6, 3.3, 4.2),
    "KK": (1.1, 1.4, 1.6, 2.2, 2.6, 3.3, 3.9, 4.4),
}
GENERATED_CTAU_CM = (10.0, 100.0)
LIFETIMES_CM = (1.0, 10.0, 50.0, 100.0)
PROCESS = {"ee": "sig_bkscalar_ee", "mumu": "sig_bkscalar_mumu", "pipi": "sig_bkscalar_pipi", "KK": "sig_bkscalar_kk"}
B_MASS = {"K": pdg_mass(521), "Kst": pdg_mass(511)}
PARTNER_MASS = {"K": pdg_mass(321), "Kst": pdg_mass(313)}
FINE_BINS = (48000, 0.0, 4.8)  # M_red in 0.1 MeV bins, to measure widths of a few MeV
WINDOW = 0.2  # GeV around the true M_red


def kinematic_limit(channel: str) -> float:
    """Largest m_S of the channel's B mode: m_B - m_K(*)."""
    mode = b_mode_of(channel)
    return B_MASS[mode] - PARTNER_MASS[mode]


def source_ctau(target: float, generated: tuple[float, ...] = GENERATED_CTAU_CM) -> float:
    """The generated c tau a target lifetime is reweighted from: the shortest with c tau_gen >= target / 2
    (the weights' variance is finite only there; the shortest keeps the effective count highest)."""
    ok = [g for g in sorted(generated) if target <= 2.0 * g]
    if not ok:
        raise ValueError(f"c tau {target} cm needs a sample generated at >= {target / 2} cm")
    return ok[0]


# ------------------------------------------------------------------------------------------ building
def signal_decays(events: ak.Array) -> dict[str, int]:
    """Produced signal decays per B mode, from the truth record: ``K`` (B+- -> K+- S) and ``Kst``
    (B0 -> K*0 S with the K*0 -> K+ pi-: a kaon whose mother is a K*0 whose mother is the S's mother)."""
    mc = events.MCParticle
    pdg, mother = mc.PDG, mc.motherIndex
    safe = ak.where(mother >= 0, mother, 0)
    is_s = (np.abs(pdg) == SCALAR_PDG) & (mother >= 0)
    s_mother = ak.firsts(safe[is_s])
    s_mother_pdg = np.abs(ak.to_numpy(ak.fill_none(ak.firsts(np.abs(pdg[safe])[is_s]), 0)))
    grand = safe[safe]
    kaon_from_kstar = (np.abs(pdg) == 321) & (mother >= 0) & (np.abs(pdg[safe]) == 313) & (grand == ak.fill_none(s_mother, -1))
    kst = ak.to_numpy(ak.any(kaon_from_kstar, axis=1)) & (s_mother_pdg == 511)
    return {"K": int(np.sum(s_mother_pdg == 521)), "Kst": int(np.sum(kst))}


def _half_width(centres: np.ndarray, weights: np.ndarray, variances: np.ndarray) -> tuple[float, float, float]:
    """(68 % half-width, median, effective entries (sum w)^2 / sum w^2) of a weighted histogram."""
    w = np.clip(weights, 0.0, None)
    total = w.sum()
    if total <= 0:
        return float("nan"), float("nan"), 0.0
    cdf = np.cumsum(w) / total
    lo, med, hi = np.interp([0.16, 0.5, 0.84], cdf, centres)
    n_eff = total**2 / max(float(np.sum(variances)), 1e-300)
    return float(0.5 * (hi - lo)), float(med), float(n_eff)


@dataclass(frozen=True)
class GridSample:
    decay: str
    mass: float
    ctau: float
    events: int
    seed: int
    workdir: str


def run_sample(sample: GridSample) -> dict:
    """Generate one grid sample, run the bkscalar processor on it (fine M_red bins, the grid lifetimes
    reweighted from this c tau), and return per channel and lifetime the sums the grid needs."""
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.registry import get_search
    from belle_rare.processors.schema import BelleSchema
    from belle_rare.simulation.production import Request, produce

    out = Path(sample.workdir) / f"{sample.decay}_{sample.mass:g}_{sample.ctau:g}"
    manifest = produce(Request(experiment="belle2", process=PROCESS[sample.decay], events=sample.events, seed=sample.seed,
                               out=out, parameters={"mass": sample.mass, "ctau": sample.ctau}), progress=False)
    search = get_search("bkscalar")
    cfg = search.load_config()
    targets = [t for t in LIFETIMES_CM if source_ctau(t) == sample.ctau]
    cfg = cfg.model_copy(update={"lifetimes_cm": targets,
                                 "histograms": cfg.histograms.model_copy(update={"m_reduced": FINE_BINS})})
    processor = search.processor("belle2", cfg)
    produced = {"K": 0, "Kst": 0}
    sums: dict[tuple[str, float], np.ndarray] = {}
    centres = None
    for f in manifest["files"]:
        path = str(out / f["path"])
        events = NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, mode="eager", metadata={
            "dataset": "grid", "filename": path, "kind": "signal", "parameters": {"mass": sample.mass, "ctau": sample.ctau}}).events()
        for mode, n in signal_decays(events).items():
            produced[mode] += n
        h = processor.process(events)["histograms"]["grid"]["m_reduced"]
        centres = h.axes["m_reduced"].centers
        for channel in (f"K_{sample.decay}", f"Kst_{sample.decay}"):
            if channel not in h.axes["channel"]:
                continue
            for t in targets:
                view = h[{"channel": channel, "region": f"SR_ctau{t:g}"}].view()
                acc = sums.setdefault((channel, t), np.zeros((2, len(view))))
                acc[0] += view.value
                acc[1] += view.variance
    m_red_true = math.sqrt(max(sample.mass**2 - 4 * DAUGHTER_MASS[sample.decay] ** 2, 0.0))
    rows = []
    for channel in (f"K_{sample.decay}", f"Kst_{sample.decay}"):
        n_produced = produced[b_mode_of(channel)]
        for t in targets:
            value, variance = sums.get((channel, t), np.zeros((2, 1)))
            total, total_var = float(value.sum()), float(variance.sum())
            if centres is not None and len(value) == len(centres):
                near = np.abs(centres - m_red_true) < WINDOW
                sigma, median, n_eff = _half_width(centres[near], value[near], variance[near])
            else:
                sigma, median, n_eff = float("nan"), float("nan"), 0.0
            eff = total / n_produced if n_produced else float("nan")
            # the selected weights' Poisson error sqrt(sum w^2) / N (binomial to within 1 - eff, a few %)
            err = math.sqrt(total_var) / n_produced if n_produced else float("nan")
            rows.append({"channel": channel, "lifetime_cm": t, "mass": sample.mass, "m_reduced": m_red_true,
                         "efficiency": eff, "efficiency_error": err, "produced": n_produced, "selected_weighted": total,
                         "resolution": sigma, "resolution_error": sigma / math.sqrt(2 * n_eff) if n_eff > 1 else float("nan"),
                         "peak_shift": median - m_red_true if np.isfinite(median) else float("nan"),
                         "effective_entries": n_eff, "generated_ctau_cm": sample.ctau})
    return {"rows": rows, "generated": manifest["events"], "seconds": manifest.get("wall_seconds")}


def build_grid(events: int, seed: int, workers: int = 1, masses: dict[str, tuple[float, ...]] | None = None,
               decays: tuple[str, ...] = DECAYS, workdir: str | Path | None = None, command: str = "") -> dict:
    """Generate and process the grid; returns the artefact document."""
    masses = masses or GRID_MASSES
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bkscalar-grid-", dir=workdir) as tmp:
        samples = [GridSample(x, m, c, events, seed + 1000 * i + 10 * j + k, tmp)
                   for i, x in enumerate(decays) for j, m in enumerate(masses[x]) for k, c in enumerate(GENERATED_CTAU_CM)]
        results = parallel_map(run_sample, samples, workers=workers)
    channels: dict[str, dict[str, dict[str, list]]] = {}
    for res in results:
        for row in res["rows"]:
            curve = channels.setdefault(row["channel"], {}).setdefault(f"{row['lifetime_cm']:g}", {})
            for key, value in row.items():
                if key not in ("channel", "lifetime_cm"):
                    curve.setdefault(key, []).append(value)
    for curves in channels.values():  # every curve sorted in mass
        for name, curve in curves.items():
            order = np.argsort(curve["mass"])
            curves[name] = {k: [v[i] for i in order] for k, v in curve.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "search": "bkscalar",
        "experiment": "belle2",
        "command": command,
        "code_version": code_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(time.perf_counter() - start, 1),
        "events_per_sample": events,
        "seed": seed,
        "generated_ctau_cm": list(GENERATED_CTAU_CM),
        "lifetimes_cm": list(LIFETIMES_CM),
        "masses": {x: list(masses[x]) for x in decays},
        "method": "efficiency = selected (weighted) / produced B -> K S (K) or B0 -> K*0(-> K+ pi-) S (Kst) decays of the "
                  "truth record; resolution = 68 % half-width of M_red (0.1 MeV bins, +-0.2 GeV around the true value); "
                  "lifetimes reweighted from the shortest generated c tau >= c tau / 2",
        "channels": channels,
    }


# ------------------------------------------------------------------------------------------ reading
class SignalGrid:
    """The artefact, interpolated: ``efficiency(channel, lifetime, m_s)`` and ``resolution(...)``."""

    def __init__(self, document: dict, source: str = "") -> None:
        if document.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"{source or 'signal grid'}: schema_version {document.get('schema_version')}, "
                             f"this code reads {SCHEMA_VERSION}; rebuild it (python -m belle_rare.analyses.bkscalar_grid)")
        self.document = document
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SignalGrid":
        """The artefact at ``path`` (default: the shipped ``belle_rare.models`` one)."""
        path = Path(path) if path is not None else Path(str(resources.files("belle_rare.models").joinpath(ARTEFACT)))
        return cls(json.loads(path.read_text()), str(path))

    @property
    def channels(self) -> list[str]:
        return sorted(self.document["channels"])

    def lifetimes(self, channel: str) -> list[float]:
        return sorted(float(k) for k in self.document["channels"][channel])

    def curve(self, channel: str, lifetime_cm: float) -> dict[str, np.ndarray]:
        try:
            raw = self.document["channels"][channel][f"{lifetime_cm:g}"]
        except KeyError:
            raise KeyError(f"{self.source}: no grid for channel {channel}, c tau {lifetime_cm:g} cm "
                           f"(has {', '.join(self.channels)}; lifetimes {self.document.get('lifetimes_cm')})") from None
        return {k: np.asarray(v, dtype=float) for k, v in raw.items()}

    def efficiency(self, channel: str, lifetime_cm: float, m_s: np.ndarray) -> np.ndarray:
        """Linear in m_S between grid points, 0 at the kinematic limit and beyond; flat below the first."""
        c = self.curve(channel, lifetime_cm)
        ok = np.isfinite(c["efficiency"])
        limit = kinematic_limit(channel)
        x = np.append(c["mass"][ok], limit)
        y = np.append(c["efficiency"][ok], 0.0)
        keep = x <= limit
        m = np.asarray(m_s, float)
        return np.where(m < limit, np.interp(m, x[keep], y[keep]), 0.0)

    def resolution(self, channel: str, lifetime_cm: float, m_s: np.ndarray) -> np.ndarray:
        """M_red resolution (GeV), linear in m_S between grid points with a measured width, flat beyond."""
        c = self.curve(channel, lifetime_cm)
        ok = np.isfinite(c["resolution"]) & (c["effective_entries"] >= 10)
        return np.interp(np.asarray(m_s, float), c["mass"][ok], c["resolution"][ok])


@lru_cache(maxsize=4)
def shipped_grid() -> SignalGrid:
    return SignalGrid.load()


# ------------------------------------------------------------------------------------------ CLI
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m belle_rare.analyses.bkscalar_grid", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="artefact JSON (e.g. models/bkscalar_signal_grid.json)")
    ap.add_argument("--events", type=int, default=2500, help="events per generated sample (default 2500)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--decays", default=",".join(DECAYS), help="comma-separated S decays (default all four)")
    ap.add_argument("--masses", type=int, default=None, help="keep only the first N grid masses per decay (tiny grids)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the temporary samples go (default /tmp)")
    args = ap.parse_args(argv)
    decays = tuple(d for d in args.decays.split(",") if d)
    unknown = [d for d in decays if d not in DECAYS]
    if unknown:
        ap.error(f"unknown S decay(s) {unknown}; known: {', '.join(DECAYS)}")
    masses = {x: GRID_MASSES[x][: args.masses] if args.masses else GRID_MASSES[x] for x in decays}
    command = "python -m belle_rare.analyses.bkscalar_grid " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    document = build_grid(args.events, args.seed, args.workers, masses, decays, args.workdir, command)
    write_json(args.out, document)
    print(f"wrote {args.out} ({sum(len(v) for v in document['masses'].values())} masses x {len(GENERATED_CTAU_CM)} c tau, "
          f"{document['build_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

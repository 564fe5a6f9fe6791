"""Pythia 8 generation at the B factories, columnar: ``Pythia.nextBatch`` hands back awkward arrays.

Two set-ups:
- e+e- -> f fbar (tau pairs, continuum, mu pairs): Pythia's own beams, in the laboratory frame
  (``Beams:frameType = 3`` with the crossing angle) with the beam-energy spread;
- Upsilon(4S) -> B Bbar: Pythia has no e+e- -> Upsilon(4S) process, so the resonance is written to
  a Les Houches file in the laboratory frame (per-event beam energies) and decayed by Pythia.

Signals force one particle (the tau, the B) into the signal channel through Pythia's particle data
(channel on/off mode 2 = particle only, 3 = antiparticle only); which of particle and antiparticle
carries the signal alternates between chunks so both charges are represented.
"""

from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

import awkward as ak
import numpy as np
import particle

from belle_rare.configs.experiment import Experiment
from belle_rare.configs.processes import Catalogue, ForcedDecay, GammaStarMass, Process, TauDecayEnhancement
from belle_rare.simulation.beams import nominal_beam, sample_beams, sample_interaction_points
from belle_rare.simulation.generators.biased_decays import enhanced_table, tau_decay_weights
from belle_rare.simulation.generators.lhef import write_lhef
from belle_rare.simulation.truth import truth_from_flat

MM_TO_CM = 0.1
UPSILON4S = 300553
# Pythia's seed range is 0..900_000_000
_MAX_SEED = 900_000_000


# Settings for events that come in from a Les Houches file in the laboratory frame: no beam
# remnants or showers off the beams. Pythia's event check and its in/out momentum matching assume
# the nominal beams of the file header, which the per-event beam spread and crossing angle violate
# by design (conservation is checked in tests/test_generators.py instead).
LHEF_SETTINGS = [
    "PDF:lepton = off",
    "PartonLevel:ISR = off",
    "PartonLevel:MPI = off",
    "Check:event = off",
    "LesHouches:matchInOut = off",
]


@lru_cache(maxsize=None)
def _antiparticle(pdg: int) -> int:
    """PDG code of the antiparticle (the same code for self-conjugate or unknown particles)."""
    try:
        return int(particle.Particle.from_pdgid(pdg).invert().pdgid)
    except Exception:  # new particles (the scalar S) are self-conjugate here
        return pdg


def _mass(pdg: int) -> float:
    return particle.Particle.from_pdgid(pdg).mass / 1000.0


def beam_settings(exp: Experiment) -> list[str]:
    """Lab-frame e+e- beams with crossing angle and energy spread (Pythia's BeamShape)."""
    her, ler = exp.beam_four_momenta
    return [
        "Beams:idA = 11",
        "Beams:idB = -11",
        "Beams:frameType = 3",
        f"Beams:pxA = {her[1]:.9f}",
        f"Beams:pzA = {her[3]:.9f}",
        f"Beams:pxB = {ler[1]:.9f}",
        f"Beams:pzB = {ler[3]:.9f}",
        "Beams:allowMomentumSpread = on",
        "Beams:sigmaPxA = 0.",
        "Beams:sigmaPyA = 0.",
        f"Beams:sigmaPzA = {exp.her.energy_spread}",
        "Beams:sigmaPxB = 0.",
        "Beams:sigmaPyB = 0.",
        f"Beams:sigmaPzB = {exp.ler.energy_spread}",
    ]


def tau_table_settings(catalogue: Catalogue, enhancement: TauDecayEnhancement | None = None) -> list[str]:
    """Replace Pythia's tau- decay table by the catalogue's (used with ``TauDecays:mode = 0``),
    with the channels of a biased production enhanced (Pythia picks channels in proportion)."""
    lines = []
    for i, (bf, me_mode, products) in enumerate(enhanced_table(catalogue.tau_decays, enhancement)):
        verb = "oneChannel" if i == 0 else "addChannel"
        lines.append(f"15:{verb} = 1 {bf} {me_mode} " + " ".join(str(p) for p in products))
    return lines


def forced_decay_settings(forced: ForcedDecay, on_antiparticle: bool) -> list[str]:
    """Force the particle (or antiparticle) into ``forced.products``; its partner decays generically."""
    # generic channels stay open for the partner only; the new channel only for the signal side
    generic_mode, signal_mode = (2, 3) if on_antiparticle else (3, 2)
    lines = [f"{forced.particle}:onMode = {generic_mode}"]
    for products in forced.channels:  # equally likely forced channels (one unless ``alternatives``)
        listed = " ".join(str(p) for p in products)
        lines.append(f"{forced.particle}:addChannel = {signal_mode} 1.0 {forced.me_mode} {listed}")
    return lines


def gamma_star_mass_settings(mass: GammaStarMass) -> list[str]:
    """The gamma* mass window of ``ffbar2gmZ``: Pythia takes the tighter of the resonance's
    (``23:mMin`` / ``mMax``; mMin is 10 GeV by default, which keeps every photon of ISR below 0.56 GeV in
    the CM at 10.58 GeV) and the phase space's (``PhaseSpace:mHatMin`` / ``mHatMax``, mHatMin 4 GeV by default)."""
    lines = [f"23:mMin = {mass.min}", f"PhaseSpace:mHatMin = {mass.min}"]
    if mass.max is not None:
        lines += [f"23:mMax = {mass.max}", f"PhaseSpace:mHatMax = {mass.max}"]
    return lines


def scalar_settings(proc: Process, mass: float, ctau_cm: float) -> list[str]:
    """Declare the long-lived scalar S with its mass, lifetime and the kinematically open decays."""
    assert proc.scalar is not None
    pdg = proc.scalar.pdg
    open_decays = [d for d in proc.scalar.decays if sum(_mass(abs(p)) for p in d) < mass]
    if not open_decays:
        raise ValueError(f"--mass {mass} GeV: no decay of S into {proc.scalar.decays} is open")
    lines = [f"{pdg}:new = S void 1 0 0 {mass} 0. 0. 0. {ctau_cm / MM_TO_CM}", f"{pdg}:mayDecay = on", f"{pdg}:isResonance = off"]
    for i, products in enumerate(open_decays):
        verb = "oneChannel" if i == 0 else "addChannel"
        lines.append(f"{pdg}:{verb} = 1 {1.0 / len(open_decays)} 0 " + " ".join(str(p) for p in products))
    return lines


def upsilon4s_settings(exp: Experiment, b_pair: str) -> list[str]:
    """Declare the Upsilon(4S) with its B Bbar channels (charged fraction from the experiment config)."""
    ups = particle.Particle.from_pdgid(UPSILON4S)
    m, width = ups.mass / 1000.0, ups.width / 1000.0
    f_charged = {"charged": 1.0, "neutral": 0.0, "both": exp.upsilon4s_charged_fraction}[b_pair]
    lines = [f"{UPSILON4S}:new = Upsilon(4S) void 3 0 0 {m} {width} {m - 0.05} {m + 0.05} 0."]
    channels = [(f_charged, "521 -521"), (1.0 - f_charged, "511 -511")]
    first = True
    for bf, products in channels:
        if bf <= 0:
            continue
        lines.append(f"{UPSILON4S}:{'oneChannel' if first else 'addChannel'} = 1 {bf} 0 {products}")
        first = False
    lines += [f"{UPSILON4S}:mayDecay = on", *LHEF_SETTINGS, "PartonLevel:FSR = off"]
    return lines


def signal_index(prt: ak.Array, forced: list[tuple[ForcedDecay, bool]]) -> np.ndarray:
    """Index of the (last copy of the) particle that decayed into a forced signal channel, -1 if none."""
    n = len(prt)
    result = np.full(n, -1, dtype=np.int64)
    nprt = ak.num(prt.id)
    for fd, on_anti, products in ((fd, a, ch) for fd, a in forced for ch in fd.channels):
        sign = -1 if on_anti else 1
        pid = fd.particle * sign
        wanted = sorted(_antiparticle(p) if on_anti else p for p in products)
        d1, d2 = prt.daughter1, prt.daughter2
        cand = (prt.id == pid) & (d1 > 0) & (d2 - d1 + 1 == len(wanted))
        # daughters' ids as a sorted tuple must equal the wanted products
        daughter_ids = [prt.id[ak.where(cand, d1 + k, 0) % ak.broadcast_arrays(nprt, d1)[0]] for k in range(len(wanted))]
        stacked = np.sort(np.stack([ak.to_numpy(ak.flatten(d)) for d in daughter_ids], axis=1), axis=1)
        match = np.all(stacked == np.array(wanted), axis=1)
        cand = cand & ak.unflatten(match, nprt)
        has = ak.to_numpy(ak.any(cand, axis=1))
        first = ak.to_numpy(ak.fill_none(ak.argmax(cand, axis=1), -1))
        result = np.where((result < 0) & has, first, result)
    return result


def _flat_record(prt: ak.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-event offsets and flat numpy columns of Pythia's event record (missing ``vProd`` -> 0).

    Read off the layout: awkward's jagged arithmetic and ``fill_none`` on this record cost as much
    as the detector's tracking step.
    """
    layout = ak.to_layout(prt).to_ListOffsetArray64(True)
    offsets = np.asarray(layout.offsets.data, dtype=np.int64)
    record = layout.content[: int(offsets[-1])]
    columns = {name: np.asarray(record.content(name).data) for name in ("id", "status", "mother1", "m")}
    momentum = record.content("p")
    columns |= {f"p_{c}": np.asarray(momentum.content(c).data) for c in ("px", "py", "pz", "e")}
    # Pythia leaves vProd missing for particles made at the origin
    vertex = record.content("vProd")
    for c in ("px", "py", "pz", "e"):
        if isinstance(vertex, ak.contents.IndexedOptionArray) and len(vertex.content) > 0:
            index = np.asarray(vertex.index.data)
            values = np.asarray(vertex.content.content(c).data)
            columns[f"v_{c}"] = np.where(index >= 0, values[np.maximum(index, 0)], 0.0)
        else:
            columns[f"v_{c}"] = ak.to_numpy(ak.fill_none(ak.Array(vertex)[c], 0.0)).astype(np.float64)
    return offsets, columns


def prt_to_truth(prt: ak.Array, exp: Experiment, rng: np.random.Generator, sig_index: np.ndarray) -> ak.Array:
    """Pythia's event record (mm) -> the project's truth record (cm, beam spot, nominal beams)."""
    n = len(prt)
    ip = sample_interaction_points(exp, n, rng)
    offsets, col = _flat_record(prt)
    event = np.repeat(np.arange(n), np.diff(offsets))
    mc = {
        "pdg": col["id"],
        "status": col["status"],
        "mother": np.where(col["mother1"] > 0, col["mother1"], -1),
        "px": col["p_px"],
        "py": col["p_py"],
        "pz": col["p_pz"],
        "E": col["p_e"],
        "mass": col["m"],
        "x": col["v_px"] * MM_TO_CM + ip[event, 0],
        "y": col["v_py"] * MM_TO_CM + ip[event, 1],
        "z": col["v_pz"] * MM_TO_CM + ip[event, 2],
        "t": col["v_e"] * MM_TO_CM,
    }
    return truth_from_flat(offsets, mc, nominal_beam(exp, n), signal_index=sig_index)


def next_batch(pythia, n: int) -> ak.Array:
    """``n`` events from an initialised Pythia as its awkward event record."""
    batch = pythia.nextBatch(n)
    if len(batch) != n:
        raise RuntimeError(f"Pythia returned {len(batch)} of {n} requested events")
    return batch.prt


def run_on_lhef(pythia, path: Path, n: int) -> ak.Array:
    """(Re-)initialise ``pythia`` on the Les Houches file ``path`` and process its ``n`` events."""
    for line in ("Beams:frameType = 4", f"Beams:LHEF = {path}"):
        pythia.readString(line)
    if not pythia.init():
        raise RuntimeError(f"Pythia failed to initialise on the Les Houches file {path}")
    return next_batch(pythia, n)


@lru_cache(maxsize=1)
def _pristine_pythia():
    """A Pythia instance with the default settings and particle data, never modified or run.

    Constructing Pythia parses its XML databases (~50 ms, a tenth of a 10,000-event tau-pair chunk);
    new instances copy this one's databases instead (Pythia's ``Pythia(Settings&, ParticleData&)``
    constructor copies them, tests/test_production_speed.py checks the events are identical).
    """
    import pythia8mc  # heavy import, only where Pythia runs

    return pythia8mc.Pythia("", False)


def make_pythia(settings: list[str], process: str):
    """A quiet Pythia instance with ``settings`` read in; a rejected line names the process."""
    import pythia8mc

    pristine = _pristine_pythia()
    pythia = pythia8mc.Pythia(pristine.settings, pristine.particleData, False)
    for line in settings:
        if not pythia.readString(line):
            raise ValueError(f"Pythia rejected setting '{line}' for process '{process}'")
    return pythia


class PythiaGenerator:
    """One Pythia instance for one chunk: ``generate(n)`` returns a truth record in the lab frame."""

    def __init__(
        self,
        catalogue: Catalogue,
        process: str,
        exp: Experiment,
        seed: int,
        chunk_index: int = 0,
        parameters: dict[str, float] | None = None,
    ) -> None:
        self.proc = catalogue.get(process)
        self._tau_table = catalogue.tau_decays
        self.exp = exp
        self.seed = seed
        self.rng = np.random.default_rng([seed, 1])
        self._spin_rng = np.random.default_rng([seed, 5])  # tau spin correlations (tau_spin.py), if on
        self._fsr_rng = np.random.default_rng([seed, 7])  # FSR in tau decays (decay_fsr.py), if on
        self._tmp = tempfile.TemporaryDirectory(prefix="belle-rare-lhef-")
        on_anti = chunk_index % 2 == 1
        self.forced: list[tuple[ForcedDecay, bool]] = [
            (fd, on_anti) for fd in (self.proc.forced_decay, self.proc.forced_decay_charged) if fd is not None
        ]
        params = {**self.proc.parameters, **(parameters or {})}
        self.settings = [
            *catalogue.pythia_common,
            *tau_table_settings(catalogue, self.proc.tau_decay_enhancement),
            "Random:setSeed = on",
            f"Random:seed = {seed % _MAX_SEED + 1}",
        ]
        if self.proc.generator == "upsilon4s":
            self.settings += upsilon4s_settings(exp, self.proc.b_pair or "both")
        else:
            self.settings += beam_settings(exp)
        if self.proc.scalar is not None:
            self.settings += scalar_settings(self.proc, params["mass"], params["ctau"])
        self.settings += catalogue.pythia_settings(process)
        mass_slice = catalogue.gamma_star_mass(process)
        if mass_slice is not None:
            self.settings += gamma_star_mass_settings(mass_slice)
        for fd, anti in self.forced:
            self.settings += forced_decay_settings(fd, anti)
        self._pythia = make_pythia(self.settings, process)
        if self.proc.generator != "upsilon4s" and not self._pythia.init():
            raise RuntimeError(f"Pythia failed to initialise for process '{process}'")

    def _upsilon4s_file(self, n: int) -> Path:
        """Upsilon(4S) at the per-event beam four-momentum, written as LHEF."""
        her, ler = sample_beams(self.exp, n, self.rng)
        p4 = np.stack([her, ler, her + ler], axis=1)
        path = Path(self._tmp.name) / f"y4s_{self.seed}.lhe"
        mothers = np.array([[0, 0], [0, 0], [1, 2]])
        status = np.array([-1, -1, 2])
        pdg = np.array([11, -11, UPSILON4S])
        scale = np.sqrt(p4[:, 2, 3] ** 2 - np.sum(p4[:, 2, :3] ** 2, axis=1))
        write_lhef(path, pdg, status, mothers, p4, (self.exp.her.energy, self.exp.ler.energy), scale)
        return path

    def generate(self, n: int) -> ak.Array:
        """``n`` events as a truth record (simulation/truth.py)."""
        if self.proc.generator == "upsilon4s":
            prt = run_on_lhef(self._pythia, self._upsilon4s_file(n), n)
        else:
            prt = next_batch(self._pythia, n)
        if self.proc.tau_spin_correlations:  # off by default; its own random stream (no other changes)
            from belle_rare.simulation.generators.tau_spin import correlate_tau_pairs

            prt = correlate_tau_pairs(prt, self._spin_rng)
        truth = prt_to_truth(prt, self.exp, self.rng, signal_index(prt, self.forced))
        if self.proc.tau_decay_enhancement is not None:  # biased production: true / biased channel probability
            weight = tau_decay_weights(truth.mc, self._tau_table, self.proc.tau_decay_enhancement)
            truth = ak.with_field(truth, weight, "weight")
        if self.proc.tau_decay_fsr:  # after the weights (they identify tau channels by their daughters); own stream
            from belle_rare.simulation.generators.decay_fsr import radiate_tau_decays

            truth = radiate_tau_decays(truth, self._fsr_rng)
        return truth

    def close(self) -> None:
        self._tmp.cleanup()

    def cross_section_nb(self) -> float:
        """Pythia's own estimate (Born level for gamma* processes; for the record only)."""
        return float(self._pythia.infoPython().sigmaGen() * 1e6)

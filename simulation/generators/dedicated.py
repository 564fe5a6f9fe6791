"""Generators for what Pythia does not cover: Bhabha scattering, e+e- -> mu mu Z' and two-photon lepton pairs.

The hard process is sampled here (``bhabha.py``, ``zprime.py``, ``two_photon.py``) at each event's own CM energy after
ISR (``isr.py``: one photon, Kuraev-Fadin energy, first-order polar angle, recoil taken by the hard system), boosted into the laboratory and handed to Pythia through a Les Houches
file for QED final-state radiation, so that radiation off the leptons is Pythia's.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np

from belle_rare.configs.experiment import Experiment
from belle_rare.configs.processes import Catalogue, Process
from belle_rare.core.units import pdg_mass
from belle_rare.simulation.beams import sample_beams
from belle_rare.simulation.generators import bhabha, biased_decays, two_photon, zprime
from belle_rare.simulation.generators.isr import ELECTRON_MASS, IsrSlice, sample_isr
from belle_rare.simulation.generators.lhef import write_lhef
from belle_rare.simulation.generators.phase_space import boost, decay_two_body, isotropic_directions
from belle_rare.simulation.generators.pythia import (
    LHEF_SETTINGS, _MAX_SEED, make_pythia, prt_to_truth, run_on_lhef, tau_table_settings,
)

ZPRIME_PDG = 32  # invisible: written as a stable final-state particle
# Bhabha generated for 10 deg < theta* < 170 deg (the acceptance of the Physics Book's 300 nb)
BHABHA_THETA_MIN_DEG = 10.0
# hardest ISR generated: half the beam energy (harder ISR leaves nothing that passes any selection;
# the radiator is truncated there: 3.5 % of it, isr.radiator_integral(0.5, 1, beta), is not generated)
BHABHA_ISR_X_MAX = 0.5


def _scattered_lepton_fsr_veto():
    """A Pythia user hook that vetoes QED FSR emissions whose radiator or recoiler is a scattered beam lepton.

    Pythia's QED shower pairs the two scattered e+- of a two-photon event (written 2nd and 3rd after the
    ISR photon: event entries 6 and 7) with each other or with the pair, as final-state dipoles of up to
    10 GeV, whose hard emissions and recoil kick them out of the beam pipe (fake tags). Their real
    radiation belongs to t-channel dipoles with the incoming beam (mass^2 = -Q^2): collinear and soft
    for almost all events, so it is left out. The l+ l- pair keeps its own FSR.
    """
    import pythia8mc  # heavy import, only where Pythia runs

    class ScatteredLeptonFsrVeto(pythia8mc.UserHooks):
        scattered = (6, 7)   # 0 system, 1-2 beams, 3-4 incoming, 5 ISR photon, 6 e-, 7 e+, 8-9 pair
        last_hard = 9

        def canVetoFSREmission(self) -> bool:  # noqa: N802 - Pythia's name
            return True

        def doVetoFSREmission(self, size_old: int, event, i_sys: int, in_resonance: bool) -> bool:  # noqa: N802
            for i in (size_old, size_old + 2):  # the new radiator and the new recoiler (the photon is size_old + 1)
                if i >= event.size():
                    continue
                while i > self.last_hard:
                    i = event[i].mother1()
                if i in self.scattered:
                    return True
            return False

    return ScatteredLeptonFsrVeto()


def zprime_model(proc: Process, mass: float) -> zprime.ZprimeModel:
    """The Z' of a zprime process (its ``zprime_model`` block) at ``mass`` (GeV)."""
    cfg = proc.zprime_model
    return zprime.ZprimeModel(mass=mass, width=cfg.width_over_mass * mass, model=cfg.invisible,
                              coupling=cfg.coupling, alpha=1.0 / cfg.alpha_em_inverse)


def zprime_sampler(proc: Process, mass: float, exp: Experiment, rng: np.random.Generator) -> zprime.ZprimeSampler:
    """The hard-process sampler of a zprime process, tabulated up to the highest sqrt(s) the beams reach
    (nominal + 5 x the beam-energy spread of sqrt(s): Gaussian spread, never exceeded in practice)."""
    return zprime.ZprimeSampler(zprime_model(proc, mass), zprime_sqrt_s_max(exp), rng)


def zprime_sqrt_s_max(exp: Experiment) -> float:
    # relative spread of sqrt(s) = 2 sqrt(E_her E_ler): half the beams' relative spreads in quadrature
    spread = exp.sqrt_s / 2 * math.hypot(exp.her.energy_spread / exp.her.energy, exp.ler.energy_spread / exp.ler.energy)
    return exp.sqrt_s + 5 * spread


def zprime_isr_x_max(exp: Experiment, mass: float) -> float:
    """Hardest ISR photon generated for a zprime sample: 0.9 of the way to the mu mu Z' threshold."""
    threshold = mass + 2 * zprime.MUON_MASS
    return 0.9 * (1.0 - (threshold / exp.sqrt_s) ** 2)


class DedicatedGenerator:
    """Bhabha, mu mu Z' or two-photon events; ``generate(n)`` returns a truth record in the lab frame."""

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
        self.exp = exp
        self.seed = seed
        self.params = {**self.proc.parameters, **(parameters or {})}
        self.rng = np.random.default_rng([seed, 2])
        # ISR photons from their own stream, so that the hard process's draws do not depend on them
        self.isr_rng = np.random.default_rng([seed, 3])
        self._fsr_rng = np.random.default_rng([seed, 7])  # FSR in tau decays (decay_fsr.py), if on
        self._tmp = tempfile.TemporaryDirectory(prefix="belle-rare-lhef-")
        self.settings = [
            *catalogue.pythia_common,
            "Random:setSeed = on",
            f"Random:seed = {seed % _MAX_SEED + 1}",
            *LHEF_SETTINGS,
            "PartonLevel:FSR = on",
            # leptons are written with their masses; Pythia must not reshuffle them
            "LesHouches:setLeptonMass = 0",
            # FSR recoils inside the final state: the beams are not in the shower (no ISR here)
            "TimeShower:allowBeamRecoil = off",
            f"{ZPRIME_PDG}:mayDecay = off",
        ]
        self._isr_slice = None
        if self.proc.generator == "isr_pair":
            # e+e- -> gamma_ISR gamma* (-> f fbar) on a gamma* mass slice; taus decayed by Pythia through the
            # catalogue's tau table, spin-correlated after (tau_spin.py) on their own stream
            mass = self.proc.gamma_star_mass
            assert mass is not None and mass.max is not None
            self._fermion = mass.fermion
            self._fermion_mass = pdg_mass(mass.fermion)
            bias = self.proc.isr_central_enhancement
            self._isr_slice = IsrSlice(exp.sqrt_s, self._fermion_mass, mass.min, mass.max,
                                       None if bias is None else (bias.cos_theta_max, bias.share))
            self.settings += tau_table_settings(catalogue)
            self._spin_rng = np.random.default_rng([seed, 5])
        self._pythia = make_pythia(self.settings, process)
        self._zprime = zprime_sampler(self.proc, self.params["mass"], exp, self.rng) if self.proc.generator == "zprime" else None
        self._fsr_veto = None
        if self.proc.generator == "two_photon":
            self._fsr_veto = _scattered_lepton_fsr_veto()  # kept referenced: Pythia holds only a pointer
            self._pythia.setUserHooksPtr(self._fsr_veto)

    def _hard_process(self, hard: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], np.ndarray | None]:
        """Outgoing particles' PDG codes and CM-frame four-momenta for hard systems ``hard`` (n, 4),
        and the per-event weights of a biased production (None: unweighted)."""
        n = len(hard)
        sqrt_s = np.sqrt(hard[:, 3] ** 2 - np.sum(hard[:, :3] ** 2, axis=1))
        if self.proc.generator == "bhabha":
            c_max = math.cos(math.radians(BHABHA_THETA_MIN_DEG))
            bias = self.proc.bhabha_central_enhancement
            cos_theta = bhabha.sample_cos_theta(
                n, self.exp.sqrt_s, -c_max, c_max, self.rng,
                central_enhancement=None if bias is None else (bias.cos_theta_max, bias.factor),
            )
            weight = None
            if bias is not None:
                fraction = biased_decays.central_fraction(self.exp.sqrt_s, -c_max, c_max, bias.cos_theta_max)
                weight = biased_decays.bhabha_central_weights(cos_theta, fraction, bias)
            # the e- scatters by theta* from the e- beam (+z in the hard frame)
            e_minus, e_plus = decay_two_body(
                sqrt_s, ELECTRON_MASS, ELECTRON_MASS, isotropic_directions(n, self.rng, cos_theta)
            )
            return np.array([11, -11]), [e_minus, e_plus], weight
        if self.proc.generator == "two_photon":
            lepton = int(self.params["lepton"])
            tags = self.proc.two_photon_tag_enhancement
            if tags is not None:  # biased production: tagged beam leptons more often, weighted back
                momenta, weight = two_photon.sample_tag_enhanced_events(
                    sqrt_s, lepton, self.params["w_min"], self.rng, (tags.cos_theta_max, tags.factor, tags.double_factor))
                return np.array([11, -11, lepton, -lepton]), list(momenta), weight
            momenta = two_photon.sample_events(sqrt_s, lepton, self.params["w_min"], self.rng)
            return np.array([11, -11, lepton, -lepton]), list(momenta), None
        mu_minus, mu_plus, zp = self._zprime.sample(sqrt_s, self.rng)
        return np.array([13, -13, ZPRIME_PDG]), [mu_minus, mu_plus, zp], None

    def _isr_x_max(self) -> float:
        if self.proc.generator in ("bhabha", "two_photon"):
            return BHABHA_ISR_X_MAX
        return zprime_isr_x_max(self.exp, self.params["mass"])

    def _zprime_isr(self, her: np.ndarray, ler: np.ndarray, photon: np.ndarray, hard: np.ndarray):
        """Re-draw ISR photons until each is kept with probability sigma_hat(s') / max (zprime.py):
        the events then follow radiator x sigma_hat(s'), not the radiator alone."""
        pending = np.arange(len(hard))
        while pending.size:
            sqrt_s = np.sqrt(np.clip(hard[pending, 3] ** 2 - np.sum(hard[pending, :3] ** 2, axis=1), 0, None))
            keep = self.isr_rng.uniform(size=pending.size) < self._zprime.isr_acceptance(sqrt_s)
            pending = pending[~keep]
            if pending.size:
                b1, b2 = her[pending], ler[pending]
                photon[pending], hard[pending] = sample_isr(b1 + b2, b1, b2, self._isr_x_max(), self.isr_rng)
        return photon, hard

    def _fermion_pair(self, hard: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """f fbar from the gamma* at rest: 1 + cos^2 + (1 - b^2) sin^2 about the e- beam (+z of the hard frame)."""
        n = len(hard)
        m = np.sqrt(hard[:, 3] ** 2 - np.sum(hard[:, :3] ** 2, axis=1))
        b2 = 1.0 - 4.0 * self._fermion_mass**2 / m**2
        cos_theta = np.empty(n)
        pending = np.arange(n)
        while pending.size:  # acceptance >= 1/2
            c = self.rng.uniform(-1.0, 1.0, pending.size)
            keep = self.rng.uniform(0.0, 2.0, pending.size) < 1 + c * c + (1 - b2[pending]) * (1 - c * c)
            cos_theta[pending[keep]] = c[keep]
            pending = pending[~keep]
        f, fbar = decay_two_body(m, self._fermion_mass, self._fermion_mass, isotropic_directions(n, self.rng, cos_theta))
        return np.array([self._fermion, -self._fermion]), [f, fbar]

    def generate(self, n: int) -> ak.Array:
        her, ler = sample_beams(self.exp, n, self.rng)
        if self._isr_slice is not None:
            x, cos_theta, isr_weight = self._isr_slice.sample(n, self.isr_rng)
            photon, hard = sample_isr(her + ler, her, ler, 1.0, self.isr_rng, x=x, cos_theta=cos_theta)
            pdg_out, p4_out = self._fermion_pair(hard)
            weight = None if self.proc.isr_central_enhancement is None else isr_weight
        else:
            photon, hard = sample_isr(her + ler, her, ler, self._isr_x_max(), self.isr_rng)
            if self._zprime is not None:
                photon, hard = self._zprime_isr(her, ler, photon, hard)
            pdg_out, p4_out, weight = self._hard_process(hard)
        p4 = np.stack([her, ler, photon, *(boost(p, hard) for p in p4_out)], axis=1)
        pdg = np.array([11, -11, 22, *pdg_out])
        status = np.array([-1, -1] + [1] * (len(pdg) - 2))
        mothers = np.array([[0, 0], [0, 0]] + [[1, 2]] * (len(pdg) - 2))
        scale = np.sqrt(np.clip(hard[:, 3] ** 2 - np.sum(hard[:, :3] ** 2, axis=1), 0, None))
        path = Path(self._tmp.name) / f"{self.proc.generator}_{self.seed}.lhe"
        write_lhef(path, pdg, status, mothers, p4, (self.exp.her.energy, self.exp.ler.energy), scale)
        prt = run_on_lhef(self._pythia, path, n)
        if self.proc.tau_spin_correlations:
            from belle_rare.simulation.generators.tau_spin import correlate_tau_pairs

            prt = correlate_tau_pairs(prt, self._spin_rng)
        if self.proc.generator == "zprime":
            sig = ak.to_numpy(ak.fill_none(ak.argmax(prt.id == ZPRIME_PDG, axis=1), -1))
        else:
            sig = None
        truth = prt_to_truth(prt, self.exp, self.rng, sig if sig is not None else np.full(n, -1))
        if weight is not None:
            truth = ak.with_field(truth, weight, "weight")
        if self.proc.tau_decay_fsr:  # FSR in the tau decays (decay_fsr.py) on its own stream
            from belle_rare.simulation.generators.decay_fsr import radiate_tau_decays

            truth = radiate_tau_decays(truth, self._fsr_rng)
        return truth

    def close(self) -> None:
        self._tmp.cleanup()

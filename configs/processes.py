"""Schema of the sample catalogue ``configs/processes.yaml``."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import pydantic

from belle_rare.configs.loader import StrictModel, config_path, load_config


class ForcedDecay(StrictModel):
    """One particle (or its antiparticle) forced into ``products`` (given for the particle)."""

    particle: int
    products: list[int] = pydantic.Field(min_length=2)
    # further product lists, each added as a channel as likely as ``products`` (B0 -> D- e+ nu_e or
    # D- mu+ nu_mu): the process's reference branching fraction is then the sum over the channels
    alternatives: list[list[int]] = []
    # Pythia's matrix-element mode of the added channels (0: phase space; 22: its weak-decay matrix
    # element, what Pythia's own semileptonic B channels use, products ordered nu, l, hadron)
    me_mode: int = 0

    @property
    def channels(self) -> list[list[int]]:
        """Every forced product list: ``products`` first, then the ``alternatives``."""
        return [self.products, *self.alternatives]


class Scalar(StrictModel):
    pdg: int
    decays: list[list[int]] = pydantic.Field(min_length=1)


class TauDecayEnhancement(StrictModel):
    """Channels of the ``tau_decays`` table (their tau- products, as listed there) sampled
    ``factor`` times more often than their branching fraction; each event carries the weight
    prod over its taus of (true / biased channel probability), so weighted rates are unbiased."""

    factor: float = pydantic.Field(gt=1)
    channels: list[list[int]] = pydantic.Field(min_length=1)


class BhabhaCentralEnhancement(StrictModel):
    """Bhabha e- scattering angles with |cos theta*| < ``cos_theta_max`` sampled ``factor`` times
    more often than the cross section gives; the weight restores the cross section."""

    factor: float = pydantic.Field(gt=1)
    cos_theta_max: float = pydantic.Field(gt=0, lt=1)


class TwoPhotonTagEnhancement(StrictModel):
    """``two_photon``: events with one (two) scattered e+- inside |cos theta| < ``cos_theta_max`` (their
    hard-process frame) sampled ``factor`` (``double_factor``) times more often than the cross section
    gives; the weight restores it (simulation/generators/two_photon.py ``sample_tag_enhanced_events``)."""

    cos_theta_max: float = pydantic.Field(gt=0, lt=1)
    factor: float = pydantic.Field(gt=1)
    double_factor: float = pydantic.Field(gt=1)


class ZprimeCoupling(StrictModel):
    """The L_mu - L_tau Z' a ``zprime`` sample represents (simulation/generators/lmu_ltau.py): its
    coupling g', which invisible-BR model, its total width as a fraction of its mass (0: negligible)
    and the electromagnetic coupling of the two photon vertices (1 / alpha)."""

    coupling: float = pydantic.Field(gt=0)
    invisible: Literal["vanilla", "fully_invisible"]
    width_over_mass: float = pydantic.Field(default=0.0, ge=0, lt=1)
    alpha_em_inverse: float = pydantic.Field(gt=100, lt=140)


class GammaStarMass(StrictModel):
    """A slice of the e+e- -> gamma* -> f fbar mass (GeV; ``max`` None: up to sqrt(s)) of a Pythia
    ``ffbar2gmZ`` process; the mass sets the ISR energy (m^2 = s (1 - x)). The sample's cross section is
    the keyed one times the slice's share of the Kuraev-Fadin ISR structure function x Born(m^2)
    (``simulation.generators.isr.gamma_star_mass_fraction``; issue 11)."""

    min: float = pydantic.Field(gt=0)
    max: float | None = None
    fermion: int = pydantic.Field(gt=0)  # PDG code of the pair (its mass sets the threshold)

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "GammaStarMass":
        if self.max is not None and self.max <= self.min:
            raise ValueError("gamma_star_mass: max must be above min")
        return self


class IsrCentralEnhancement(StrictModel):
    """``isr_pair``: a ``share`` of the events get their ISR photon inside |cos theta*| < ``cos_theta_max``
    (CM, from the e- beam), the rest from the whole first-order distribution; weighted
    (simulation/generators/isr.py ``IsrSlice``)."""

    cos_theta_max: float = pydantic.Field(gt=0, lt=1)
    share: float = pydantic.Field(gt=0, lt=1)


class Process(StrictModel):
    kind: Literal["background", "signal"]
    description: str
    generator: Literal["pythia", "upsilon4s", "bhabha", "zprime", "two_photon", "isr_pair"]
    cross_section: list[str] | None = None
    base: str | None = None
    pythia: list[str] = []
    extra_pythia: list[str] = []
    b_pair: Literal["neutral", "charged", "both"] | None = None
    forced_decay: ForcedDecay | None = None
    forced_decay_charged: ForcedDecay | None = None
    scalar: Scalar | None = None
    parameters: dict[str, float] = {}
    # Product of the branching fractions of the sub-decays forced in generation (phi -> K+ K- for
    # tau -> l phi, K*0 -> K+ pi- if forced, ...): read through forced_sub_branching_fraction() only.
    sub_branching_fraction: float = pydantic.Field(default=1.0, gt=0, le=1)
    reference_branching_fraction: float | None = pydantic.Field(default=None, gt=0)
    reference_cross_section_nb: float | None = pydantic.Field(default=None, gt=0)
    # the zprime generator's model: its cross section is computed (simulation/generators/lmu_ltau.py)
    zprime_model: ZprimeCoupling | None = None
    # Tau-pair spin correlations after the fast mode-0 tau decays (simulation/generators/tau_spin.py;
    # realism issue, item 5). Off unless set: on in configs/processes.yaml for the tau-pair processes.
    tau_spin_correlations: bool = False
    # Final-state radiation off the charged leptons of tau decays whose daughters are all final
    # (simulation/generators/decay_fsr.py; issue 11, the efficiency gap): PHOTOS-like leading log
    tau_decay_fsr: bool = False
    # generated by `make run` (belle-rare demo); off for samples no demo search reads yet
    in_demo: bool = True
    # Biased production (issue 11, item 3): tau decay channels made more frequent, the bias carried
    # in the per-event generator weight (simulation/generators/biased_decays.py)
    tau_decay_enhancement: TauDecayEnhancement | None = None
    # Bhabha scattering angles inside |cos theta*| < cos_theta_max made more frequent (weighted)
    bhabha_central_enhancement: BhabhaCentralEnhancement | None = None
    # A slice of the gamma* mass (hard ISR below sqrt(s)); its share of the cross section is applied
    # (background processes; a biased variant with a ``base`` inherits its base's slice)
    gamma_star_mass: GammaStarMass | None = None
    # isr_pair: the ISR photon's angle biased into the barrel (weighted)
    isr_central_enhancement: IsrCentralEnhancement | None = None
    # two_photon: scattered beam leptons inside the tracker made more frequent (weighted; issue 11, tau3mu)
    two_photon_tag_enhancement: TwoPhotonTagEnhancement | None = None

    @property
    def biased(self) -> bool:
        """A weighted, biased variant of another process's physics (an alternative sample of the
        same cross section, never generated beside it into one sample directory)."""
        return (self.tau_decay_enhancement is not None or self.bhabha_central_enhancement is not None
                or self.isr_central_enhancement is not None or self.two_photon_tag_enhancement is not None)


class TrackPairMass(StrictModel):
    """An opposite-charge pair of final-state charged particles (both inside the charged acceptance,
    both given the mass of ``hypothesis``) whose invariant mass lies in ``window`` (GeV)."""

    hypothesis: int = pydantic.Field(gt=0)
    window: tuple[float, float]


class PairRecoil(StrictModel):
    """The system recoiling (beams minus the pair) against the two highest-pT charged particles inside the
    charged acceptance: its lab polar angle inside ``theta_deg`` (when its momentum exceeds ``theta_min_momentum``
    GeV: a softer recoil's measured direction is set by the resolution) and its mass squared inside ``m2`` (GeV^2)."""

    theta_deg: tuple[float, float]
    theta_min_momentum: float = pydantic.Field(default=0.0, ge=0)
    m2: tuple[float, float]


class TrackTriplet(StrictModel):
    """A ``track_pair_mass`` pair and a third charged particle of the acceptance (mass of ``third_hypothesis``)
    whose invariant mass lies in ``mass`` (GeV) and whose CM energy exceeds sqrt(s) / 2 + ``de_min`` (GeV; the
    beams of the truth record): a candidate that can reach a (M, dE) window (taulphi's B B, issue 11)."""

    mass: tuple[float, float]
    de_min: float
    third_hypothesis: int = pydantic.Field(default=211, gt=0)


class GeneratorFilter(StrictModel):
    """Generator-level event filter; every requirement given must hold (lab frame, final-state particles).

    - a neutral shower (photon, or K_L / neutron, which also make ECL clusters) above
      ``min_photon_energy`` (GeV) inside ``photon_theta_deg`` (both or neither given);
    - at least ``min_charged`` charged particles with pT > ``charged_pt_min`` inside ``charged_theta_deg``;
    - ``track_pair_mass``: a pair of those charged particles in a mass window.
    """

    description: str = ""
    min_photon_energy: float | None = pydantic.Field(default=None, ge=0)
    photon_theta_deg: tuple[float, float] | None = None
    min_charged: int = pydantic.Field(default=0, ge=0)
    charged_pt_min: float = pydantic.Field(default=0.0, ge=0)
    charged_theta_deg: tuple[float, float] = (0.0, 180.0)
    track_pair_mass: TrackPairMass | None = None
    # at most ``max_charged`` charged particles with pT > ``max_charged_pt_min`` inside ``charged_theta_deg``
    # (a search that wants exactly two tracks: a third hard one in the tracker is nearly always found)
    max_charged: int | None = pydantic.Field(default=None, ge=0)
    max_charged_pt_min: float = pydantic.Field(default=0.0, ge=0)
    # a recoil against the two hardest charged particles in the acceptance (zprime: recoil mass and angle)
    pair_recoil: PairRecoil | None = None
    # a track_pair_mass pair plus a third charged particle forming an energetic candidate (taulphi's B B)
    track_triplet: TrackTriplet | None = None

    @pydantic.model_validator(mode="after")
    def _complete(self) -> "GeneratorFilter":
        if self.track_triplet is not None and self.track_pair_mass is None:
            raise ValueError("track_triplet needs track_pair_mass (the pair it extends)")
        if (self.min_photon_energy is None) != (self.photon_theta_deg is None):
            raise ValueError("min_photon_energy and photon_theta_deg go together")
        if self.min_photon_energy is None and self.min_charged == 0 and self.track_pair_mass is None and self.max_charged is None:
            raise ValueError("a generator filter needs at least one requirement")
        return self


class PseudoData(StrictModel):
    components: list[str] = pydantic.Field(min_length=1)
    filters: dict[str, GeneratorFilter] = {}


class Catalogue(StrictModel):
    pythia_common: list[str]
    tau_decays: list[tuple[float, int, list[int]]]
    processes: dict[str, Process]
    pseudo_data: PseudoData
    # generator-level filters per search (`belle-rare generate --filter SEARCH`), each looser than the
    # search's own selection so that the events it removes could never be selected (issue 11)
    search_filters: dict[str, GeneratorFilter] = {}

    @pydantic.model_validator(mode="after")
    def _bases_exist(self) -> "Catalogue":
        for name, proc in self.processes.items():
            if proc.base is not None and proc.base not in self.processes:
                raise ValueError(f"processes.{name}.base: unknown process '{proc.base}'")
            has_xsec = proc.cross_section or proc.reference_cross_section_nb or proc.zprime_model or (
                proc.base and self.processes[proc.base].cross_section
            )
            if not has_xsec:
                raise ValueError(f"processes.{name}: needs cross_section, a base process, reference_cross_section_nb or zprime_model")
            isr_taus = proc.generator == "isr_pair" and proc.gamma_star_mass is not None and proc.gamma_star_mass.fermion == 15
            if proc.tau_spin_correlations and not isr_taus and (proc.generator != "pythia" or "23:onIfAny = 15" not in self.pythia_settings(name)):
                raise ValueError(f"processes.{name}.tau_spin_correlations: only for e+e- -> tau+ tau- (pythia) processes")
            if (proc.generator == "zprime") != (proc.zprime_model is not None):
                raise ValueError(f"processes.{name}.zprime_model: required for the zprime generator, and only there")
            if proc.generator == "upsilon4s" and proc.b_pair is None:
                raise ValueError(f"processes.{name}.b_pair: required for the upsilon4s generator")
            # a decay table switched off ("<id>:onMode = off") forces a sub-decay: its branching
            # fraction must be stated, or the limits would silently be on BR x BR(sub-decay)
            # a forced B0 decay needs Pythia's incoherent B mixing off; the tag emulates the coherent mixing
            # of the Upsilon(4S) pair for such samples (simulation/detector/tagging.py, CHI_D)
            if (proc.forced_decay is not None and abs(proc.forced_decay.particle) == 511
                    and "ParticleDecays:mixB=off" not in [line.replace(" ", "") for line in self.pythia_settings(name)]):
                raise ValueError(f"processes.{name}.extra_pythia: a forced B0 decay needs 'ParticleDecays:mixB = off'")
            forces = any(line.replace(" ", "").endswith(":onMode=off") for line in proc.extra_pythia)
            if forces and "sub_branching_fraction" not in proc.model_fields_set:
                raise ValueError(f"processes.{name}.sub_branching_fraction: required, extra_pythia forces a sub-decay")
        for name in [*self.pseudo_data.components, *self.pseudo_data.filters]:
            if name not in self.processes or self.processes[name].kind != "background":
                raise ValueError(f"pseudo_data: '{name}' is not a background process")
        table = [sorted(products) for _, _, products in self.tau_decays]
        for name, proc in self.processes.items():
            enh = proc.tau_decay_enhancement
            if enh is None:
                continue
            if proc.kind != "background" or proc.generator != "pythia" or proc.forced_decay is not None:
                raise ValueError(f"processes.{name}.tau_decay_enhancement: only for background tau-pair (pythia) processes")
            for channel in enh.channels:
                if sorted(channel) not in table:
                    raise ValueError(f"processes.{name}.tau_decay_enhancement.channels: {channel} is not in tau_decays")
        for name, proc in self.processes.items():
            if proc.gamma_star_mass is not None and proc.generator != "isr_pair" and (
                    proc.kind != "background" or "WeakSingleBoson:ffbar2gmZ = on" not in self.pythia_settings(name)):
                raise ValueError(f"processes.{name}.gamma_star_mass: only for background Pythia ffbar2gmZ processes and isr_pair")
            if proc.generator == "isr_pair" and (proc.gamma_star_mass is None or proc.gamma_star_mass.max is None):
                raise ValueError(f"processes.{name}.gamma_star_mass: isr_pair needs a gamma* mass slice with a max")
            if proc.isr_central_enhancement is not None and proc.generator != "isr_pair":
                raise ValueError(f"processes.{name}.isr_central_enhancement: only for the isr_pair generator")
        for name, proc in self.processes.items():
            if proc.bhabha_central_enhancement is not None and proc.generator != "bhabha":
                raise ValueError(f"processes.{name}.bhabha_central_enhancement: only for the bhabha generator")
            if proc.two_photon_tag_enhancement is not None and proc.generator != "two_photon":
                raise ValueError(f"processes.{name}.two_photon_tag_enhancement: only for the two_photon generator")
        total = sum(bf for bf, _, _ in self.tau_decays)
        if abs(total - 1.0) > 1e-3:
            raise ValueError(f"tau_decays: branching fractions sum to {total:.4f}, not 1")
        return self

    def get(self, name: str) -> Process:
        try:
            return self.processes[name]
        except KeyError:
            known = ", ".join(self.processes)
            raise KeyError(f"unknown process '{name}' (known: {known})") from None

    def pythia_settings(self, name: str) -> list[str]:
        """The process's own Pythia lines, its base process's first."""
        proc = self.get(name)
        base = self.processes[proc.base].pythia if proc.base else []
        return [*base, *proc.pythia, *proc.extra_pythia]

    def forced_sub_branching_fraction(self, name: str) -> float:
        """See the module-level :func:`forced_sub_branching_fraction`."""
        return self.get(name).sub_branching_fraction

    def gamma_star_mass(self, name: str) -> GammaStarMass | None:
        """The gamma* mass slice a process generates: its own, or its base's (tautau_3prong and the
        tau-pair signals generate tautau's slice, gamma* above 10 GeV)."""
        proc = self.get(name)
        if proc.gamma_star_mass is not None or proc.base is None:
            return proc.gamma_star_mass
        return self.processes[proc.base].gamma_star_mass

    def cross_section_keys(self, name: str) -> list[str] | None:
        proc = self.get(name)
        if proc.cross_section is None and proc.base:
            return self.processes[proc.base].cross_section
        return proc.cross_section


@lru_cache(maxsize=None)
def load_catalogue() -> Catalogue:
    """The validated sample catalogue."""
    return load_config(config_path("processes.yaml"), Catalogue)


def forced_sub_branching_fraction(process: str) -> float:
    """Product of the branching fractions of every sub-decay forced when ``process`` is generated
    (phi -> K+ K- = 0.491 for sig_taumuphi / sig_tauephi; 1 when nothing is forced).

    The one place this factor is read. The generated cross section keeps it (simulation/production.py):
    a sample event stands for the physical rate of the forced final state, so background-like sums
    and pseudo-data stay right. The reference branching fraction of a limit divides it out
    (stats/search_limits.py ``reference_value``), so limits are on BR(tau -> l phi), not
    BR(tau -> l phi) x BR(phi -> K+ K-), and efficiencies come out in the papers' definition
    (selected / produced signal decays, the sub-decay's branching fraction included).
    """
    return load_catalogue().forced_sub_branching_fraction(process)

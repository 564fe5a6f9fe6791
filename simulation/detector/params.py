"""Schema of a detector-response configuration (``configs/detector/<name>.yaml``) and its loader.

Every number the parametric response uses lives in the YAML file with a source comment; this
module only fixes the shape of the data and checks it (unknown keys, wrong types, tables whose
lengths do not match, values outside their physical range are all ``ConfigError``s naming the
file and the key).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pydantic

from belle_rare.configs.loader import StrictModel, config_path, load_config

DETECTORS = ("belle", "belle2")

#: the species a track can be, in the order used for PID tables (e, mu, pi, K, p)
PID_SPECIES = ("e", "mu", "pi", "K", "p")

Fraction = Annotated[float, pydantic.Field(ge=0, le=1)]
Positive = Annotated[float, pydantic.Field(gt=0)]
NonNegative = Annotated[float, pydantic.Field(ge=0)]
Count = Annotated[int, pydantic.Field(ge=0)]


class Table(StrictModel):
    """A step function of momentum: ``values[i]`` holds for ``p_edges[i] <= p < p_edges[i+1]``.

    Momenta outside the edges take the first / last value.
    """

    p_edges: list[NonNegative] = pydantic.Field(min_length=2, description="GeV/c, increasing")
    values: list[Fraction]

    @pydantic.model_validator(mode="after")
    def _shape(self) -> "Table":
        if len(self.values) != len(self.p_edges) - 1:
            raise ValueError(f"{len(self.p_edges)} p_edges need {len(self.p_edges) - 1} values, got {len(self.values)}")
        if np.any(np.diff(self.p_edges) <= 0):
            raise ValueError("p_edges must be strictly increasing")
        return self

    def __call__(self, p: np.ndarray) -> np.ndarray:
        """Tabulated value at momenta ``p`` (vectorised)."""
        bins = np.clip(np.searchsorted(self.p_edges, p, side="right") - 1, 0, len(self.values) - 1)
        return np.asarray(self.values, dtype=np.float64)[bins]


class Range(StrictModel):
    low: float
    high: float

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class BetaShape(StrictModel):
    """Beta(alpha, beta) distribution of a quantity in [0, 1]."""

    alpha: Positive
    beta: Positive


class QuadratureResolution(StrictModel):
    """sigma = constant (+) scaled / x**power, added in quadrature; ``x`` is given by the caller."""

    constant: NonNegative
    scaled: NonNegative
    power: NonNegative = pydantic.Field(description="exponent of x in the second term")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.hypot(self.constant, self.scaled / np.power(x, self.power))


# ---------------------------------------------------------------------------------- tracking
class MomentumResolution(StrictModel):
    """sigma(pT)/pT = pt_term * pT (+) beta_term / beta."""

    pt_term: NonNegative = pydantic.Field(description="per GeV/c")
    beta_term: NonNegative


class ImpactParameterResolution(StrictModel):
    """sigma = constant (+) multiple_scattering / (p beta sin(theta)**sin_power), cm."""

    constant: NonNegative = pydantic.Field(description="cm")
    multiple_scattering: NonNegative = pydantic.Field(description="cm GeV/c")
    sin_power: NonNegative


class DisplacedEfficiency(StrictModel):
    """Tracking efficiency vs production radius: 1 below ``full_radius``, falling linearly to 0 at ``zero_radius``."""

    full_radius: NonNegative = pydantic.Field(description="cm")
    zero_radius: Positive = pydantic.Field(description="cm")

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "DisplacedEfficiency":
        if not self.full_radius < self.zero_radius:
            raise ValueError("full_radius must be below zero_radius")
        return self


class DriftChamber(StrictModel):
    inner_radius: Positive = pydantic.Field(description="cm")
    outer_radius: Positive = pydantic.Field(description="cm")
    z_backward: float = pydantic.Field(description="cm, backward end plate (negative)")
    z_forward: float = pydantic.Field(description="cm, forward end plate")
    n_layers: Annotated[int, pydantic.Field(gt=0)]
    hit_efficiency: Fraction


class TrackFit(StrictModel):
    """p-values: uniform for good fits; a fraction of badly fitted tracks gets u**bad_fit_power."""

    bad_fit_fraction: Fraction
    bad_fit_power: Positive


class DisplacedMeasurement(StrictModel):
    """Where a track born outside the innermost layer is first measured (bkscalar, issue 13): the first of
    ``layer_radii`` (cm, PXD and SVD) beyond its production radius, else the CDC inner wall with
    ``cdc_position_resolution`` (cm) added to the position error there. Its perigee parameters are the
    straight line pinned at that point, so their errors grow with the distance to the perigee."""

    layer_radii: list[Positive] = pydantic.Field(min_length=1)
    cdc_position_resolution: NonNegative = pydantic.Field(description="cm, added in quadrature for CDC-only tracks")

    @pydantic.model_validator(mode="after")
    def _ascending(self) -> "DisplacedMeasurement":
        if any(b <= a for a, b in zip(self.layer_radii, self.layer_radii[1:])):
            raise ValueError("layer_radii must be ascending")
        return self


class CurlerDuplicates(StrictModel):
    """A track below ``pt_max`` is found a second time (its next half-loop) with ``probability``."""

    pt_max: Positive = pydantic.Field(description="GeV/c, tracks below can have a duplicate")
    probability: Fraction = pydantic.Field(description="per track below pt_max")
    momentum_smear: NonNegative = pydantic.Field(description="relative momentum difference, duplicate to original")


class Tracking(StrictModel):
    magnetic_field: Positive = pydantic.Field(description="T, solenoid field")
    theta_range_deg: Range
    pt_min: NonNegative = pydantic.Field(description="GeV/c, no track below")
    pt_turn_on: Positive = pydantic.Field(description="GeV/c, scale of 1 - exp(-(pT - pt_min)/pt_turn_on)")
    efficiency: Fraction = pydantic.Field(description="plateau per-track efficiency")
    displaced: DisplacedEfficiency
    momentum_resolution: MomentumResolution
    angular_resolution: QuadratureResolution = pydantic.Field(description="rad; x = p*beta in GeV/c")
    dr_resolution: ImpactParameterResolution
    dz_resolution: ImpactParameterResolution
    cdc: DriftChamber
    fit: TrackFit
    # displaced tracks measured away from their perigee (None: every track at its perigee, as prompt tracks)
    displaced_measurement: DisplacedMeasurement | None = None
    # duplicate tracks of low-pT curlers (simulation/detector/curlers.py; None: no duplicates)
    curler_duplicates: CurlerDuplicates | None = None


# ------------------------------------------------------------------------------- calorimeter
class EnergyResolution(StrictModel):
    """sigma_E/E = noise/E (+) stochastic/E**(1/4) (+) constant (E in GeV)."""

    noise: NonNegative = pydantic.Field(description="GeV")
    stochastic: NonNegative = pydantic.Field(description="GeV^(1/4)")
    constant: NonNegative


class EnergyTail(StrictModel):
    """Low-energy leakage tail of electromagnetic showers: the cluster energy follows a Novosibirsk
    (logarithmic Gaussian) line shape whose peak is the true energy and whose width parameter is the
    configured sigma_E (= FWHM / 2.355), the function basf2 fits to ECL photon responses (H. Ikeda et
    al., NIM A 441 (2000) 401; ``eclNOptimalNovo``)."""

    tail: float = pydantic.Field(lt=0, gt=-1.5, description="Novosibirsk tau (basf2's 'tail'); < 0: tail to low energies")


class EclRegions(StrictModel):
    """Polar-angle coverage (deg) of the three ECL parts, seen from the interaction point."""

    forward: Range
    barrel: Range
    backward: Range

    @pydantic.model_validator(mode="after")
    def _ordered(self) -> "EclRegions":
        if not (self.forward.high <= self.barrel.low and self.barrel.high <= self.backward.low):
            raise ValueError("regions must be ordered forward < barrel < backward without overlap")
        return self


class EclGeometry(StrictModel):
    barrel_radius: Positive = pydantic.Field(description="cm, inner radius of the barrel crystals")
    forward_z: Positive = pydantic.Field(description="cm, forward endcap front face")
    backward_z: float = pydantic.Field(lt=0, description="cm, backward endcap front face")


class GapResponse(StrictModel):
    """Clusters whose direction falls between two ECL parts."""

    efficiency: Fraction
    energy_scale: Fraction = pydantic.Field(description="fraction of the energy seen")


class MipDeposit(StrictModel):
    mean: NonNegative = pydantic.Field(description="GeV")
    width: NonNegative = pydantic.Field(description="GeV, Gaussian sigma")


class HadronShower(StrictModel):
    probability: Fraction = pydantic.Field(description="probability to shower instead of a MIP")
    fraction: BetaShape = pydantic.Field(description="fraction of the kinetic energy deposited")


class NeutralHadronDeposit(StrictModel):
    probability: Fraction = pydantic.Field(description="probability of an ECL cluster")
    fraction: BetaShape = pydantic.Field(description="fraction of the kinetic energy deposited")


class Timing(StrictModel):
    resolution: QuadratureResolution = pydantic.Field(description="ns; x = E in GeV")
    background_window: Positive = pydantic.Field(description="ns, beam-background clusters are uniform in +-window")
    in_time_below: NonNegative | None = pydantic.Field(
        default=None,
        description="GeV; clusters below this energy are kept only if |t| < t99 (basf2 ECLFinalizer); null: no cut",
    )


class SplitOff(StrictModel):
    """Hadronic split-offs: fragments of a hadronic shower reconstructed as separate neutral clusters."""

    mean_multiplicity: NonNegative = pydantic.Field(description="Poisson mean number per hadronic shower")
    energy_mean: Positive = pydantic.Field(description="GeV, mean of the exponential above the cluster threshold")
    max_energy_fraction: Fraction = pydantic.Field(description="a split-off takes at most this share of its shower")
    min_angle: NonNegative = pydantic.Field(description="rad, closest separation from the parent cluster")
    angle_scale: Positive = pydantic.Field(description="rad, mean of the exponential separation beyond min_angle")


class Calorimeter(StrictModel):
    regions_deg: EclRegions
    geometry: EclGeometry
    gap: GapResponse
    energy_resolution: EnergyResolution
    angular_resolution: QuadratureResolution = pydantic.Field(description="rad; x = E in GeV")
    cluster_threshold: NonNegative = pydantic.Field(description="GeV, no cluster below")
    photon_efficiency: Fraction
    electron_energy_scale: Positive = pydantic.Field(description="mean E_cluster / E of electrons")
    mip: MipDeposit
    hadron_shower: HadronShower
    klong: NeutralHadronDeposit
    neutron: NeutralHadronDeposit
    e9e21_photon: BetaShape
    e9e21_hadron: BetaShape
    e9e21_background: BetaShape
    timing: Timing
    split_off: SplitOff
    # None: a Gaussian energy response
    energy_tail: EnergyTail | None = None


# -------------------------------------------------------------------------------------- PID
class SpeciesTables(StrictModel):
    """Probability that the PID variable exceeds its standard cut, per true species, vs momentum."""

    e: Table
    mu: Table
    pi: Table
    K: Table
    p: Table


class PidVariable(StrictModel):
    cut: float = pydantic.Field(gt=0, lt=1, description="the standard cut the tables refer to")
    efficiency: SpeciesTables


class Pid(StrictModel):
    latent_width: Positive = pydantic.Field(description="sigma of the Gaussian logit(PID) per species")
    variables: dict[str, PidVariable]
    working_points: dict[str, list[float]] = pydantic.Field(
        default_factory=dict,
        description="variable -> cuts whose per-track pass probability is recorded (Track_<var>_passProb_<cut>)")

    def cuts_of(self, variable: str) -> list[float]:
        """The recorded working points of ``variable``: its configured ones and its standard cut, sorted."""
        return sorted({*self.working_points.get(variable, []), self.variables[variable].cut})

    @pydantic.model_validator(mode="after")
    def _working_points(self) -> "Pid":
        unknown = sorted(set(self.working_points) - set(self.variables))
        if unknown:
            raise ValueError(f"working_points: not PID variables: {unknown}")
        bad = [c for cuts in self.working_points.values() for c in cuts if not 0 < c < 1]
        if bad:
            raise ValueError(f"working_points: cuts must lie in (0, 1), got {bad}")
        return self

    @pydantic.field_validator("variables")
    @classmethod
    def _names(cls, variables: dict[str, PidVariable]) -> dict[str, PidVariable]:
        bad = [name for name in variables if not name.isidentifier()]
        if bad:
            raise ValueError(f"PID variable names must be identifiers (branch suffixes): {bad}")
        if not variables:
            raise ValueError("at least one PID variable is needed")
        return variables


# -------------------------------------------------------------------------------------- KLM
class KlmMuons(StrictModel):
    min_momentum: NonNegative = pydantic.Field(description="GeV/c, muons below do not reach the KLM")
    momentum_per_layer: Positive = pydantic.Field(description="GeV/c of range per traversed layer")
    layer_efficiency: Fraction


class KlmHadrons(StrictModel):
    punch_through_probability: Fraction = pydantic.Field(description="charged hadrons above min_momentum leaving KLM hits")
    mean_layers: NonNegative = pydantic.Field(description="mean extra layers (Poisson) beyond the first")


class KlmClusters(StrictModel):
    klong_efficiency: Table
    neutron_efficiency: Table
    innermost_layer_probability: Fraction = pydantic.Field(description="per-layer probability to start the shower")
    mean_layers: NonNegative = pydantic.Field(description="mean extra layers (Poisson) at 0 GeV/c")
    mean_layers_per_gev: NonNegative
    angular_resolution: NonNegative = pydantic.Field(description="rad")


class Klm(StrictModel):
    theta_range_deg: Range
    n_layers: Annotated[int, pydantic.Field(gt=0)]
    muons: KlmMuons
    hadrons: KlmHadrons
    clusters: KlmClusters


# ------------------------------------------------------------------------------- composites
class Pi0PhotonThresholds(StrictModel):
    """Minimum photon energy (GeV) per ECL region for pi0 candidates."""

    forward: NonNegative
    barrel: NonNegative
    backward: NonNegative
    gap: NonNegative


class Pi0(StrictModel):
    mass_window: Range = pydantic.Field(description="GeV, gamma-gamma invariant mass")
    photon_min_energy: Pi0PhotonThresholds


class V0Vertex(StrictModel):
    """sigma per coordinate = constant + per_radius * (transverse vertex radius)."""

    constant: NonNegative = pydantic.Field(description="cm")
    per_radius: NonNegative


class V0(StrictModel):
    min_flight: NonNegative = pydantic.Field(description="cm; daughters born closer to the mother's origin are prompt")
    efficiency: Fraction = pydantic.Field(description="vertex finding/fit efficiency for a true pair of tracks")
    vertex_resolution: V0Vertex
    fake_rate_per_event: NonNegative = pydantic.Field(description="mean number of fake pairs per event")
    fake_pvalue_power: Positive = pydantic.Field(description="fake vertices: pValue = u**power")
    photon_max_mass: Positive = pydantic.Field(description="GeV; e+e- (photon-hypothesis) V0s need a smaller pair mass")
    photon_min_radius: NonNegative = pydantic.Field(description="cm; no photon-hypothesis V0 with a vertex inside")
    photon_max_doca_sigmas: Positive = pydantic.Field(
        description="other pairs' tracks must pass within this many vertex resolutions of each other"
    )


# ---------------------------------------------------------------------------------- tagging
class PerBCharge(StrictModel):
    charged: Fraction
    neutral: Fraction


class TagPhotonThresholds(StrictModel):
    """Minimum photon energy (GeV) per ECL region for tag photons; gap clusters are never used."""

    forward: NonNegative
    barrel: NonNegative
    backward: NonNegative


class TagConstituents(StrictModel):
    """Which reconstructed tracks and photons a tag candidate uses (``Track_inTag``, ``Photon_inTag``)."""

    track_max_dr: Positive = pydantic.Field(description="cm, transverse IP distance of tag tracks (V0 daughters exempt)")
    track_max_dz: Positive = pydantic.Field(description="cm, |dz| of tag tracks (V0 daughters exempt)")
    photon_min_energy: TagPhotonThresholds
    partial_fraction: Fraction = pydantic.Field(description="correct tags that miss their softest photon")
    wrong_keep_probability: Fraction = pydantic.Field(
        description="misreconstructed tags: chance that each usable tag-B object is used"
    )
    wrong_take_probability: Fraction = pydantic.Field(
        description="misreconstructed and fake tags: chance that each other usable object is used"
    )


class Tagging(StrictModel):
    algorithm: Literal["FEI", "NeuroBayes"]
    correct_efficiency: PerBCharge = pydantic.Field(description="correctly reconstructed tag per B Bbar event")
    data_mc_factor: PerBCharge = pydantic.Field(description="multiplies correct_efficiency (data/MC calibration)")
    misreconstructed_fraction: float = pydantic.Field(
        ge=0,
        lt=1,
        description="fraction of tag candidates in B Bbar events that are misreconstructed"
    )
    misreconstructed_per_correct: NonNegative = pydantic.Field(
        description="weighted misreconstructed tag candidates per correct one in B Bbar events "
        "(misreconstructed_fraction only sets how many MC events carry each kind)"
    )
    momentum_resolution: NonNegative = pydantic.Field(description="GeV, per CM momentum component")
    energy_resolution: NonNegative = pydantic.Field(description="GeV, on the CM energy (deltaE width)")
    mbc_min: Positive = pydantic.Field(description="GeV, lower end of the stored Mbc range")
    argus_c: float = pydantic.Field(lt=0, description="ARGUS curvature of wrong / fake tags")
    delta_e_range: Range = pydantic.Field(description="GeV, flat deltaE of wrong / fake tags")
    sig_prob_correct: BetaShape
    sig_prob_wrong: BetaShape
    fake_rate_per_event: Fraction = pydantic.Field(description="tag candidates per non-B Bbar event (the weight)")
    fake_min_tracks: Count = pydantic.Field(description="no fake tag in events with fewer tracks")
    fake_charged_fraction: Fraction
    constituents: TagConstituents

    def candidate_weight(self, charged: np.ndarray, misreconstructed: np.ndarray) -> np.ndarray:
        """Weight of a B Bbar tag candidate: correct ones sum to the efficiency per B Bbar event,
        misreconstructed ones to ``misreconstructed_per_correct`` times it."""
        eff = np.where(
            charged,
            self.correct_efficiency.charged * self.data_mc_factor.charged,
            self.correct_efficiency.neutral * self.data_mc_factor.neutral,
        )
        wrong_share = max(self.misreconstructed_fraction, np.finfo(float).tiny)
        return eff * np.where(
            misreconstructed, self.misreconstructed_per_correct / wrong_share, 1.0 / (1.0 - self.misreconstructed_fraction)
        )


# -------------------------------------------------------------------------- beam background
class BackgroundPhotons(StrictModel):
    mean: NonNegative = pydantic.Field(
        description="mean number per event (Poisson) above energy_min in +-calorimeter.timing.background_window"
    )
    region_fractions: list[Fraction] = pydantic.Field(
        min_length=3, max_length=3, description="forward, barrel, backward shares"
    )
    energy_min: NonNegative = pydantic.Field(description="GeV")
    energy_power: float = pydantic.Field(gt=1, description="dN/dE ~ E^-power between energy_min and energy_max")
    energy_max: Positive = pydantic.Field(description="GeV, upper end of the spectrum")

    @pydantic.field_validator("region_fractions")
    @classmethod
    def _sum_to_one(cls, fractions: list[float]) -> list[float]:
        if abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"region fractions must sum to 1, got {sum(fractions)}")
        return fractions

    @pydantic.model_validator(mode="after")
    def _energy_range(self) -> "BackgroundPhotons":
        if not self.energy_min < self.energy_max:
            raise ValueError("energy_min must be below energy_max")
        return self


class BackgroundTracks(StrictModel):
    mean: NonNegative = pydantic.Field(description="mean number per event (Poisson)")
    pt_min: NonNegative = pydantic.Field(description="GeV/c")
    pt_slope: Positive = pydantic.Field(description="GeV/c, mean of the exponential above pt_min")
    dz_sigma: Positive = pydantic.Field(description="cm, Gaussian spread of the origin along z")
    dr_sigma: Positive = pydantic.Field(description="cm, Gaussian transverse distance from the beam")


class BeamBackground(StrictModel):
    photons: BackgroundPhotons
    tracks: BackgroundTracks


# ---------------------------------------------------------------------------------- trigger
class TriggerTracks(StrictModel):
    """Tracks the L1 track finder sees: reconstructed tracks above a pT threshold with enough CDC hits
    (the hits stand for the superlayers the finder needs), each found with a per-track efficiency."""

    pt_min: Positive = pydantic.Field(description="GeV/c")
    min_cdc_hits: Count
    efficiency: Fraction = pydantic.Field(description="per-track finding efficiency above threshold")


class TriggerClusters(StrictModel):
    """ECL trigger clusters: reconstructed clusters (photons and track-matched) above a threshold."""

    energy_min: NonNegative = pydantic.Field(description="GeV, lab")
    efficiency: Fraction = pydantic.Field(description="per-cluster efficiency above threshold")
    count_theta_deg: Range = pydantic.Field(description="polar-angle range of the cluster count (c4 / icn4)")


class PairTopology(StrictModel):
    """A pair of objects in the CM frame: Delta phi and theta_1 + theta_2 windows (deg)."""

    delta_phi_deg: Range
    theta_sum_deg: Range


class BhabhaVeto(PairTopology):
    """3D Bhabha: a back-to-back cluster pair, both above ``energy_both`` and one above ``energy_one`` (CM)."""

    energy_both: Positive = pydantic.Field(description="GeV, CM")
    energy_one: Positive = pydantic.Field(description="GeV, CM")


class EnergySums(StrictModel):
    """Total ECL energy (lab) thresholds: lowe / hie / lume (Belle II names)."""

    theta_deg: Range = pydantic.Field(description="polar-angle range summed (theta rings)")
    low: Positive = pydantic.Field(description="GeV")
    high: Positive = pydantic.Field(description="GeV")
    lum: Positive = pydantic.Field(description="GeV")


class KlmTrigger(StrictModel):
    min_layers: Annotated[int, pydantic.Field(gt=0)] = pydantic.Field(description="KLM layers a trigger muon track needs")
    efficiency: Fraction = pydantic.Field(description="per-track KLM trigger efficiency")


class TrackPairs(StrictModel):
    """Track-pair opening angle windows (Delta phi_0, deg) of the track trigger."""

    open_deg: Range = pydantic.Field(description="cdc_open90 (Belle II) / opening-angle bit (Belle)")
    back_to_back_deg: Range = pydantic.Field(description="cdc_b2b5 (Belle II) / back-to-back bit (Belle)")


class LowMultiplicity(StrictModel):
    """Belle II low-multiplicity ECL bits (TrgEclMaster): lml0, lml1, lml6, lml8, lml10 and ecltaub2b."""

    lml0_clusters: Count = pydantic.Field(description="minimum number of clusters")
    lml0_cluster_lab: Positive = pydantic.Field(description="GeV, one cluster above (lab)")
    high_cluster_cm: Positive = pydantic.Field(description="GeV, the '2 GeV (CM)' cluster of lml1 / lml8 / lml10")
    lml6_cluster_cm: Positive = pydantic.Field(description="GeV, exactly one cluster above (CM), in the barrel")
    lml6_other_lab: Positive = pydantic.Field(description="GeV, and another above (lab)")
    lml8_delta_phi_deg: Range
    lml8_cluster_lab: Positive = pydantic.Field(description="GeV, both clusters above (lab)")
    lml10: PairTopology
    taub2b: PairTopology
    taub2b_energy_max: Positive = pydantic.Field(description="GeV, total lab energy below")
    taub2b_cluster_max: Positive = pydantic.Field(description="GeV, every cluster below (lab)")


class TriggerLine(StrictModel):
    """One L1 output line: an event-level efficiency on top of its inputs, and its prescale."""

    efficiency: Fraction = 1.0
    prescale: Annotated[int, pydantic.Field(ge=1)] = 1


#: the lines emulated per experiment (simulation/detector/trigger.py implements each)
TRIGGER_LINES = {
    "belle2": ("f", "ff", "fff", "ffo", "ffb", "hie", "lowe", "lume", "c4", "bha3d",
               "lml0", "lml1", "lml6", "lml8", "lml10", "ecltaub2b", "mu_pair"),
    "belle": ("two_track", "three_track", "hie", "lowe", "icn4", "bhabha", "klm_mu"),
}


class Trigger(StrictModel):
    """L1 trigger emulation (simulation/detector/trigger.py); ``lines`` names the lines stored as bits."""

    tracks: TriggerTracks = pydantic.Field(description="Belle II 2D tracks / Belle full tracks")
    short_tracks: TriggerTracks | None = pydantic.Field(None, description="Belle short tracks")
    clusters: TriggerClusters
    energy: EnergySums
    bhabha_veto: BhabhaVeto
    bhabha_selection: BhabhaVeto = pydantic.Field(description="the prescaled Bhabha (luminosity) line")
    track_pairs: TrackPairs
    klm: KlmTrigger
    low_multiplicity: LowMultiplicity | None = None
    lines: dict[str, TriggerLine]
# --------------------------------------------------------------------------------- material
class MaterialLayer(StrictModel):
    """A thin cylindrical shell around the beam axis (beam pipe, PXD / SVD layer) seen by photons and electrons."""

    name: str
    radius: Positive = pydantic.Field(description="cm")
    thickness_x0: Annotated[float, pydantic.Field(gt=0, lt=0.2)] = pydantic.Field(
        description="thickness at normal incidence in radiation lengths (t/X0)"
    )
    theta_range_deg: Range = pydantic.Field(description="polar angles (from the IP) the layer covers")
    atomic_number: Annotated[int, pydantic.Field(ge=1, le=100)] = pydantic.Field(
        description="Z of the main material: energy dependence of the pair-production cross section"
    )


class Material(StrictModel):
    """Material in front of the drift chamber: photon conversions and electron bremsstrahlung (material.py)."""

    layers: list[MaterialLayer] = pydantic.Field(description="ordered by increasing radius")
    brems_photon_min_energy: NonNegative = pydantic.Field(
        description="GeV; softer bremsstrahlung photons are not stored (the electron still loses the energy)"
    )

    @pydantic.field_validator("layers")
    @classmethod
    def _ordered(cls, layers: list[MaterialLayer]) -> list[MaterialLayer]:
        radii = [layer.radius for layer in layers]
        if any(b <= a for a, b in zip(radii, radii[1:])):
            raise ValueError(f"layers must be ordered by strictly increasing radius, got {radii}")
        return layers


# ------------------------------------------------------------------------------------- all
class DetectorParams(StrictModel):
    name: Literal["belle", "belle2"] = pydantic.Field(description="also selects configs/experiments/<name>.yaml")
    label: str
    tracking: Tracking
    calorimeter: Calorimeter
    pid: Pid
    klm: Klm
    pi0: Pi0
    v0: V0
    tagging: Tagging
    beam_background: BeamBackground
    trigger: Trigger

    @pydantic.model_validator(mode="after")
    def _trigger_lines(self) -> "DetectorParams":
        known = TRIGGER_LINES[self.name]
        unknown = sorted(set(self.trigger.lines) - set(known))
        if unknown:
            raise ValueError(f"trigger.lines: unknown line(s) {unknown} for {self.name} (known: {', '.join(known)})")
        if self.name == "belle" and self.trigger.short_tracks is None:
            raise ValueError("trigger.short_tracks is required for belle")
        if self.name == "belle2" and self.trigger.low_multiplicity is None:
            raise ValueError("trigger.low_multiplicity is required for belle2")
        return self
    material: Material


@lru_cache(maxsize=None)
def _load_shipped(name: str) -> DetectorParams:
    return load_config(config_path("detector", f"{name}.yaml"), DetectorParams)


def load_detector(name: str | Path) -> DetectorParams:
    """The validated detector response of ``belle`` or ``belle2``, or of a YAML file given by path.

    The shipped files are read once and cached (the model is frozen); files given by path are
    read on every call.
    """
    if str(name) in DETECTORS:
        return _load_shipped(str(name))
    if str(name).endswith((".yaml", ".yml")):
        return load_config(Path(name), DetectorParams)
    raise ValueError(f"unknown detector '{name}' (choose from {', '.join(DETECTORS)} or give a .yaml path)")

"""Hand-built events in the ntuple layout, for fast unit tests of the search selections.

No generator and no detector simulation: each event is a list of reconstructed tracks and photons
given physically in the centre-of-mass (CM) frame (momentum, angles, mass), boosted to the lab
with the experiment's nominal beams, written to a tiny ROOT file in the layout of
``belle_rare.simulation.ntuple`` (README, "Ntuple layout") and read back with ``BelleSchema`` the
way coffea's ``processor.Runner`` reads a chunk (``events.metadata`` with dataset, filename, ...).

Building blocks::

    b = beams("belle")
    sig, tag = tau_pair(b.sqrt_s, cos_theta=0.1, phi=0.3)   # back to back, E* = sqrt(s)/2 each
    mu, gamma = two_body(sig, MUON_MASS, 0.0, cos_theta_star=0.0, phi_star=1.0)
    pi, nu = two_body(tag, PION_MASS, 0.0, cos_theta_star=0.2)
    event = Event([Track(mu, -1, 13), Track(pi, +1, 211)], [Photon(gamma)])
    events = make_events("belle", [event], tmp_path, dataset="sig_taumugamma")

``two_body`` decays a parent in its rest frame, angles measured from the parent's flight direction
(helicity frame), and boosts the products back. Stored track energies use the pion-mass hypothesis
(as the detector simulation writes them); the PID of a track defaults to "clearly its true
species" (``PID_HIGH`` for the matching likelihood, ``PID_LOW`` for the others) and can be
overridden per branch (``Track(..., pid={"muonID": 0.3})``). ``Track_mcPDG`` / ``Photon_mcPDG``
carry the true species (``truth=False`` leaves the truth branches out); every other branch gets a
neutral value (IP track, no cluster, no KLM hits, ``mcIndex`` -1). Only ``Track`` and ``Photon``
are written (no ``MCParticle``, ``Pi0``, ``V0``, ``KLMCluster``, ``Btag``).
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import awkward as ak
import numpy as np
import particle

from belle_rare.configs.experiment import load_experiment
from belle_rare.processors import kinematics as kin
from belle_rare.processors.kinematics import P4
from belle_rare.simulation.detector import load_detector
from belle_rare.simulation.detector.pid import pass_probability_branch
from belle_rare.simulation.detector.tracking import covariance_branches
from belle_rare.simulation.detector.trigger import branch_name as trigger_branch
from belle_rare.simulation.ntuple import TREE_NAME, write_ntuple


def _mass(pdg: int) -> float:
    return particle.Particle.from_pdgid(pdg).mass / 1000.0


TAU_MASS = _mass(15)
MUON_MASS = _mass(13)
ELECTRON_MASS = _mass(11)
PION_MASS = _mass(211)
KAON_MASS = _mass(321)
PHI_MASS = _mass(333)

# PID likelihoods of a clearly identified track: the true species' ID and the others
PID_HIGH = 0.99
PID_LOW = 0.01
# branch suffix of each experiment's PID variables -> the |PDG| it identifies
PID_BRANCHES: dict[str, dict[str, int]] = {
    "belle2": {"electronID": 11, "muonID": 13, "pionID": 211, "kaonID": 321, "protonID": 2212},
    # atcPIDBelle is Belle's K/pi likelihood ratio: high for kaons (and protons), low for pions
    "belle": {"eIDBelle": 11, "muIDBelle": 13, "atcPIDBelle": 321},
}
MASS_BY_PDG = {11: ELECTRON_MASS, 13: MUON_MASS, 211: PION_MASS, 321: KAON_MASS, 2212: _mass(2212)}


# ---------------------------------------------------------------------------------------------
# frames and four-vectors (P4 of floats: px, py, pz, E)


@dataclass(frozen=True)
class Beams:
    """An experiment's nominal beams as stored in the ntuple (float32), and the CM frame they define."""

    experiment: str
    experiment_number: int
    E: float
    px: float
    py: float
    pz: float

    @property
    def p4(self) -> P4:
        return P4(self.px, self.py, self.pz, self.E)

    @property
    def sqrt_s(self) -> float:
        return float(kin.sqrt_s(self.E, self.px, self.py, self.pz))

    @property
    def beta(self) -> kin.Vec3:
        return kin.cm_boost(self.E, self.px, self.py, self.pz)

    def to_lab(self, p: P4) -> P4:
        return P4(*(float(c) for c in kin.to_lab(*p, *self.beta)))

    def to_cm(self, p: P4) -> P4:
        return P4(*(float(c) for c in kin.to_cm(*p, *self.beta)))


@lru_cache(maxsize=None)
def beams(experiment: str) -> Beams:
    """The experiment's beams rounded to float32 exactly as the ntuple stores them, so that the
    processors' CM frame (computed from the stored branches) is the one the events were built in."""
    exp = load_experiment(experiment)
    E, px, py, pz = (float(np.float32(x)) for x in exp.total_four_momentum)
    return Beams(experiment, exp.experiment_number, E, px, py, pz)


def unit(cos_theta: float, phi: float) -> np.ndarray:
    sin_theta = math.sqrt(max(0.0, 1.0 - cos_theta * cos_theta))
    return np.array([sin_theta * math.cos(phi), sin_theta * math.sin(phi), cos_theta])


def from_momentum(p: float, direction: Sequence[float], mass: float) -> P4:
    """Four-momentum of |p| ``p`` along ``direction`` (need not be normalised) with ``mass``."""
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    return P4(float(p * d[0]), float(p * d[1]), float(p * d[2]), math.sqrt(p * p + mass * mass))


def from_angles(p: float, cos_theta: float, phi: float, mass: float) -> P4:
    """Four-momentum from |p|, polar angle (cos, from +z) and azimuth."""
    return from_momentum(p, unit(cos_theta, phi), mass)


def tau_p4(sqrt_s: float, cos_theta: float, phi: float, mass: float = TAU_MASS, energy: float | None = None) -> P4:
    """A tau of e+e- -> tau+ tau- in the CM frame: energy sqrt(s)/2 (or ``energy``) along (cos_theta, phi)."""
    e = 0.5 * sqrt_s if energy is None else energy
    return from_angles(math.sqrt(e * e - mass * mass), cos_theta, phi, mass)


def tau_pair(sqrt_s: float, cos_theta: float, phi: float, signal_mass: float = TAU_MASS,
             signal_energy: float | None = None) -> tuple[P4, P4]:
    """(signal tau, tag tau) back to back in the CM frame. The tag tau is a true tau of energy
    sqrt(s)/2; the signal side may be given another mass or energy (to move it off the peak)."""
    return (tau_p4(sqrt_s, cos_theta, phi, signal_mass, signal_energy),
            opposite(tau_p4(sqrt_s, cos_theta, phi)))


def opposite(p: P4, mass: float | None = None) -> P4:
    """The back-to-back partner of ``p`` with the same energy: the same mass by default, or ``mass``
    (then |p| follows from the energy)."""
    if mass is None:
        return P4(-p.px, -p.py, -p.pz, p.E)
    pmag = math.sqrt(max(p.E * p.E - mass * mass, 0.0))
    return from_momentum(pmag, (-p.px, -p.py, -p.pz), mass)


def p4_sum(*vectors: P4) -> P4:
    return P4(*(float(sum(v[k] for v in vectors)) for k in range(4)))


def mass_of(p: P4) -> float:
    return float(kin.mass(*p))


def momentum_of(p: P4) -> float:
    return float(kin.momentum(p.px, p.py, p.pz))


def _orthonormal(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(e1, e2, n): a right-handed basis whose third axis is ``direction``."""
    n = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 0.0, 1.0]) if abs(n[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    e1 = np.cross(helper, n)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(n, e1), n


def two_body(parent: P4, m1: float, m2: float, cos_theta_star: float, phi_star: float = 0.0) -> tuple[P4, P4]:
    """Decay ``parent`` -> 1 + 2: product 1 at (cos_theta_star, phi_star) in the parent's rest
    frame, measured from the parent's flight direction; both boosted back to the parent's frame."""
    M = mass_of(parent)
    if M < m1 + m2:
        raise ValueError(f"parent mass {M:.4f} below m1 + m2 = {m1 + m2:.4f}")
    p_star = math.sqrt((M * M - (m1 + m2) ** 2) * (M * M - (m1 - m2) ** 2)) / (2.0 * M)
    p_vec = np.array([parent.px, parent.py, parent.pz])
    e1, e2, n = _orthonormal(p_vec if np.linalg.norm(p_vec) > 0 else np.array([0.0, 0.0, 1.0]))
    s = math.sqrt(max(0.0, 1.0 - cos_theta_star**2))
    d = s * math.cos(phi_star) * e1 + s * math.sin(phi_star) * e2 + cos_theta_star * n
    beta = p_vec / parent.E
    out = []
    for sign, m in ((1.0, m1), (-1.0, m2)):
        rest = from_momentum(p_star, sign * d, m)
        out.append(P4(*(float(c) for c in kin.boost(*rest, *(-beta)))))  # rest frame -> parent's frame
    return out[0], out[1]


def three_body(parent: P4, masses: tuple[float, float, float], m23: float, cos_theta_1: float,
               cos_theta_23: float, phi_1: float = 0.0, phi_23: float = 0.0) -> tuple[P4, P4, P4]:
    """parent -> 1 + (23), (23) -> 2 + 3, with the (23) system of mass ``m23``: a point of the Dalitz
    plot and its orientation, through two chained ``two_body`` decays."""
    m1, m2, m3 = masses
    p1, p23 = two_body(parent, m1, m23, cos_theta_1, phi_1)
    p2, p3 = two_body(p23, m2, m3, cos_theta_23, phi_23)
    return p1, p2, p3


def rotate_towards(p: P4, target: P4, angle: float) -> P4:
    """``p`` rotated by ``angle`` (rad) in the plane it spans with ``target`` (towards ``target`` for a
    positive angle); energy and |p| unchanged."""
    v = np.array(p[:3])
    t = np.array(target[:3])
    u = v / np.linalg.norm(v)
    w = t - np.dot(t, u) * u
    w /= np.linalg.norm(w)
    d = math.cos(angle) * u + math.sin(angle) * w
    return from_momentum(np.linalg.norm(v), d, math.sqrt(max(mass_of(p) ** 2, 0.0)))


def scaled(p: P4, factor: float, mass: float | None = None) -> P4:
    """``p`` with its momentum scaled by ``factor`` (direction kept), in ``mass`` (default: its own)."""
    m = mass_of(p) if mass is None else mass
    return from_momentum(momentum_of(p) * factor, p[:3], m)


# ---------------------------------------------------------------------------------------------
# reconstructed objects and events (CM frame)


@dataclass(frozen=True)
class Track:
    """A reconstructed charged track: CM four-momentum in its true mass, charge, true species (|PDG|),
    PID overrides (branch suffix -> value), impact parameters (cm)."""

    p4: P4
    charge: int
    pdg: int
    pid: Mapping[str, float] = field(default_factory=dict)
    dr: float = 0.0
    dz: float = 0.0
    #: lab production point (cm) of a displaced track: dr, dz and the perigee covariance then follow from
    #: the straight line through it (``perigee``); None: a prompt track with the given dr, dz
    vertex: tuple[float, float, float] | None = None

    def with_pid(self, **values: float) -> "Track":
        return dataclasses.replace(self, pid={**self.pid, **values})

    def replace(self, **changes) -> "Track":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Photon:
    """A reconstructed photon: CM four-momentum (massless)."""

    p4: P4

    def replace(self, **changes) -> "Photon":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Event:
    """One event: reconstructed tracks and photons (CM frame) and a generator weight."""

    tracks: tuple[Track, ...] = ()
    photons: tuple[Photon, ...] = ()
    weight: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tracks", tuple(self.tracks))
        object.__setattr__(self, "photons", tuple(self.photons))

    def with_track(self, index: int, track: Track) -> "Event":
        tracks = list(self.tracks)
        tracks[index] = track
        return dataclasses.replace(self, tracks=tuple(tracks))

    def with_photon(self, index: int, photon: Photon) -> "Event":
        photons = list(self.photons)
        photons[index] = photon
        return dataclasses.replace(self, photons=tuple(photons))

    def adding(self, *objects: Track | Photon) -> "Event":
        tracks = self.tracks + tuple(o for o in objects if isinstance(o, Track))
        photons = self.photons + tuple(o for o in objects if isinstance(o, Photon))
        return dataclasses.replace(self, tracks=tracks, photons=photons)

    def without_track(self, index: int) -> "Event":
        return dataclasses.replace(self, tracks=tuple(t for i, t in enumerate(self.tracks) if i != index))

    def without_photon(self, index: int) -> "Event":
        return dataclasses.replace(self, photons=tuple(p for i, p in enumerate(self.photons) if i != index))


#: perigee errors of a synthetic track measured at its production point: transverse and z position (cm),
#: phi and tanLambda (a well-measured track; the covariance branches ``Track_cov_*``)
SYNTHETIC_TRACK_ERRORS = (20e-4, 30e-4, 1e-3, 1.5e-3)


def perigee(lab: P4, vertex: tuple[float, float, float] | None, dr: float, dz: float) -> tuple[float, float, np.ndarray]:
    """(dr, dz, 4 x 4 covariance of (d0, phi0, z0, tanLambda)) of a straight track, as the detector response
    stores them (simulation/detector/tracking.py ``perigee_measurement``): measured at ``vertex`` with
    ``SYNTHETIC_TRACK_ERRORS`` and extrapolated to the perigee; prompt tracks keep ``dr``, ``dz``."""
    pt = math.hypot(lab.px, lab.py)
    ux, uy, tl = lab.px / pt, lab.py / pt, lab.pz / pt
    s_ref = 0.0
    if vertex is not None:
        x, y, z = vertex
        dr, s_ref = x * uy - y * ux, x * ux + y * uy
        dz = z - s_ref * tl
    jac = np.zeros((4, 4))
    jac[0, 0] = jac[1, 2] = jac[2, 1] = jac[3, 3] = 1.0
    jac[0, 2], jac[2, 2], jac[2, 3] = s_ref, tl * dr, -s_ref
    return dr, dz, jac @ np.diag(np.square(SYNTHETIC_TRACK_ERRORS)) @ jac.T


def default_pid(experiment: str, pdg: int) -> dict[str, float]:
    """PID branch suffix -> value for a clearly identified track of species |pdg|."""
    pdg = abs(pdg)
    out = {}
    for name, species in PID_BRANCHES[experiment].items():
        out[name] = PID_HIGH if species == pdg or (name == "atcPIDBelle" and pdg == 2212) else PID_LOW
    return out


# ---------------------------------------------------------------------------------------------
# columns, file, NanoEvents


def signed_pdg(pdg: int, charge: int) -> int:
    """PDG code with the sign of a particle of ``charge``: leptons are positive when negative (mu- = 13),
    hadrons when positive (pi+ = 211)."""
    lepton = abs(pdg) in (11, 13, 15)
    return abs(pdg) * (1 if (charge < 0) == lepton else -1)


def _jagged(values: Iterable[Iterable[float]], dtype) -> ak.Array:
    lists = [list(v) for v in values]
    flat = np.asarray([x for v in lists for x in v], dtype=dtype)
    return ak.unflatten(flat, np.asarray([len(v) for v in lists], dtype=np.int64))


def columns(experiment: str, events: Sequence[Event], first_event: int = 0, truth: bool = True,
            energy_hypothesis: Literal["pion", "true"] = "pion") -> tuple[dict[str, np.ndarray], dict[str, ak.Array]]:
    """(event-level branches, {"Track": records, "Photon": records}) in the ntuple layout."""
    b = beams(experiment)
    n = len(events)
    f32, i32 = np.float32, np.int32
    event_level = {
        "__experiment__": np.full(n, b.experiment_number, i32),
        "__run__": np.zeros(n, i32),
        "__event__": np.arange(first_event, first_event + n, dtype=np.int64),
        "__weight__": np.asarray([e.weight for e in events], dtype=f32),
        "Ecms": np.full(n, b.sqrt_s, f32),
        "beamE": np.full(n, b.E, f32),
        "beamPx": np.full(n, b.px, f32),
        "beamPy": np.full(n, b.py, f32),
        "beamPz": np.full(n, b.pz, f32),
        "mcSignalIndex": np.full(n, -1, i32),
        # every emulated L1 line fired (the selections' trigger cut passes; tests/test_trigger.py tests the bits)
        **{trigger_branch(line): np.ones(n, bool) for line in load_detector(experiment).trigger.lines},
    }

    # PID pass probabilities (simulation/detector/pid.py): 1 / 0 as the track's PID value passes the cut,
    # so that PID-weighted processing of synthetic events counts what the thrown PID counts
    pid_cfg = load_detector(experiment).pid
    pass_probs = {pass_probability_branch(v, c): (v, c) for v in PID_BRANCHES[experiment] for c in pid_cfg.cuts_of(v)}
    trk: dict[str, list[list[float]]] = {k: [] for k in (
        "px", "py", "pz", "E", "charge", "dr", "dz", "pValue", "nCDCHits", "clusterE", "EoverP", "klmLayers",
        *PID_BRANCHES[experiment], *pass_probs, "mcIndex", "mcPDG", *(name for name, _, _ in covariance_branches()))}
    pho: dict[str, list[list[float]]] = {k: [] for k in (
        "E", "px", "py", "pz", "clusterTheta", "clusterPhi", "clusterE9E21", "clusterReg", "clusterTiming",
        "clusterErrorTiming", "mcIndex", "mcPDG")}
    for event in events:
        rows: dict[str, list[float]] = {k: [] for k in trk}
        for t in event.tracks:
            lab = b.to_lab(t.p4)
            p = momentum_of(lab)
            m = PION_MASS if energy_hypothesis == "pion" else mass_of(t.p4)
            pid = {**default_pid(experiment, t.pdg), **t.pid}
            unknown = set(pid) - set(PID_BRANCHES[experiment])
            if unknown:
                raise ValueError(f"{experiment} tracks have no PID branches {sorted(unknown)}")
            dr, dz, cov = perigee(lab, t.vertex, t.dr, t.dz)
            values = {
                **{name: cov[i, j] for name, i, j in covariance_branches()},
                "px": lab.px, "py": lab.py, "pz": lab.pz, "E": math.sqrt(p * p + m * m), "charge": t.charge,
                "dr": dr, "dz": dz, "pValue": 0.5, "nCDCHits": 50, "clusterE": 0.0, "EoverP": 0.0,
                "klmLayers": 0, **pid, "mcIndex": -1, "mcPDG": signed_pdg(t.pdg, t.charge),
                **{name: float(pid[v] > c) for name, (v, c) in pass_probs.items()},
            }
            for k in rows:
                rows[k].append(values[k])
        for k in trk:
            trk[k].append(rows[k])
        rows = {k: [] for k in pho}
        for g in event.photons:
            lab = b.to_lab(g.p4)
            p = momentum_of(lab)
            values = {
                "E": p, "px": lab.px, "py": lab.py, "pz": lab.pz,
                "clusterTheta": math.acos(max(-1.0, min(1.0, lab.pz / p))), "clusterPhi": math.atan2(lab.py, lab.px),
                "clusterE9E21": 1.0, "clusterReg": 2, "clusterTiming": 0.0, "clusterErrorTiming": 10.0, "mcIndex": -1, "mcPDG": 22,
            }
            for k in rows:
                rows[k].append(values[k])
        for k in pho:
            pho[k].append(rows[k])

    ints = {"charge", "nCDCHits", "klmLayers", "mcIndex", "mcPDG", "clusterReg"}
    if not truth:
        trk.pop("mcPDG"), trk.pop("mcIndex"), pho.pop("mcPDG"), pho.pop("mcIndex")
    collections = {
        "Track": ak.zip({k: _jagged(v, i32 if k in ints else np.float64 if k.startswith("cov_") else f32) for k, v in trk.items()}),
        "Photon": ak.zip({k: _jagged(v, i32 if k in ints else f32) for k, v in pho.items()}),
    }
    return event_level, collections


def write_events(experiment: str, events: Sequence[Event], path: Path, **kwargs) -> Path:
    """Write ``events`` to the ROOT file ``path`` (TTree ``tree``); returns ``path``."""
    event_level, collections = columns(experiment, events, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_ntuple(path, event_level, collections)
    return path


def read_events(path: Path, dataset: str, mode: Literal["virtual", "eager"] = "virtual", is_data: bool = False):
    """NanoEvents of a file with ``BelleSchema``, metadata as coffea's ``processor.Runner`` sets it."""
    import uproot
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.schema import BelleSchema

    path = Path(path)
    with uproot.open(path) as f:
        n = f[TREE_NAME].num_entries
        file_uuid = str(uuid.UUID(bytes=f.file.fUUID)) if len(f.file.fUUID) == 16 else ""
    # as processor.Runner: its own keys, then the fileset's metadata (analyses/datasets.py: is_data)
    metadata = {"dataset": dataset, "filename": str(path), "treename": TREE_NAME, "entrystart": 0,
                "entrystop": n, "fileuuid": file_uuid, "is_data": is_data}
    return NanoEventsFactory.from_root({str(path): TREE_NAME}, schemaclass=BelleSchema, metadata=metadata,
                                       mode=mode).events()


def make_events(experiment: str, events: Sequence[Event], directory: Path, dataset: str = "synthetic",
                name: str | None = None, mode: Literal["virtual", "eager"] = "virtual", is_data: bool = False,
                **column_options):
    """Write ``events`` into ``directory`` and read them back as NanoEvents (one chunk)."""
    path = Path(directory) / f"{name or dataset}.root"
    write_events(experiment, events, path, **column_options)
    return read_events(path, dataset, mode=mode, is_data=is_data)

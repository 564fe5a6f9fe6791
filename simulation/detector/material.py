"""Material in front of the drift chamber: photon conversions and electron bremsstrahlung.

A step on the ``Particles`` table, before tracking and calorimetry. The beam pipe and the PXD / SVD
layers are thin cylinders around the beam axis (``material:`` in the detector YAML). Every
non-background photon and electron (or positron) crosses the layers that lie outside its
production point, along its straight line from that point:

* **Conversions.** A photon converts in a layer with probability P = 1 - exp(-7/9 x R(E, Z)),
  x = t/X0 times the path-length factor 1/cos(angle to the layer normal) (= 1/sin(theta) for
  lines from the beam axis); 7/9 x is the high-energy (complete-screening) limit (PDG, "Passage of
  particles through matter", pair production) and R(E, Z) = sigma(E) / sigma(10 GeV) <= 1 corrects
  for the cross section still rising below a few GeV (R(Si) = 0.96 at 1 GeV, 0.72 at 100 MeV), with
  sigma the parametrisation of Geant4's G4BetheHeitlerModel::ComputeCrossSectionPerAtom (L. Urban,
  GEANT3 PHYS210, a fit to Hubbell et al., J. Phys. Chem. Ref. Data 9 (1980) 1023, good to ~5 %
  from 1.5 MeV to 100 GeV). The converted photon's row is removed and an
  e- / e+ pair is added at the conversion point, collinear with the photon, sharing its energy
  by the complete-screening Bethe-Heitler distribution dsigma/dx ~ 1 - 4/3 x(1 - x) (PDG,
  same section), so tracking, the V0 finder and the calorimeter see two electrons and no photon.
* **Bremsstrahlung.** An electron crossing a layer keeps a fraction z of its energy drawn from
  the Bethe-Heitler thin-layer distribution f(z) = (-ln z)^(c-1) / Gamma(c), c = x / ln 2
  (-ln z is Gamma(c)-distributed, so <z> = exp(-x) and <dE/E> = 1 - exp(-x) ~ x, the PDG
  mean loss). The radiated photon, if above ``brems_photon_min_energy``, is a new row starting at
  the crossing point along the electron's direction there (its initial direction turned by the
  helix bending over the transverse distance travelled); the electron row keeps its origin and
  direction with the reduced momentum (what the track fit in the CDC measures). Electrons whose
  helix does not reach a layer (2R < layer distance) do not cross it.

Order: conversions first, then bremsstrahlung of all electrons (conversion electrons radiate in the
layers outside their conversion point). Second-order effects (brems photons converting, multiple
scattering, energy loss by ionisation) are neglected.

Truth link (what basf2 truth matching gives, within what the mc list here can express):
* conversion e-/e+: ``mc_pdg`` = +-11 (the true species of the track), ``mother`` = the
  converted photon's ``mc_index`` (basf2 keeps conversion electrons that leave tracker hits as
  MCParticles whose mother is the photon); since they have no row of their own in the mc list,
  ``mc_index`` is the photon's -- a V0 of the pair then has ``mcIndex`` = photon, ``mcPDG`` = 22.
* bremsstrahlung photons: ``mc_index`` / ``mc_pdg`` of the radiating electron and ``mother`` =
  the electron's ``mc_index``: basf2's FullSim does not store brems photons as MCParticles by
  default (``StoreBremsstrahlungPhotons`` = False), so their clusters match the electron.

Random numbers come from the generator passed in (the response gives this step its own child
stream), so the other steps' draws do not depend on how many conversions happened.
"""

from __future__ import annotations

import numpy as np

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.flat import Particles
from belle_rare.simulation.detector.kinematics import helix_radius_cm
from belle_rare.simulation.detector.params import Material, MaterialLayer

ELECTRON_MASS = 0.51099895e-3  # GeV, PDG
#: Bethe-Heitler pair-production attenuation per radiation length (high-energy limit, PDG)
PAIR_PER_X0 = 7.0 / 9.0
#: cap of the path-length factor for lines grazing a layer
MAX_PATH_FACTOR = 20.0

_X_GRID = np.linspace(0.0, 1.0, 2001)
# cumulative of 1 - 4/3 x (1 - x) = x - 2/3 x^2 + 4/9 x^3, normalised by its value 7/9 at x = 1
_X_CDF = (_X_GRID - 2.0 / 3.0 * _X_GRID**2 + 4.0 / 9.0 * _X_GRID**3) / PAIR_PER_X0


def pair_energy_fraction(u: np.ndarray) -> np.ndarray:
    """Electron energy fraction x of a converted photon from uniform numbers ``u`` (inverse CDF of
    the complete-screening Bethe-Heitler spectrum dsigma/dx ~ 1 - 4/3 x(1 - x))."""
    return np.interp(u, _X_CDF, _X_GRID)


# G4BetheHeitlerModel::ComputeCrossSectionPerAtom: sigma = (Z + 1)(F1 Z + F2 Z^2 + F3), F_i polynomials
# of X = ln(E / m_e) with these coefficients (microbarn; only their ratios matter here)
_PAIR_A = (8.7842e2, -1.9625e3, 1.2949e3, -2.0028e2, 1.2575e1, -2.8333e-1)
_PAIR_B = (-1.0342e1, 1.7692e1, -8.2381, 1.3063, -9.0815e-2, 2.3586e-3)
_PAIR_C = (-4.5263e2, 1.1161e3, -8.6749e2, 2.1773e2, -2.0467e1, 6.5372e-1)
#: the high-energy limit is taken as the parametrisation at this energy (GeV), where it has flattened
PAIR_REFERENCE_ENERGY = 10.0


def _pair_cross_section(energy: np.ndarray, z: float) -> np.ndarray:
    """Geant4 / GEANT3 parametrised pair-production cross section (arbitrary units) at energies in GeV."""
    x = np.log(np.maximum(np.asarray(energy, dtype=np.float64), 1.5e-3) / ELECTRON_MASS)
    f1, f2, f3 = (np.polynomial.polynomial.polyval(x, c) for c in (_PAIR_A, _PAIR_B, _PAIR_C))
    return (z + 1.0) * (f1 * z + f2 * z * z + f3)


def pair_cross_section_ratio(energy: np.ndarray, z: float) -> np.ndarray:
    """sigma_pair(E) / sigma_pair(high-energy limit) for atomic number ``z``, in [0, 1]."""
    ratio = _pair_cross_section(energy, z) / _pair_cross_section(np.array(PAIR_REFERENCE_ENERGY), z)
    return np.clip(ratio, 0.0, 1.0)


def conversion_probability(thickness_x0: np.ndarray | float) -> np.ndarray:
    """P = 1 - exp(-7/9 t/X0) for traversed thicknesses in radiation lengths (high-energy limit)."""
    return -np.expm1(-PAIR_PER_X0 * np.asarray(thickness_x0, dtype=np.float64))


def brems_kept_fraction(thickness_x0: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Energy fraction z kept by electrons crossing ``thickness_x0`` (Bethe-Heitler: -ln z ~ Gamma(x / ln 2))."""
    shape = np.maximum(np.asarray(thickness_x0, dtype=np.float64), 1e-12) / np.log(2.0)
    return np.exp(-rng.standard_gamma(shape))


def _crossing(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, ux: np.ndarray, uy: np.ndarray, uz: np.ndarray, layer: MaterialLayer
) -> tuple[np.ndarray, ...]:
    """Where lines x + s u (unit u) leave the inside of the layer's cylinder.

    Returns (crosses, xc, yc, zc, path_factor, transverse distance travelled).
    """
    r = layer.radius
    a = ux * ux + uy * uy
    b = 2.0 * (x * ux + y * uy)
    c = x * x + y * y - r * r
    inside = (c < 0) & (a > 0)
    disc = np.where(inside, b * b - 4.0 * a * c, 0.0)
    s = np.where(inside, (-b + np.sqrt(disc)) / (2.0 * np.where(a > 0, a, 1.0)), 0.0)
    xc, yc, zc = x + s * ux, y + s * uy, z + s * uz
    # cosine between the direction and the layer normal (radial at the crossing point)
    cos_normal = np.abs(xc * ux + yc * uy) / r
    path_factor = np.minimum(1.0 / np.maximum(cos_normal, 1e-12), MAX_PATH_FACTOR)
    theta = np.degrees(np.arctan2(r, zc))
    covered = (theta >= layer.theta_range_deg.low) & (theta <= layer.theta_range_deg.high)
    return inside & covered, xc, yc, zc, path_factor, s * np.sqrt(a)


def _unit(p: Particles, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    norm = np.maximum(p.p[rows], np.finfo(float).tiny)
    return p.px[rows] / norm, p.py[rows] / norm, p.pz[rows] / norm


def _new_rows(
    event: np.ndarray, mc_index: np.ndarray, mc_pdg: np.ndarray, pdg: np.ndarray, mother: np.ndarray,
    charge: np.ndarray, mass: np.ndarray, momentum: tuple[np.ndarray, ...], vertex: tuple[np.ndarray, ...],
) -> Particles:
    """Rows of new (non-background) particles created in the material."""
    return Particles.created(
        event, pdg=pdg, charge=charge, mass=mass, momentum=momentum, vertex=vertex,
        mc_index=mc_index, mc_pdg=mc_pdg, mother=mother, background=False,
    )


def _select(p: Particles, keep: np.ndarray) -> Particles:
    return Particles.from_columns({name: values[keep] for name, values in p.columns().items()})


def _stack(parts: list[Particles]) -> Particles:
    """Rows of all parts, not yet regrouped by event (``apply_material`` sorts once at the end)."""
    return Particles.from_columns({name: np.concatenate([part.columns()[name] for part in parts]) for name in parts[0].columns()})


def convert_photons(p: Particles, cfg: Material, rng: np.random.Generator) -> Particles:
    """Photons converted in the layers replaced by e-/e+ pairs at the conversion points."""
    # (E > 4 m_e keeps both electrons' momenta above zero after the kinematic clip below)
    rows = np.flatnonzero((p.pdg == pdgtab.PHOTON) & ~p.background & (p.E > 4.0 * ELECTRON_MASS))
    ux, uy, uz = _unit(p, rows)
    alive = np.ones(len(rows), dtype=bool)
    where = np.zeros((len(rows), 3))
    for layer in cfg.layers:
        crosses, xc, yc, zc, factor, _ = _crossing(p.x[rows], p.y[rows], p.z[rows], ux, uy, uz, layer)
        u = rng.random(len(rows))  # one number per photon and layer: the count does not depend on the outcome
        x = layer.thickness_x0 * factor * pair_cross_section_ratio(p.E[rows], layer.atomic_number)
        converts = alive & crosses & (u < conversion_probability(x))
        where[converts] = np.stack([xc, yc, zc], axis=1)[converts]
        alive &= ~converts
    converted = rows[~alive]
    where = where[~alive]
    u = rng.random(len(converted))
    if len(converted) == 0:
        return p

    energy = p.E[converted]
    lo = 2.0 * ELECTRON_MASS / energy
    x = np.clip(pair_energy_fraction(u), lo, 1.0 - lo)
    cx, cy, cz = ux[~alive], uy[~alive], uz[~alive]
    parts = []
    for fraction, code in ((x, pdgtab.ELECTRON), (1.0 - x, -pdgtab.ELECTRON)):
        e = fraction * energy
        pmag = np.sqrt(np.maximum(e * e - ELECTRON_MASS**2, 0.0))
        n = len(converted)
        parts.append(_new_rows(
            p.event[converted], p.mc_index[converted], np.full(n, code), np.full(n, code),
            p.mc_index[converted], np.full(n, -np.sign(code)), np.full(n, ELECTRON_MASS),
            (pmag * cx, pmag * cy, pmag * cz), (where[:, 0], where[:, 1], where[:, 2]),
        ))
    keep = np.ones(len(p), dtype=bool)
    keep[converted] = False
    return _stack([_select(p, keep), *parts])


def radiate_electrons(p: Particles, cfg: Material, field_tesla: float, rng: np.random.Generator) -> Particles:
    """Electron energy lost to bremsstrahlung in the layers; photons above threshold become new rows."""
    rows = np.flatnonzero((np.abs(p.pdg) == pdgtab.ELECTRON) & ~p.background)
    ux, uy, uz = _unit(p, rows)
    energy = p.E[rows].copy()
    mass = p.mass[rows]
    sin_theta = np.hypot(ux, uy)
    charge = p.charge[rows]
    photons = []
    for layer in cfg.layers:
        crosses, xc, yc, zc, factor, travelled = _crossing(p.x[rows], p.y[rows], p.z[rows], ux, uy, uz, layer)
        pt = np.sqrt(np.maximum(energy**2 - mass**2, 0.0)) * sin_theta
        radius = helix_radius_cm(pt, field_tesla)
        crosses &= travelled < 2.0 * radius  # curlers turn back before the layer
        kept = brems_kept_fraction(layer.thickness_x0 * factor, rng)
        # an electron never radiates all of its kinetic energy (keeps its row a moving particle)
        radiated = np.where(crosses, np.minimum((1.0 - kept) * energy, 0.999 * (energy - mass)), 0.0)
        energy = energy - radiated

        emit = radiated > cfg.brems_photon_min_energy
        # direction at the crossing point: turned by the helix bending angle 2 asin(d / 2R) in the
        # transverse plane (positive charges turn clockwise in a field along +z)
        bend = -np.sign(charge) * 2.0 * np.arcsin(np.clip(travelled / (2.0 * np.maximum(radius, 1e-9)), 0.0, 1.0))
        cos_b, sin_b = np.cos(bend), np.sin(bend)
        gx, gy = ux * cos_b - uy * sin_b, ux * sin_b + uy * cos_b
        k = radiated[emit]
        src = rows[emit]
        n = len(src)
        photons.append(_new_rows(
            p.event[src], p.mc_index[src], p.mc_pdg[src], np.full(n, pdgtab.PHOTON), p.mc_index[src],
            np.zeros(n), np.zeros(n), (k * gx[emit], k * gy[emit], k * uz[emit]), (xc[emit], yc[emit], zc[emit]),
        ))

    out = Particles.from_columns({name: values.copy() for name, values in p.columns().items()})
    pmag = np.sqrt(np.maximum(energy**2 - mass**2, 0.0))
    out.px[rows], out.py[rows], out.pz[rows], out.E[rows] = pmag * ux, pmag * uy, pmag * uz, energy
    return _stack([out, *photons])


def apply_material(p: Particles, cfg: Material, field_tesla: float, rng: np.random.Generator) -> Particles:
    """Conversions, then bremsstrahlung; rows grouped by event again (new rows after each event's old ones)."""
    if not cfg.layers:
        return p
    return Particles.concatenate([radiate_electrons(convert_photons(p, cfg, rng), cfg, field_tesla, rng)])

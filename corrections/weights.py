"""Typed helpers that evaluate the payload corrections on numpy or awkward arrays.

Inputs may be floats, numpy arrays or awkward arrays, flat or jagged (correctionlib broadcasts
awkward arrays itself); outputs have the shape of the array inputs. ``syst`` is "nominal",
"up" or "down"; ``corrections.syst_for(variation, source)`` turns a processor's variation
name into it. Object weights (lepton ID, fake rate) are per object: multiply them over the
selected objects of an event (e.g. ``ak.prod(w, axis=1)``).
"""

from __future__ import annotations

from typing import Union

import awkward as ak
import correctionlib
import numpy as np

from belle_rare.corrections.variations import SYSTS, Syst

Array = Union[ak.Array, np.ndarray, float]
SPECIES = ("e", "mu")


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} '{value}' (choose from {', '.join(allowed)})")


def _evaluate_keyed(cset: correctionlib.CorrectionSet, name: str, key: str, what: str, syst: Syst) -> float:
    """Evaluate a (key, syst) correction; an unknown key is an error that names it."""
    _check(syst, SYSTS, "syst")
    try:
        return float(cset[name].evaluate(key, syst))
    except IndexError:
        raise ValueError(f"no {what} '{key}' in the '{name}' correction") from None


def lepton_id_weight(
    cset: correctionlib.CorrectionSet, species: str, p: Array, cos_theta: Array, syst: Syst = "nominal"
) -> Array:
    """Data/MC lepton-ID efficiency ratio per lepton (lab |p| in GeV, lab cos theta)."""
    _check(species, SPECIES, "lepton species")
    _check(syst, SYSTS, "syst")
    return cset["lepton_id"].evaluate(species, p, cos_theta, syst)


def fake_rate_weight(
    cset: correctionlib.CorrectionSet, species: str, p: Array, cos_theta: Array, syst: Syst = "nominal"
) -> Array:
    """Data/MC ratio of the pion -> ``species`` misidentification rate, per misidentified pion."""
    _check(species, SPECIES, "lepton species")
    _check(syst, SYSTS, "syst")
    return cset["pion_fake_rate"].evaluate(species, p, cos_theta, syst)


def tracking_weight(cset: correctionlib.CorrectionSet, n_tracks: Array, syst: Syst = "nominal") -> Array:
    """Per-event weight for ``n_tracks`` tracks: the per-track ratio to that power (fully correlated)."""
    _check(syst, SYSTS, "syst")
    return float(cset["tracking"].evaluate(syst)) ** n_tracks


def photon_efficiency_weight(
    cset: correctionlib.CorrectionSet, n_photons: Array, syst: Syst = "nominal"
) -> Array:
    """Per-event weight for ``n_photons`` reconstructed photons (per-photon ratio to that power)."""
    _check(syst, SYSTS, "syst")
    return float(cset["photon_efficiency"].evaluate(syst)) ** n_photons


def photon_energy_scale(cset: correctionlib.CorrectionSet, syst: Syst = "nominal") -> float:
    """Factor to multiply simulated photon energies by."""
    _check(syst, SYSTS, "syst")
    return float(cset["photon_energy_scale"].evaluate(syst))


def momentum_scale(cset: correctionlib.CorrectionSet, syst: Syst = "nominal") -> float:
    """Factor to multiply charged-track momenta by."""
    _check(syst, SYSTS, "syst")
    return float(cset["momentum_scale"].evaluate(syst))


def trigger_weight(cset: correctionlib.CorrectionSet, channel: str, syst: Syst = "nominal") -> float:
    """Per-event trigger data/MC weight of an analysis channel (e.g. ``taulgamma_mugamma``, ``tau3mu``)."""
    return _evaluate_keyed(cset, "trigger", channel, "trigger channel", syst)


def luminosity_weight(cset: correctionlib.CorrectionSet, dataset: str, syst: Syst = "nominal") -> float:
    """Luminosity scale of a data set (a ``luminosity_fb`` key): 1, 1 + u or 1 - u."""
    return _evaluate_keyed(cset, "luminosity", dataset, "luminosity data set", syst)


def luminosity_uncertainty(cset: correctionlib.CorrectionSet, dataset: str) -> float:
    """Relative 1-sigma uncertainty of a data set's integrated luminosity."""
    # payload values carry at most 10 decimals (build_payloads.DIGITS): drop float residue
    return round(luminosity_weight(cset, dataset, "up") - luminosity_weight(cset, dataset, "nominal"), 10)

"""correctionlib payloads (``belle.json``, ``belle2.json``) and the helpers that apply them.

``load(experiment)`` returns the cached ``correctionlib.CorrectionSet``; the helpers in
``corrections.weights`` evaluate it on awkward/numpy arrays; ``VARIATIONS`` lists the variation
names processors fill and ``syst_for`` maps one of them onto a correction's ``syst`` input.
The payloads are built from the sourced table in ``corrections/build_payloads.py``.
"""

from belle_rare.corrections.loader import load, payload_path
from belle_rare.corrections.variations import SOURCES, SYSTS, VARIATIONS, Syst, syst_for
from belle_rare.corrections.weights import (
    fake_rate_weight,
    lepton_id_weight,
    luminosity_uncertainty,
    luminosity_weight,
    momentum_scale,
    photon_efficiency_weight,
    photon_energy_scale,
    tracking_weight,
    trigger_weight,
)

__all__ = [
    "SOURCES",
    "SYSTS",
    "VARIATIONS",
    "Syst",
    "fake_rate_weight",
    "lepton_id_weight",
    "load",
    "luminosity_uncertainty",
    "luminosity_weight",
    "momentum_scale",
    "payload_path",
    "photon_efficiency_weight",
    "photon_energy_scale",
    "syst_for",
    "tracking_weight",
    "trigger_weight",
]

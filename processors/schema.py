"""coffea NanoEvents schema for belle-rare ntuples (basf2-style event-based trees).

Branches ``X_field`` with a counter ``nX`` become the collection ``events.X`` with fields
``field``; collections carrying ``px, py, pz, E`` get four-vector behaviour (``.mass``, ``.p``,
``+``, ``.boost``, ... from coffea/scikit-hep vector); event-level branches stay as they are
(``events.Ecms``, ``events.beamE``, ``events.__event__`` ...).

Usage::

    from coffea.nanoevents import NanoEventsFactory
    from belle_rare.processors.schema import BelleSchema
    events = NanoEventsFactory.from_root({"file.root": "tree"}, schemaclass=BelleSchema).events()
    events.Track.mass, events.Photon.E, events.MCParticle.PDG
"""

from __future__ import annotations

from coffea.nanoevents.methods import base, vector
from coffea.nanoevents.schemas.base import BaseSchema, zip_forms

FOUR_MOMENTUM = ("px", "py", "pz", "E")
# scikit-hep vector refuses a second temporal coordinate next to E, so a stored candidate mass
# is exposed as basf2's InvM (events.Pi0.InvM); .mass is computed from the four-momentum
MASS_FIELD_RENAMES = {"M": "InvM", "mass": "InvM"}


class BelleSchema(BaseSchema):
    """Group ``nX`` / ``X_*`` branches into collections; four-momentum collections are LorentzVectors."""

    __dask_capable__ = True

    def __init__(self, base_form, *args, **kwargs):
        super().__init__(base_form, *args, **kwargs)
        branches = dict(zip(self._form["fields"], self._form["contents"]))
        output = self._build_collections(branches)
        self._form["fields"] = list(output)
        self._form["contents"] = list(output.values())

    @staticmethod
    def _build_collections(branches: dict) -> dict:
        counters = sorted(
            name[1:] for name in branches if name.startswith("n") and any(b.startswith(name[1:] + "_") for b in branches)
        )
        output = {}
        grouped: set[str] = set()
        for coll in counters:
            prefix = coll + "_"
            fields = {b[len(prefix) :]: branches[b] for b in branches if b.startswith(prefix)}
            grouped.update(prefix + f for f in fields)
            grouped.add("n" + coll)
            record = "NanoCollection"
            if all(f in fields for f in FOUR_MOMENTUM):
                record = "LorentzVector"
                fields = {MASS_FIELD_RENAMES.get(f, f): form for f, form in fields.items()}
            output[coll] = zip_forms(fields, coll, record)
        for name, form in branches.items():
            if name not in grouped:
                output[name] = form
        return output

    @classmethod
    def behavior(cls) -> dict:
        behavior = {}
        behavior.update(base.behavior)
        behavior.update(vector.behavior)
        return behavior

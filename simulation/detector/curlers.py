"""Duplicate tracks of low-pT curlers (Belle).

A charged particle of low transverse momentum curls in the solenoid field and its later half-loops
can be found and fitted again as a separate track. Belle analyses remove such duplicates among the
tracks they use; the B0 -> K*0 tau tau paper (PRD 108, L011102) does so for the tracks outside the tag
(pT < 0.3 GeV/c, |dpT| < 0.1 GeV/c, cosine of the opening angle > 0.9 or < 0.1) and states "The number
of signal candidates doubles after removing duplicate tracks" -- the one published measure of how often
they occur, to which ``probability`` is calibrated (``configs/detector/belle.yaml``).

The duplicate is the next half-loop fitted outward from the IP: the helix run backwards, i.e. momentum
reversed and charge reversed, with the original's impact parameters (the same helix passes the IP) and a
small relative momentum smear (energy loss, an independent fit). It is added after the tag is built --
the tag uses the original -- so a tag track's duplicate stays in the rest of the event, where a removal
among the remaining tracks cannot pair it. Duplicates follow their event's original tracks, so the local
track indices the other collections hold (V0 daughters) stay valid.
"""

from __future__ import annotations

import numpy as np

from belle_rare.simulation.detector.params import CurlerDuplicates

#: track columns whose sign the reversed helix flips
REVERSED = ("px", "py", "pz", "charge")
#: track columns the duplicate resets: never a tag constituent
RESET = ("inTag",)


def add_curler_duplicates(columns: dict[str, np.ndarray], event: np.ndarray, cfg: CurlerDuplicates,
                          rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Track columns (rows grouped by event) with the duplicates appended after each event's tracks."""
    pt = np.hypot(columns["px"], columns["py"])
    source = np.flatnonzero((pt < cfg.pt_max) & (rng.random(len(pt)) < cfg.probability))
    scale = 1.0 + cfg.momentum_smear * rng.standard_normal(len(source))
    duplicate = {}
    for name, values in columns.items():
        copy = values[source].copy()
        if name in ("px", "py", "pz"):
            copy = (-copy * scale).astype(values.dtype)
        elif name == "charge":
            copy = -copy
        elif name in RESET:
            copy = np.zeros_like(copy)
        duplicate[name] = copy
    if "E" in columns:  # the energy follows the smeared momentum (the mass hypothesis of the original)
        p2 = columns["px"][source].astype(float) ** 2 + columns["py"][source] ** 2 + columns["pz"][source] ** 2
        m2 = np.maximum(columns["E"][source].astype(float) ** 2 - p2, 0.0)
        duplicate["E"] = np.sqrt(m2 + p2 * scale**2).astype(columns["E"].dtype)
    all_event = np.concatenate([event, event[source]])
    order = np.argsort(all_event, kind="stable")  # originals keep their place, duplicates after them
    merged = {name: np.concatenate([columns[name], duplicate[name]])[order] for name in columns}
    return merged, all_event[order]

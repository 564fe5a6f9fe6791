"""Curler duplicate tracks (simulation/detector/curlers.py), which the Belle B0 -> K*0 tau tau selection
removes among the tracks outside the tag (processors/kstartautau.py ``curler_duplicates``): the duplicate is
the reversed helix of a low-pT track, appended after its event's tracks, never in the tag."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.processors.jagged_kernels import offsets_of
from belle_rare.processors.kstartautau import Curler, curler_duplicates, curler_duplicates_flat
from belle_rare.simulation.detector.curlers import add_curler_duplicates
from belle_rare.simulation.detector.params import CurlerDuplicates, load_detector

PAPER_REMOVAL = Curler(pt_max=0.3, dpt_max=0.1, cos_above=0.9, cos_below=0.1)  # PRD 108, L011102 as printed


def tracks(n_events: int, per_event: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Flat track columns (rows grouped by event) with pT flat in 0-0.6 GeV."""
    n = n_events * per_event
    pt, phi = rng.uniform(0.0, 0.6, n), rng.uniform(-np.pi, np.pi, n)
    pz = rng.normal(0.0, 0.3, n)
    columns = {"px": (pt * np.cos(phi)).astype(np.float32), "py": (pt * np.sin(phi)).astype(np.float32),
               "pz": pz.astype(np.float32), "E": np.sqrt(pt**2 + pz**2 + 0.1396**2).astype(np.float32),
               "charge": rng.choice([-1, 1], n).astype(np.int32), "dr": rng.normal(0, 0.01, n).astype(np.float32),
               "dz": rng.normal(0, 0.02, n).astype(np.float32), "inTag": (rng.random(n) < 0.5).astype(np.int32),
               "mcIndex": np.arange(n, dtype=np.int32)}
    return columns, np.repeat(np.arange(n_events), per_event)


def test_duplicates_are_reversed_low_pt_tracks_at_the_configured_rate():
    cfg = CurlerDuplicates(pt_max=0.3, probability=0.55, momentum_smear=0.02)
    columns, event = tracks(4000, 5, np.random.default_rng(1))
    out, out_event = add_curler_duplicates(columns, event, cfg, np.random.default_rng(2))
    assert np.all(np.diff(out_event) >= 0)  # still grouped by event
    n_dup = len(out_event) - len(event)
    low = np.hypot(columns["px"], columns["py"]) < cfg.pt_max
    # binomial: 0.55 of the ~10,000 tracks below 0.3 GeV, within 4 sigma; none above
    assert abs(n_dup - cfg.probability * low.sum()) < 4 * np.sqrt(low.sum() * 0.55 * 0.45)
    # the originals keep their local index (the V0 daughters' indices stay valid); duplicates follow them
    local = np.arange(len(out_event)) - np.searchsorted(out_event, out_event)
    first = np.zeros(len(out_event), bool)
    _, first_rows = np.unique(np.stack([out_event, out["mcIndex"]]), axis=1, return_index=True)
    first[first_rows] = True
    assert np.array_equal(out["mcIndex"][first], columns["mcIndex"])  # originals, in their order
    assert np.array_equal(local[first], np.arange(len(event)) % 5)
    dup = ~first
    src = out["mcIndex"][dup]
    assert np.all(np.hypot(columns["px"][src], columns["py"][src]) < cfg.pt_max)
    cos = -(out["px"][dup] * columns["px"][src] + out["py"][dup] * columns["py"][src] + out["pz"][dup] * columns["pz"][src])
    p2 = columns["px"][src] ** 2 + columns["py"][src] ** 2 + columns["pz"][src] ** 2
    assert np.all(cos > 0.99 * p2 * (1 - 5 * cfg.momentum_smear))  # reversed, |p| within the smear
    assert np.all(out["charge"][dup] == -columns["charge"][src])
    assert np.all(out["inTag"][dup] == 0)
    assert np.array_equal(out["dr"][dup], columns["dr"][src]) and np.array_equal(out["dz"][dup], columns["dz"][src])


def test_the_papers_removal_drops_the_duplicate_not_the_original():
    """Every duplicate of a signal-side track is caught by the paper's curler removal, which keeps the
    original (equal impact parameters: the later row is dropped). Three soft tracks per event, their pT
    more than 0.1 GeV apart, so that no genuine pair passes the printed criteria (cos < 0.1 would pair them)."""
    cfg = CurlerDuplicates(pt_max=0.3, probability=1.0, momentum_smear=0.02)
    n_events = 500
    columns, event = tracks(n_events, 3, np.random.default_rng(3))
    columns["inTag"][:] = 0
    pt = np.tile([0.03, 0.14, 0.27], n_events)
    scale = pt / np.hypot(columns["px"], columns["py"])
    columns["px"], columns["py"] = (columns["px"] * scale).astype(np.float32), (columns["py"] * scale).astype(np.float32)
    out, out_event = add_curler_duplicates(columns, event, cfg, np.random.default_rng(4))
    counts = np.bincount(out_event, minlength=n_events)
    assert np.all(counts == 6)
    trk = ak.unflatten(ak.zip({k: out[k] for k in ("px", "py", "pz", "dr", "dz")}), counts)
    drop = ak.to_numpy(ak.flatten(curler_duplicates(trk, PAPER_REMOVAL)))
    local = np.tile(np.arange(6), n_events)
    assert np.array_equal(drop, local >= 3)  # exactly the duplicates


@pytest.mark.parametrize("removal", [PAPER_REMOVAL, Curler(pt_max=0.5, dpt_max=0.3, cos_above=0.5, cos_below=-0.5)])
def test_flat_removal_flags_the_same_tracks_as_the_awkward_one(removal: Curler):
    """The processor's flat form (one pass per chunk on numpy columns) against the awkward reference, on
    events of 0-7 tracks with duplicates and genuine soft pairs (equal impact parameters too: the tie rule)."""
    rng = np.random.default_rng(5)
    counts = rng.integers(0, 8, 3000)
    columns, _ = tracks(1, int(counts.sum()), rng)
    columns["dz"][1::5] = 0.0
    columns["dr"][1::5] = 0.0
    columns["dz"][2::5] = 0.0
    columns["dr"][2::5] = 0.0  # rows 1 and 2 of every 5: the same IP distance
    trk = ak.unflatten(ak.zip({k: columns[k] for k in ("px", "py", "pz", "dr", "dz")}), counts)
    reference = ak.to_numpy(ak.flatten(curler_duplicates(trk, removal)))
    flat = curler_duplicates_flat(offsets_of(counts.astype(np.int64)), *(columns[k] for k in ("px", "py", "pz", "dr", "dz")), removal)
    assert reference.sum() > 100  # the check has duplicates to find
    assert np.array_equal(flat, reference)


def test_belle_has_duplicates_belle2_none():
    belle = load_detector("belle").tracking.curler_duplicates
    assert belle is not None and belle.pt_max == pytest.approx(0.3) and 0.0 < belle.probability < 1.0
    assert load_detector("belle2").tracking.curler_duplicates is None

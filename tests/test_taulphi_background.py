"""taulphi's background from PID-weighted simulation: closure with the thrown PID where both have
statistics (B meson pairs: real kaons and leptons, hundreds of thrown-PID candidates per 10^4 events),
the yield and the fraction in the RSB's mass range that r_MC-like transfers depend on."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.processors.taulphi import CHANNELS, SEARCH


@pytest.fixture(scope="module")
def b_pairs(tmp_path_factory):
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("taulphi_mixed")
    produce(Request("belle2", "mixed", 8000, 17, out, events_per_file=8000), progress=False)
    return sorted(out.glob("belle2_mixed_*.root"))


def _preselected(proc, paths, weighted: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """channel -> (weight inside the preselection, 0 outside; M_lphi), thrown or PID-weighted."""
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.base import Calibration, with_trigger
    from belle_rare.processors.schema import BelleSchema

    proc.pid_weighting = weighted
    out: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {c: [] for c in CHANNELS}
    for path in paths:
        meta = {"dataset": "mixed", "filename": str(path), "kind": "background", "is_data": False}
        events = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, metadata=meta, mode="eager").events()
        objects, fired = proc.objects(events, Calibration()), proc.trigger_fired(events)
        for channel in CHANNELS:
            selection = with_trigger(proc.select(events, objects, channel), fired)
            w = proc.event_weights(events, selection, channel, is_data=False).weight()
            out[channel].append((np.where(selection.regions["presel"], w, 0.0), selection.values["m"]))
    return {c: (np.concatenate([a for a, _ in v]), np.concatenate([b for _, b in v])) for c, v in out.items()}


def test_pid_weighted_yield_and_mass_fraction_close_with_the_thrown_pid_on_b_pairs(b_pairs):
    """Same events, paired: the PID-weighted and thrown-PID preselected yields, and the part of it with
    M(l phi) in the RSB's mass range (the transfer r_MC rests on), agree within 3 sigma of the per-event
    difference; the weighted one from > 20 x more contributing events."""
    cfg = SEARCH.load_config()
    proc = SEARCH.processor("belle2", cfg, training=True)  # no stored model needed; nominal pass
    thrown = _preselected(proc, b_pairs, False)
    weighted = _preselected(proc, b_pairs, True)
    lo, hi = cfg.signal_region.rsb_m_range
    for channel in CHANNELS:
        (w_t, m_t), (w_w, m_w) = thrown[channel], weighted[channel]
        assert (w_t > 0).sum() >= 20, channel  # the closure has statistics
        assert (w_w > 0).sum() > 20 * (w_t > 0).sum(), channel
        for label, (a, b) in {"all": (w_t, w_w),
                              "M in RSB range": (np.where((m_t > lo) & (m_t < hi), w_t, 0.0),
                                                 np.where((m_w > lo) & (m_w < hi), w_w, 0.0))}.items():
            diff = np.sqrt(((a - b) ** 2).sum())
            assert abs(a.sum() - b.sum()) < 3 * diff, (channel, label, a.sum(), b.sum(), diff)

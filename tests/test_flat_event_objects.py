"""processors/event_objects.py: the flat event objects tau3mu and taulphi select on
(``flat_chunk`` + ``flat_event_objects``) equal the awkward ones (``event_objects`` +
``flatten_objects``, the reference) bit for bit and in dtype, on generated events under every
calibration, and on a chunk where no event passes the prefilter."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors.base import calibrations
from belle_rare.processors.event_objects import (
    PhotonCuts, TrackCuts, event_objects, flat_chunk, flat_event_objects, flatten_objects,
)

TRACKS = TrackCuts(dr_max=1.0, dz_max=3.0, cos_theta=(-0.866, 0.956))   # configs/searches/tau3mu.yaml
PHOTONS = PhotonCuts(e_min=0.2, cos_theta=(-0.866, 0.956))
FIELDS = ["charge", "muonID"]


@pytest.fixture(scope="module")
def uds_events(tmp_path_factory):
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.schema import BelleSchema
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("flat_uds")
    produce(Request("belle2", "uds", 1500, 11, out, events_per_file=1500), progress=False)
    path = str(next(out.glob("belle2_uds_*.root")))
    return NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, mode="eager",
                                       metadata={"dataset": "uds", "filename": path}).events()


def _assert_same(flat, reference) -> None:
    for name in ("keep", "offsets", "event", "local", "good", "hemi", "roots", "g_offsets", "thrust"):
        got, want = getattr(flat, name), getattr(reference, name)
        assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), name
    for name in ("t_cm", "g_cm", "miss", "beta"):
        for got, want in zip(getattr(flat, name), getattr(reference, name)):
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), name
    for field in FIELDS:
        assert np.array_equal(flat.track[field], reference.track[field]), field


@pytest.mark.parametrize("min_good", [3, 1000])  # 1000: no event kept (empty chunk)
def test_flat_event_objects_equal_awkward(uds_events, min_good):
    def prefilter(offsets, track, good):
        return jk.segment_count(offsets, good) >= min_good

    chunk = flat_chunk(uds_events, TRACKS, FIELDS, prefilter)
    assert chunk.keep.sum() > 100 if min_good == 3 else not chunk.keep.any()
    for calibration in calibrations("belle2", nominal_only=False):
        reference = flatten_objects(event_objects(uds_events, chunk.keep, calibration, TRACKS, PHOTONS), FIELDS)
        _assert_same(flat_event_objects(chunk, calibration, PHOTONS), reference)

"""processors/brems_recovery.py: basf2 correctBremsBelle (all photons in the cone) and correctBrems (one)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.processors.brems_recovery import BremsRecovery, recover_brems
from belle_rare.processors.kinematics import P4


def _events() -> tuple[P4, ak.Array, P4]:
    """Event 0: an electron along x (2 GeV) and a muon along y; photons of 0.3 / 0.1 GeV at 20 / 40 mrad
    from the electron and one of 1 GeV opposite. Event 1: no track, one photon. Event 2: two electrons
    60 mrad apart and a photon 35 / 25 mrad from them."""
    a = ak.Array
    tracks = P4(a([[2.0, 0.0], [], [1.0, np.cos(0.06)]]), a([[0.0, 1.0], [], [0.0, np.sin(0.06)]]),
                a([[0.0, 0.0], [], [0.0, 0.0]]), a([[2.0, 1.0], [], [1.0, 1.0]]))
    electron = a([[True, False], [], [True, True]])
    e = a([[0.3, 0.1, 1.0], [0.5], [0.2]])
    angle = a([[0.02, 0.04, np.pi], [0.0], [0.035]])
    photons = P4(e * np.cos(angle), e * np.sin(angle), ak.zeros_like(e), e)
    return tracks, electron, photons


@pytest.mark.parametrize(("method", "energies", "added", "free"), [
    ("belle", [[2.4, 1.0], [], [1.0, 1.2]], [[2, 0], [], [0, 1]], [[False, False, True], [True], [False]]),
    ("belle2", [[2.3, 1.0], [], [1.0, 1.2]], [[1, 0], [], [0, 1]], [[False, True, True], [True], [False]]),
])
def test_photons_in_the_cone_go_to_their_closest_electron(method, energies, added, free):
    tracks, electron, photons = _events()
    out = recover_brems(tracks, electron, photons, BremsRecovery(method=method, max_angle=0.05))
    assert np.allclose(ak.to_numpy(ak.flatten(out.tracks.E)), np.concatenate(energies))
    assert out.n_photons.tolist() == added
    assert out.photon_free.tolist() == free
    # momentum is added as well: the electron of event 0 gains the photons' px
    assert ak.to_list(out.tracks.px)[0][0] == pytest.approx(2.0 + (0.3 * np.cos(0.02) + (0.1 * np.cos(0.04) if method == "belle" else 0)))


def test_photon_energy_floor_and_narrow_cone():
    tracks, electron, photons = _events()
    out = recover_brems(tracks, electron, photons, BremsRecovery(method="belle", max_angle=0.05, photon_e_min=0.15))
    assert out.n_photons.tolist()[0] == [1, 0]
    out = recover_brems(tracks, electron, photons, BremsRecovery(method="belle", max_angle=0.01))
    assert ak.sum(out.n_photons) == 0 and ak.all(out.photon_free)

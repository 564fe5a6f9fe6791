"""e+e- -> mu+mu- at Belle II: the invariant mass of two opposite-charge muon candidates."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import awkward as ak
import numpy as np

from belle_rare.configs.loader import StrictModel
from belle_rare.core.histograms import new_hist, regular
from belle_rare.processors.base import SearchProcessor, Selection, packed
from belle_rare.processors.registry import Search


class Binning(StrictModel):
    bins: int
    start: float
    stop: float


class DimuonConfig(StrictModel):
    """The schema of dimuon.yaml."""

    luminosity: str  # simulation is scaled to this data set (`belle-rare run` reads it)
    muon_id_min: float
    mass: Binning


class DimuonProcessor(SearchProcessor):
    """Dimuon invariant mass: two opposite-charge tracks with muonID above the cut (Belle II)."""

    name = "dimuon"
    experiments = ("belle2",)
    channels = ("mumu",)
    branches = ("nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_muonID", "__weight__")
    config_model = DimuonConfig

    def book(self):
        m = self.config.mass
        return {"mass": new_hist(regular(m.bins, m.start, m.stop, "mass", r"$M_{\mu\mu}$ [GeV]"))}

    def select(self, events, objects, channel):
        muons = events.Track[events.Track.muonID > self.config.muon_id_min]
        first, second = ak.unzip(ak.firsts(ak.combinations(muons, 2), axis=1))  # None without two muons
        cuts = {
            "two muons": ak.num(muons) == 2,
            "opposite charge": first.charge * second.charge < 0,
        }
        # Track_E is in the pion mass hypothesis: irrelevant for 5 GeV muons
        mass = ak.to_numpy(ak.fill_none((first + second).mass, np.nan))
        return Selection(cuts=packed(cuts), values={"mass": mass})

    def fill_nominal(self, hists, selection, channel, weight):
        keep = selection.passing()
        hists["mass"].fill(channel=channel, region="all", mass=selection.values["mass"][keep], weight=weight[keep])


SEARCH = Search(
    name="dimuon",
    processor=DimuonProcessor,
    config_file=Path(str(resources.files("belle_rare_dimuon") / "dimuon.yaml")),
    demo=None,
)

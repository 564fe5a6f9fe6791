"""benchmarks/suite.py's reference row: the minimal coffea processor (issue 15's yardstick) computes the
three-muon mass it claims, on coffea's own Runner, and the table prints it beside a search's row."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import suite  # noqa: E402


def write_tracks(path: Path, px: list[list[float]], py: list[list[float]], pz: list[list[float]]) -> None:
    import awkward as ak

    with uproot.recreate(path) as f:
        f["tree"] = {"Track": ak.zip({"px": px, "py": py, "pz": pz, "E": [[0.0] * len(x) for x in px]}),
                     "__weight__": np.ones(len(px))}


def test_three_muon_mass_of_the_first_three_tracks(tmp_path: Path) -> None:
    from coffea import processor

    from belle_rare.processors.schema import BelleSchema

    # event 0: three muons; event 1: two tracks (skipped); event 2: four tracks (the first three used)
    px = [[1.0, -0.5, 0.2], [1.0, 2.0], [0.3, 0.0, -1.0, 5.0]]
    py = [[0.0, 0.7, -0.1], [0.0, 0.0], [0.0, 1.2, 0.4, 5.0]]
    pz = [[0.5, 0.0, 2.0], [1.0, 0.0], [-2.0, 0.1, 0.0, 5.0]]
    write_tracks(tmp_path / "f.root", px, py, pz)
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=BelleSchema, chunksize=2)
    out = runner({"d": {"files": {str(tmp_path / "f.root"): "tree"}}}, suite.three_muon_processor(), treename="tree")
    assert out["events"].value == 3

    def mass(i: int) -> float:
        p = np.array([px[i][:3], py[i][:3], pz[i][:3]])
        e = np.sqrt((p**2).sum(axis=0) + suite.MUON_MASS**2).sum()
        return float(np.sqrt(e**2 - (p.sum(axis=1) ** 2).sum()))

    h = out["mass"]
    expected = np.histogram([mass(0), mass(2)], bins=h.axes[0].edges)[0]
    assert np.array_equal(h.values(), expected) and h.values().sum() == 2


def test_table_prints_the_reference_row(capsys) -> None:
    row = {"search": "coffea minimal (three-muon mass)", "experiment": "belle", "processes": ["x's files"], "events": 100,
           "events_per_s_core_nominal": 99000.0, "events_per_s_core_all": 99000.0, "over_read_nominal": 2.1,
           "over_read_all": 2.1, "reference": True}
    suite.print_table([row], {}, argparse.Namespace(events=100, chunksize=50))
    out = capsys.readouterr().out
    assert "coffea minimal" in out and "99,000" in out and "2.1" in out
    json.dumps(row)

"""Sample production end to end: files, manifest, reproducibility, the schema, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from belle_rare.analyses.cli import main
from belle_rare.configs.experiment import Experiment
from belle_rare.configs.loader import ConfigError, load_config
from belle_rare.simulation.production import Request, produce
from belle_rare.core.units import pdg_mass
from belle_rare.simulation.generators.isr import gamma_star_mass_fraction


def _generate(out: Path, process: str = "tautau", events: int = 600, seed: int = 5, **kw) -> dict:
    return produce(Request("belle2", process, events, seed, out, events_per_file=250, **kw), progress=False)


def test_manifest_cross_section_and_luminosity(tmp_path, belle2):
    m = _generate(tmp_path)
    assert m["events"] == 600
    assert [f["entries"] for f in m["files"]] == [250, 250, 100]
    # tautau is the gamma* > 10 GeV slice of the tau pairs: sigma(tautau) x its ISR share (issue 11)
    share = gamma_star_mass_fraction(belle2.sqrt_s_nominal, pdg_mass(15), 10.0, None)
    assert 0.75 < share < 0.85
    assert m["cross_section_nb"] == pytest.approx(belle2.cross_section("tautau") * share)
    # L = N / sigma, 1 nb = 1e6 fb
    assert m["equivalent_luminosity_fb"] == pytest.approx(600 / (0.919 * share * 1e6))
    on_disk = json.loads((tmp_path / "belle2_tautau.json").read_text())
    assert on_disk["files"] == m["files"]
    entries = sum(uproot.open(tmp_path / f["path"])["tree"].num_entries for f in m["files"])
    assert entries == 600


def test_signal_normalisation_includes_both_taus(tmp_path, belle2):
    m = _generate(tmp_path, "sig_tau3mu", events=100)
    # both taus, BR_ref = 1e-8, and the share of tau pairs the sample generates (Pythia's gamma* above
    # 10 GeV, as its tautau base: the tau pairs with harder ISR are not in the sample)
    share = gamma_star_mass_fraction(belle2.sqrt_s_nominal, pdg_mass(15), 10.0, None)
    assert 0.75 < share < 0.85
    assert m["cross_section_nb"] == pytest.approx(2 * belle2.cross_section("tautau") * share * 1e-8)


def test_same_seed_gives_identical_files(tmp_path):
    a = _generate(tmp_path / "a", events=300, seed=9)
    b = _generate(tmp_path / "b", events=300, seed=9)
    c = _generate(tmp_path / "c", events=300, seed=10)
    for fa, fb, fc in zip(a["files"], b["files"], c["files"]):
        ta = uproot.open(tmp_path / "a" / fa["path"])["tree"].arrays(library="np")
        tb = uproot.open(tmp_path / "b" / fb["path"])["tree"].arrays(library="np")
        tc = uproot.open(tmp_path / "c" / fc["path"])["tree"].arrays(library="np")
        assert ta.keys() == tb.keys()
        for key in ta:
            assert all(np.array_equal(x, y) for x, y in zip(ta[key], tb[key])), key
        assert not all(np.array_equal(x, y) for x, y in zip(ta["MCParticle_px"], tc["MCParticle_px"]))


def test_schema_reads_the_ntuples(tmp_path):
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.schema import BelleSchema

    m = _generate(tmp_path, "mumu", events=300)
    events = NanoEventsFactory.from_root(
        {str(tmp_path / m["files"][0]["path"]): "tree"}, schemaclass=BelleSchema, mode="eager"
    ).events()
    for collection in ("Track", "Photon", "MCParticle"):
        assert collection in events.fields
    muons = events.MCParticle[(abs(events.MCParticle.PDG) == 13) & (events.MCParticle.status > 0)]
    assert np.allclose(ak.to_numpy(ak.flatten(muons.mass)), 0.10566, atol=2e-3)
    assert ak.sum(ak.num(events.Track)) > 0
    assert np.all(np.abs(ak.to_numpy(ak.flatten(events.Track.charge))) == 1)
    assert np.all(ak.to_numpy(ak.flatten(events.Track.mass)) > 0)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--process", "nope", "--events", "10"], "--process"),
        (["--process", "tautau", "--events", "0"], "--events"),
        (["--process", "tautau", "--events", "-5"], "--events"),
        (["--process", "sig_zprime", "--events", "10", "--ctau", "1"], "--ctau"),
    ],
)
def test_bad_arguments_give_one_line_errors_and_no_files(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["generate", "--experiment", "belle2", "--out", str(out), *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and message in err
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_is_a_clear_error(tmp_path, capsys):
    if os.geteuid() == 0:
        target = Path("/proc/belle-rare-cannot-write-here")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "out"
    code = main(["generate", "--experiment", "belle2", "--process", "tautau", "--events", "10", "--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and len(err.strip().splitlines()) == 1


def test_malformed_config_names_file_and_key(tmp_path):
    bad = tmp_path / "belle2.yaml"
    text = Path(__file__).parents[1].joinpath("configs", "experiments", "belle2.yaml").read_text()
    bad.write_text(text.replace("energy: 7.004", "energy: seven"))
    with pytest.raises(ConfigError, match=r"belle2.yaml: her.energy"):
        load_config(bad, Experiment)
    bad.write_text(text.replace("sqrt_s_nominal", "sqrt_s_nomnal"))
    with pytest.raises(ConfigError, match=r"belle2.yaml: sqrt_s_nomnal"):
        load_config(bad, Experiment)


def test_failed_chunk_leaves_no_partial_output(tmp_path, monkeypatch):
    import belle_rare.simulation.production as production

    calls = {"n": 0}
    real = production.produce_chunk

    def flaky(req, chunk):
        calls["n"] += 1
        if chunk.index == 1:
            raise RuntimeError("worker lost")
        return real(req, chunk)

    monkeypatch.setattr(production, "produce_chunk", flaky)
    with pytest.raises(RuntimeError, match="worker lost"):
        _generate(tmp_path, events=600)
    assert list(tmp_path.iterdir()) == []


def test_cli_list_runs():
    out = subprocess.run([sys.executable, "-m", "belle_rare.analyses.cli", "generate", "--list"], capture_output=True, text=True)
    assert out.returncode == 0 and "sig_kstartautau" in out.stdout


def _branches(path: Path) -> dict[str, ak.Array]:
    with uproot.open(path) as f:
        return {name: f["tree"][name].array(library="ak") for name in f["tree"].keys()}


def test_a_file_is_written_block_by_block(tmp_path, monkeypatch):
    """A file larger than a block is generated, simulated and written block by block (one basket
    per block: the worker never holds the whole file); its first block is bit-identical to a file of
    one block with the same seed (block 0 keeps the whole-file random streams), the event numbers
    follow on, and the same seed gives the same file."""
    import belle_rare.simulation.production as production

    monkeypatch.setattr(production, "WRITE_BLOCK_EVENTS", 100)
    one_block = produce(Request("belle2", "tautau", 100, 9, tmp_path / "one", events_per_file=100), progress=False)
    blocks = produce(Request("belle2", "tautau", 250, 9, tmp_path / "three", events_per_file=250), progress=False)
    again = produce(Request("belle2", "tautau", 250, 9, tmp_path / "again", events_per_file=250), progress=False)
    assert [f["entries"] for f in blocks["files"]] == [250] and blocks["files"][0]["generated"] == 250
    path = tmp_path / "three" / blocks["files"][0]["path"]
    with uproot.open(path) as f:
        assert f["tree"].num_entries == 250
        assert f["tree"]["Track_px"].num_baskets == 3 and f["tree"]["__event__"].num_baskets == 3
    written, first = _branches(path), _branches(tmp_path / "one" / one_block["files"][0]["path"])
    np.testing.assert_array_equal(written["__event__"], np.arange(250))
    for name, values in first.items():
        assert ak.array_equal(written[name][:100], values), name
    # later blocks have their own response streams: not a copy of the first block's draws
    assert not ak.array_equal(written["Track_px"][100:200], written["Track_px"][:100])
    for name, values in _branches(tmp_path / "again" / again["files"][0]["path"]).items():
        assert ak.array_equal(written[name], values), name
    assert not list((tmp_path / "three").glob(".*.part"))


def test_an_interrupted_file_leaves_nothing(tmp_path, monkeypatch):
    """Ctrl-C while a later block is simulated: no file, no temporary file, no manifest."""
    import belle_rare.simulation.detector as detector
    import belle_rare.simulation.production as production

    monkeypatch.setattr(production, "WRITE_BLOCK_EVENTS", 100)
    real, calls = detector.simulate_detector, {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(detector, "simulate_detector", interrupted)
    with pytest.raises(KeyboardInterrupt):
        produce(Request("belle2", "tautau", 250, 9, tmp_path, events_per_file=250), progress=False)
    assert calls["n"] == 2 and list(tmp_path.iterdir()) == []


def test_a_stopped_regeneration_leaves_no_manifest_over_the_files_it_replaced(tmp_path, monkeypatch):
    """A sample regenerated into the same directory (another seed) and stopped after its first file: the earlier
    manifest must be gone, not left describing files that are now the new production's or removed (a resumed
    paper-mode run compares manifests to decide what to regenerate)."""
    import belle_rare.simulation.production as production

    produce(Request("belle2", "mumu", 200, 3, tmp_path, events_per_file=100), progress=False)
    manifest = tmp_path / "belle2_mumu.json"
    assert manifest.is_file()
    real, calls = production.produce_chunk, {"n": 0}

    def stopped(req, chunk):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(req, chunk)

    monkeypatch.setattr(production, "produce_chunk", stopped)
    with pytest.raises(KeyboardInterrupt):
        produce(Request("belle2", "mumu", 200, 4, tmp_path, events_per_file=100), progress=False)
    assert calls["n"] == 2 and not manifest.exists()

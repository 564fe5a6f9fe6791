"""The tau -> l gamma search end to end on tiny generated samples: physics numbers, executors,
chunking, correction variations and bad input."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import hist
import numpy as np
import particle
import pytest
import uproot

from belle_rare.analyses.cli import main
from belle_rare.configs.loader import load_config
from belle_rare.core.errors import UserError
from belle_rare.analyses.runner import RunOptions, run_search
from belle_rare.simulation.production import Request, produce
from belle_rare.simulation.production import gamma_star_share

TAU_MASS = particle.Particle.from_pdgid(15).mass / 1000.0


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("taulgamma_samples")
    for process, events in (("sig_taumugamma", 3000), ("sig_tauegamma", 1500), ("tautau", 1500), ("mumu", 1000)):
        produce(Request("belle", process, events, 21, out, events_per_file=1500), progress=False)
    return out


@pytest.fixture(scope="module")
def small_samples(tmp_path_factory) -> Path:
    """One file per dataset, for the bad-input tests."""
    out = tmp_path_factory.mktemp("taulgamma_small")
    for process, events in (("sig_taumugamma", 1000), ("mumu", 500)):
        produce(Request("belle", process, events, 22, out, events_per_file=1000), progress=False)
    return out


def _run(samples: Path, out: Path, **kw):
    opts = RunOptions(search="taulgamma", experiment="belle", samples=samples, out=out, progress=False, **kw)
    return run_search(opts)


@pytest.fixture(scope="module")
def nominal(samples, tmp_path_factory):
    return _run(samples, tmp_path_factory.mktemp("run"), executor="iterative")


def test_signal_peaks_at_the_tau_mass_with_percent_level_efficiency(nominal):
    h = nominal["histograms"]["sig_taumugamma"]["mbc_de"]
    sig = h[{"channel": "mugamma", "region": sum, "tag": sum}]
    mbc = sig.project("mbc")
    centres, values = mbc.axes[0].centers, mbc.values()
    window = np.abs(centres - TAU_MASS) < 0.05
    peak = np.average(centres[window], weights=values[window])
    assert peak == pytest.approx(TAU_MASS, abs=0.01)
    de = sig.project("de")
    assert np.average(de.axes[0].centers, weights=de.values()) == pytest.approx(0.0, abs=0.01)
    counts = nominal["cutflow"]["sig_taumugamma"]["mugamma"]["raw"]
    efficiency = counts["signal region"] / counts["all events"]
    assert 0.01 < efficiency < 0.15  # paper 3.7 %: the same order, within the sample's statistics
    # the cutflow only ever decreases
    steps = list(counts.values())
    assert all(a >= b for a, b in zip(steps, steps[1:]))


def test_every_event_is_accounted_for(nominal):
    events = nominal["metadata"]["events"]
    assert events["sig_taumugamma"]["read"] == 3000
    assert all(d["read"] == d["expected"] for d in events.values())
    assert nominal["metadata"]["chunk_report"]["failed"] == []


def _assert_same_histograms(a, b):
    assert a.keys() == b.keys() and a
    for dataset in a:
        assert a[dataset].keys() == b[dataset].keys()
        for name, ha in a[dataset].items():
            hb = b[dataset][name]
            # category order can differ between runs: compare category by category
            categorical = [ax.name for ax in ha.axes if isinstance(ax, hist.axis.StrCategory) and ax.traits.growth]
            assert [sorted(ha.axes[c]) for c in categorical] == [sorted(hb.axes[c]) for c in categorical], (dataset, name)
            for values in itertools.product(*(list(ha.axes[c]) for c in categorical)):
                key = dict(zip(categorical, values))
                np.testing.assert_allclose(ha[key].values(), hb[key].values(), rtol=1e-9, atol=1e-12)


def test_executors_and_chunk_sizes_agree(samples, tmp_path):
    signal = samples / "belle_sig_taumugamma.json"  # one manifest: 3000 events in two files
    iterative = _run(signal, tmp_path / "i", executor="iterative", chunksize=1500)
    futures = _run(signal, tmp_path / "f", executor="futures", workers=2, chunksize=1000)
    _assert_same_histograms(iterative["histograms"], futures["histograms"])
    dask = _run(signal, tmp_path / "d", executor="dask", workers=2, chunksize=1500)
    _assert_same_histograms(iterative["histograms"], dask["histograms"])
    assert futures["metadata"]["events"]["sig_taumugamma"]["read"] == 3000


def _sr_yield(result, variation: str, dataset: str = "sig_taumugamma", channel: str = "mugamma") -> float:
    h = result["histograms"][dataset]["yields"]
    return h[{"channel": channel, "variation": variation, "region": "signal", "tag": sum}].value


@pytest.mark.parametrize("source", ["tracking", "photonEff", "trigger", "luminosity", "leptonID"])
def test_weight_variations_move_the_yield_the_right_way(nominal, source):
    nom = _sr_yield(nominal, "nominal")
    assert _sr_yield(nominal, f"{source}Up") > nom > _sr_yield(nominal, f"{source}Down")


def test_only_the_yields_carry_variations(nominal):
    hists = nominal["histograms"]["sig_taumugamma"]
    assert len(hists["yields"].axes["variation"]) == 17
    assert [name for name, h in hists.items() if "variation" in h.axes.name] == ["yields"]


def test_photon_energy_scale_shifts_delta_e(samples):
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.base import calibrations
    from belle_rare.processors.registry import get_search
    from belle_rare.processors.schema import BelleSchema

    search = get_search("taulgamma")
    proc = search.processor("belle", search.load_config())
    events = NanoEventsFactory.from_root({str(samples / "belle_sig_taumugamma_0000.root"): "tree"}, schemaclass=BelleSchema,
                                         mode="eager").events()
    mean_de = {}
    for calibration in calibrations("belle", nominal_only=False):
        if calibration.momentum != "nominal":
            continue
        selection = proc.select(events, proc.objects(events, calibration), "mugamma")
        passed = selection.regions["signal"] | selection.regions["outside"]
        mean_de[calibration.photon_energy] = float(np.mean(selection.values["de"][passed]))
    assert mean_de["up"] > mean_de["nominal"] > mean_de["down"]


def test_outputs_written_atomically_with_reports(samples, tmp_path):
    code = main(["run", "taulgamma", "--experiment", "belle", "--samples", str(samples), "--out", str(tmp_path), "--executor", "iterative"])
    assert code == 0
    out = tmp_path / "taulgamma"
    for name in ("histograms.coffea", "histograms.root", "cutflow.json", "metadata.json", "validation.json", "efficiency_report.txt"):
        assert (out / name).is_file(), name
    assert (out / "plots" / "mugamma_mbc_de_plane.png").is_file()
    assert (out / "plots" / "mugamma_mbc_de_plane.pdf").is_file()
    rows = json.loads((out / "validation.json").read_text())
    assert {"quantity", "ours", "paper", "unit", "note"} <= set(rows[0])
    assert any("efficiency" in r["quantity"] for r in rows)
    with uproot.open(out / "histograms.root") as f:
        h = f["signal/mugamma/sig_taumugamma/mbc_de__nominal"]
        assert h.classname.startswith("TH2")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _bad_copy(samples: Path, tmp_path: Path, kind: str) -> tuple[Path, str]:
    bad = tmp_path / "samples"
    shutil.copytree(samples, bad)
    target = bad / "belle_mumu_0000.root"
    if kind == "truncated":
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif kind == "not_root":
        target.write_text("this is not a ROOT file\n")
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind in ("missing_branch", "wrong_tree"):
        _rewrite(samples / target.name, target, tree="tree" if kind == "missing_branch" else "ntuple",
                 drop="Photon" if kind == "missing_branch" else None)
    return bad, str(target)


def _rewrite(src: Path, dst: Path, tree: str, drop: str | None) -> None:
    """Copy an ntuple into another tree name and/or without one collection."""
    import awkward as ak

    from belle_rare.simulation.ntuple import write_ntuple

    arrays = uproot.open(src)["tree"].arrays()
    names = sorted({f.split("_")[0] for f in arrays.fields if "_" in f and not f.startswith("__")})
    collections = {
        c: ak.zip({f[len(c) + 1 :]: arrays[f] for f in arrays.fields if f.startswith(c + "_")})
        for c in names if c != drop
    }
    flat = [f for f in arrays.fields if not any(f.startswith(c + "_") or f == "n" + c for c in names)]
    write_ntuple(dst, {f: ak.to_numpy(arrays[f]) for f in flat}, collections, tree=tree)


@pytest.mark.parametrize("kind", ["truncated", "not_root", "empty", "missing_branch", "wrong_tree"])
def test_bad_input_files(small_samples, tmp_path, kind):
    bad, target = _bad_copy(small_samples, tmp_path, kind)
    with pytest.raises(UserError, match=target.replace(".", r"\.")):
        _run(bad, tmp_path / "out", executor="iterative")
    result = _run(bad, tmp_path / "out2", executor="iterative", skip_bad_files=True)
    skipped = result["metadata"]["chunk_report"]["skipped_files"]
    assert [s["file"] for s in skipped] == [target]
    events = result["metadata"]["events"]
    assert events["sig_taumugamma"]["read"] == 1000
    assert events["mumu"]["read"] == 0  # its only file was skipped; the rest ran
    assert events["mumu"]["expected"] == 500


@pytest.mark.parametrize("path,bad", [(("selection", "m_nu2", "pion"), [0.0, 1.0]), (("photons", "signal_e_mn"), 0.5),
                                      (("selection", "cos_lgamma"), [0.4]), (("signal_region", "paper", "mugamma", "sigma_de_hi"), 0.1)])
def test_a_misspelt_or_malformed_nested_key_names_file_and_key(tmp_path, path, bad):
    import yaml

    from belle_rare.configs.loader import ConfigError
    from belle_rare.processors.registry import get_search

    search = get_search("taulgamma")
    data = yaml.safe_load(search.config_file.read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    broken = tmp_path / "taulgamma.yaml"
    broken.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=rf"{broken.name}: {'.'.join(path)}"):
        load_config(broken, search.processor.config_model)


def _synthetic_result(with_background_events: bool) -> dict:
    """A run result of two signals and a tau-pair background (filled or empty), histograms as the processor books them."""
    from belle_rare.processors.registry import get_search

    search = get_search("taulgamma")
    proc = search.processor("belle", search.load_config())
    rng = np.random.default_rng(5)
    hists = {}
    for dataset, n, mbc, de in (("sig_taumugamma", 400, 1.777, 0.0), ("sig_tauegamma", 400, 1.777, 0.0), ("tautau", 50, 1.70, -0.05)):
        h = proc.book()
        if dataset != "tautau" or with_background_events:
            for channel in ("mugamma", "egamma"):
                x_mbc, x_de = rng.normal(mbc, 0.01, n), rng.normal(de, 0.005, n)
                w = np.full(n, 3.0)
                h["mbc_de"].fill(channel=channel, region="outside", tag="pi", mbc=x_mbc, de=x_de, weight=w)
                h["nminus1_m_nu2"].fill(channel=channel, region="all", tag="pi", x=rng.uniform(0, 2, n), weight=w)
        hists[dataset] = h
    # as the runner writes it: 2 sigma_tautau x BR_ref 1e-8 x the gamma* slice share of the signal sample
    sig = 1.838e-8 * gamma_star_share("sig_taumugamma", "belle")
    datasets = {"sig_taumugamma": {"kind": "signal", "process": "sig_taumugamma", "cross_section_nb": sig, "scale": 3e-3},
                "sig_tauegamma": {"kind": "signal", "process": "sig_tauegamma", "cross_section_nb": sig, "scale": 3e-3},
                "tautau": {"kind": "background", "process": "tautau", "cross_section_nb": 0.919, "scale": 4.5e4}}
    meta = {"experiment": "belle", "luminosity_fb": 988.0, "datasets": datasets}
    return {"processor": proc, "metadata": meta, "histograms": hists}


@pytest.mark.parametrize("with_background_events", [True, False])
def test_report_plots_stack_the_backgrounds_and_overlay_the_signal_at_the_reference_br(tmp_path, with_background_events):
    from belle_rare.analyses.taulgamma import make_plots, simulated_branching_fraction

    result = _synthetic_result(with_background_events)
    # the signal samples are normalised to B = sigma / (2 sigma_tautau) = 1e-8 (configs/processes.yaml)
    assert simulated_branching_fraction(result["metadata"], "sig_taumugamma") == pytest.approx(1.0e-8, rel=0.01)
    written = make_plots(result, tmp_path)
    names = {p.name for p in written}
    for channel in ("mugamma", "egamma"):
        assert {f"{channel}_nminus1_m_nu2.png", f"{channel}_mbc_de_plane.png", f"{channel}_mbc.png"} <= names
    contents = json.loads((tmp_path / "contents.json").read_text())
    assert contents["luminosity_fb"] == 988.0
    for name in ("mugamma_nminus1_m_nu2", "egamma_mbc_de_plane", "mugamma_mbc"):
        plot = contents["plots"][name]
        assert plot["signal_branching_fraction"] == pytest.approx(5.0e-7)  # the paper's fig. 2
        if with_background_events:
            assert plot["backgrounds"]["tautau"] == pytest.approx(150.0)  # 50 events x weight 3, all in range
        else:
            assert plot["backgrounds"] == {}  # the plot carries "no simulated background event selected"

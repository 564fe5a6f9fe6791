"""Run outputs: ``write_run_outputs`` (nested histograms -> .coffea, .root, JSON, atomically) and
``open_run`` (a run's outputs as one object for notebooks), on a synthetic run written here."""

from __future__ import annotations

import json

import coffea.util
import hist
import numpy as np
import pytest
import uproot

import belle_rare
from belle_rare.analyses.outputs import write_run_outputs
from belle_rare.analyses.run_output import Run, open_run
from belle_rare.core.errors import UserError
from belle_rare.core.histograms import count_axis, new_hist, regular
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book

TAGS = ["lepton", "pi", "rho"]
SYSTS = ("photonEff", "trigger")


def _histograms():
    """taulgamma-like: ``yields`` (variations, tag classes), ``mbc_de`` (nominal only, tag x M_bc x dE),
    ``n_tracks`` (1D), ``count`` (a counting histogram), ``cube`` (3D, .coffea only)."""
    hists: dict = {}
    tag = hist.axis.StrCategory(TAGS, name="tag", label="tag class")
    yields = book(hists, "yields", tag)
    plane = book(hists, "mbc_de", tag, regular(4, 1.7, 1.8, "mbc"), regular(2, -0.1, 0.1, "de"), systematics=False)
    counts = book(hists, "count", count_axis(), systematics=False)
    split = np.array([0.5, 0.25, 0.25])
    for dataset, channel, total in (("sig_taumugamma", "mugamma", 8.0), ("sig_tauegamma", "egamma", 6.0),
                                    ("tautau", "mugamma", 4.0), ("tautau", "egamma", 2.0)):
        yields.set_bins(dataset, channel, "signal", total * split, total * split / 100)
        for syst in SYSTS:
            yields.set_bins(dataset, channel, "signal", 1.02 * total * split, total * split / 100, variation=syst + "Up")
            yields.set_bins(dataset, channel, "signal", 0.98 * total * split, total * split / 100, variation=syst + "Down")
        plane.set_bins(dataset, channel, "signal", total * split[:, None, None] / 8, total * split[:, None, None] / 800)
        counts.set_bins(dataset, channel, "signal", total, total / 100)
    # a variation filled with nothing (an empty slice: not written to ROOT)
    yields.set_bins("tautau", "mugamma", "signal", 0.0, 0.0, variation="leptonIDUp")
    for dataset in list(hists):
        one_d = new_hist(regular(5, 0, 5, "n", "tracks"))
        one_d.fill(channel="mugamma", region="presel", n=[2, 2, 3], weight=1.5)
        cube = new_hist(regular(2, 0, 1, "a"), regular(2, 0, 1, "b"), regular(2, 0, 1, "c"))
        cube.fill(channel="mugamma", region="presel", a=0.5, b=0.5, c=0.5)
        hists[dataset].update(n_tracks=one_d, cube=cube)
    return hists


def _cutflow():
    def flow(n0, n1, w):
        return {"raw": {"all events": n0, "two tracks": n1, "ellipse": n1 // 2},
                "weighted": {"all events": float(n0), "two tracks": float(n1), "ellipse": w}}

    return {"sig_taumugamma": {"mugamma": flow(1500, 400, 8.0), "egamma": flow(1500, 20, 0.0)},
            "sig_tauegamma": {"mugamma": flow(1500, 10, 0.0), "egamma": flow(1500, 300, 6.0)},
            "tautau": {"mugamma": flow(500, 50, 4.0), "egamma": flow(500, 40, 2.0)}}


def _metadata():
    def info(kind, process, xs):
        return {"kind": kind, "process": process, "cross_section_nb": xs, "scale": 1.0, "parameters": {}}

    return {
        "search": "taulgamma", "experiment": "belle", "luminosity_fb": 988.0,
        "datasets": {"sig_taumugamma": info("signal", "sig_taumugamma", 2 * SIGMA_TAUTAU_NB * 1e-7),
                     "sig_tauegamma": info("signal", "sig_tauegamma", 2 * SIGMA_TAUTAU_NB * 1e-7),
                     "tautau": info("background", "tautau", SIGMA_TAUTAU_NB)},
        "events": {"sig_taumugamma": {"read": 1500}, "sig_tauegamma": {"read": 1500}, "tautau": {"read": 500}},
    }


def _validation(tmp):
    (tmp / "validation.json").write_text(json.dumps([{"quantity": "efficiency", "ours": 0.03, "paper": 0.037}]))


@pytest.fixture
def results(tmp_path):
    out = tmp_path / "results"
    write_run_outputs(out, "taulgamma", _histograms(), _cutflow(), _metadata(), extra=_validation)
    return out


def _root_histograms(path):
    with uproot.open(path) as f:
        return {k.rsplit(";", 1)[0]: f[k] for k, cls in f.classnames().items() if cls.startswith("TH")}


def test_write_run_outputs_layout(results):
    base = results / "taulgamma"
    assert sorted(p.name for p in base.iterdir()) == ["cutflow.json", "histograms.coffea", "histograms.root", "metadata.json", "validation.json"]
    assert not [p for p in results.iterdir() if p.name.startswith(".")]  # no temporary directory left
    nested = coffea.util.load(str(base / "histograms.coffea"))
    assert set(nested) == {"sig_taumugamma", "sig_tauegamma", "tautau"}
    assert set(nested["tautau"]) == {"yields", "mbc_de", "count", "n_tracks", "cube"}
    assert nested["tautau"]["yields"].axes.name == ("channel", "region", "variation", "tag")
    meta = json.loads((base / "metadata.json").read_text())
    assert json.loads((base / "cutflow.json").read_text()) == _cutflow()

    root = _root_histograms(base / "histograms.root")
    assert meta["root_histograms"] == len(root)
    # region/channel/dataset/NAME__VARIATION; a categorical-only histogram is a labelled TH1
    y = root["signal/mugamma/sig_taumugamma/yields__nominal"]
    assert y.classname == "TH1D" and list(y.axis().labels()) == TAGS
    assert y.values() == pytest.approx([4.0, 2.0, 2.0])
    assert root["signal/mugamma/sig_taumugamma/yields__photonEffUp"].values().sum() == pytest.approx(8.16)
    assert "signal/mugamma/tautau/yields__leptonIDUp" not in root  # empty non-nominal slice: skipped
    # variations of one dataset only where that dataset has the channel
    assert {k for k in root if k.startswith("signal/egamma/tautau/yields__")} == {
        f"signal/egamma/tautau/yields__{v}" for v in ("nominal", *(s + d for s in SYSTS for d in ("Up", "Down")))}
    # nominal-only histograms: __nominal; a categorical physics axis: summed, then one per value
    plane = root["signal/mugamma/tautau/mbc_de__nominal"]
    assert plane.classname == "TH2D" and plane.values().sum() == pytest.approx(4.0)
    assert root["signal/mugamma/tautau/mbc_de_tag_pi__nominal"].values().sum() == pytest.approx(1.0)
    assert not [k for k in root if "mbc_de" in k and not k.endswith("__nominal")]
    # a counting histogram: a one-bin TH1
    count = root["signal/egamma/sig_tauegamma/count__nominal"]
    assert count.classname == "TH1D" and count.values().tolist() == [6.0]
    assert count.variances().tolist() == pytest.approx([0.06])
    assert root["presel/mugamma/tautau/n_tracks__nominal"].values().tolist() == [0, 0, 3.0, 1.5, 0]
    assert not [k for k in root if "cube" in k]  # 3D: in the .coffea file only


def test_write_run_outputs_is_atomic(results):
    base = results / "taulgamma"
    before = (base / "histograms.root").read_bytes()

    def fail(tmp):
        (tmp / "half_written.png").write_text("x")
        raise RuntimeError("report failed")

    with pytest.raises(RuntimeError, match="report failed"):
        write_run_outputs(results, "taulgamma", _histograms(), {}, _metadata(), extra=fail)
    assert (base / "histograms.root").read_bytes() == before and (base / "validation.json").is_file()
    assert not (base / "half_written.png").exists()
    assert [p.name for p in results.iterdir()] == ["taulgamma"]
    # a histogram off the contract: nothing written, the previous output stays
    bad = {"tautau": {"yields": hist.Hist(hist.axis.Regular(3, 0, 1, name="x"), storage=hist.storage.Weight())}}
    with pytest.raises(UserError, match="dataset 'tautau': histogram 'yields': axes must start with channel, region"):
        write_run_outputs(results, "taulgamma", bad, {}, _metadata())
    with pytest.raises(UserError, match=r"histograms\['yields'\] is a Hist"):
        write_run_outputs(results, "taulgamma", {"yields": new_hist(count_axis())}, {}, _metadata())
    assert (base / "histograms.root").read_bytes() == before
    # a run killed between moving the old output aside and moving the new one in: recovered
    (base).rename(results / ".taulgamma.old")
    write_run_outputs(results, "taulgamma", _histograms(), _cutflow(), _metadata(), extra=lambda tmp: None)
    assert [p.name for p in results.iterdir()] == ["taulgamma"] and not (base / "validation.json").exists()
    # replaced: the new output only
    write_run_outputs(results, "taulgamma", {}, {}, {**_metadata(), "luminosity_fb": 1.0})
    assert json.loads((base / "metadata.json").read_text())["luminosity_fb"] == 1.0


def test_open_run_finds_the_run(results):
    for args in ((results,), (results, "taulgamma"), (results / "taulgamma",), (str(results / "taulgamma"), "taulgamma")):
        run = open_run(*args)
        assert isinstance(run, Run) and run.directory == results / "taulgamma"
    run = belle_rare.open_run(results)
    assert (run.search, run.experiment, run.luminosity_fb) == ("taulgamma", "belle", 988.0)
    assert run.datasets == {"sig_taumugamma": "signal", "sig_tauegamma": "signal", "tautau": "background"}
    assert run.signals() == ["sig_taumugamma", "sig_tauegamma"] and run.backgrounds() == ["tautau"]
    assert run.cutflow == _cutflow() and run.metadata["events"]["tautau"]["read"] == 500
    assert run.validation[0]["quantity"] == "efficiency" and run.limits is None
    assert set(run.histograms["tautau"]) == {"yields", "mbc_de", "count", "n_tracks", "cube"}


def test_open_run_errors_are_one_line(results, tmp_path):
    def error(*args):
        with pytest.raises(UserError) as info:
            open_run(*args)
        message = str(info.value)
        assert len(message.splitlines()) == 1
        return message

    assert "no such directory" in error(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    assert "no run output here" in error(tmp_path / "empty")
    assert "no such run directory" in error(results, "tau3mu") and "taulgamma" in error(results, "tau3mu")
    assert "is a run of 'taulgamma', not 'tau3mu'" in error(results / "taulgamma", "tau3mu")
    write_run_outputs(results, "tau3mu", {}, {}, {**_metadata(), "search": "tau3mu"})
    assert "several runs (tau3mu, taulgamma)" in error(results)
    (results / "tau3mu" / "cutflow.json").unlink()
    assert error(results, "tau3mu").startswith(f"{results / 'tau3mu' / 'cutflow.json'}: missing")
    (results / "tau3mu" / "histograms.coffea").unlink()
    assert error(results, "tau3mu").startswith(f"{results / 'tau3mu' / 'histograms.coffea'}: missing")
    (results / "tau3mu" / "metadata.json").write_text("{broken")
    assert error(results, "tau3mu").startswith(f"{results / 'tau3mu' / 'metadata.json'}: not JSON")


def test_hist_sums_datasets_and_slices(results):
    run = open_run(results)
    both = run.hist("yields", run.signals(), region="signal", variation="nominal", tag=sum)
    assert both.axes.name == ("channel",)
    assert both["mugamma"].value == pytest.approx(8.0) and both["egamma"].value == pytest.approx(6.0)
    everything = run.hist("count", channel=sum, region=sum, count=sum)
    assert everything.value == pytest.approx(20.0) and everything.variance == pytest.approx(0.2)
    one = run.hist("mbc_de", "tautau", channel="mugamma", region="signal", tag=sum)
    assert one.axes.name == ("mbc", "de") and one.values().sum() == pytest.approx(4.0)
    assert run.hist("mbc_de", ["tautau"], channel="mugamma", region="signal", tag="pi").values().sum() == pytest.approx(1.0)
    up = run.hist("yields", "tautau", channel="egamma", region="signal", variation="triggerUp", tag=sum)
    assert up.value == pytest.approx(2.04)
    assert run.hist("n_tracks", "tautau", channel="mugamma", region="presel")[hist.loc(2)].value == 3.0
    full = run.hist("yields")  # no slices: the summed histogram with every axis
    assert full.axes.name == ("channel", "region", "variation", "tag") and full is not run.histograms["tautau"]["yields"]
    with pytest.raises(UserError, match="no histogram 'nope' \\(have: yields, mbc_de, count, n_tracks, cube\\)"):
        run.hist("nope")
    with pytest.raises(UserError, match="no dataset 'qcd'"):
        run.hist("yields", "qcd")
    # a category no dataset filled (a cut nothing passed in tiny samples): zeros, as in the stats layer
    empty = run.hist("mbc_de", channel="mumu", region="signal", tag=sum)
    assert empty.axes.name == ("mbc", "de") and empty.values().sum() == 0
    assert run.hist("n_tracks", "sig_tauegamma", channel="egamma", region="presel").values().tolist() == [0] * 5
    with pytest.raises(UserError, match="histogram 'yields': cannot slice"):
        run.hist("yields", tag="kaon")  # not a growing axis: a typo is an error


def test_repr_and_limits(results):
    from belle_rare.stats.search_limits import Settings, run_search_limits

    text = repr(open_run(results))
    for expected in ("Run taulgamma on belle, 988 /fb", "sig_taumugamma", "signal", "1500 events read",
                     "yields", "channel[2], region[1], variation[6], tag[3]", "mbc_de", "tag[3], mbc[4], de[2]",
                     "mugamma ('ellipse'): sig_taumugamma 200 / 8", "tautau 25 / 4", "limits: none", "validation: 1 rows"):
        assert expected in text, expected
    # the stats layer reads write_run_outputs' layout; open_run shows the limits it wrote
    run_search_limits("taulgamma", results, Settings(calculator="asymptotics"), make_plots=False)
    run = open_run(results, "taulgamma")
    assert run.limits["search"] == "taulgamma" and {e["limit"] for e in run.limits["limits"]} == {"mugamma", "egamma"}
    text = repr(run)
    assert "limits (90% CL, Asimov):" in text and "tau -> mu gamma [mugamma]: BR < " in text and "published 4.2e-08" in text
    assert str(run) == text

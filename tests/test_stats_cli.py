"""``belle-rare limit`` / ``validate-stats``: the file contract, errors as one line with exit 2, no partial output."""

from __future__ import annotations

import json
import textwrap

import pytest

from belle_rare.analyses.cli import main
from belle_rare.processors import registry
from belle_rare.stats.counting import CountingChannel, counting_workspace
from belle_rare.stats.model_config import available_searches, load_stats_config
from belle_rare.stats.summary import limit_all, print_summary
from belle_rare.stats.synthetic import book, count_axis, taulgamma_counting_output, write_run_output


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def workspace_file(tmp_path):
    spec = counting_workspace([CountingChannel("sr", 55, 50.0, 7.0, 10.0)], poi="mu")
    return _write(tmp_path / "ws.json", spec)


def test_limit_on_a_workspace_writes_the_contract(workspace_file, tmp_path, capsys):
    out = tmp_path / "out" / "limit.json"
    assert main(["limit", "--workspace", str(workspace_file), "--cl", "0.9", "--calculator", "asymptotics", "--output", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {"poi", "cl", "calculator", "observed", "expected"} <= set(doc)
    assert doc["poi"] == "mu" and doc["cl"] == 0.9 and doc["calculator"] == "asymptotics"
    assert len(doc["expected"]) == 5 and doc["expected"] == sorted(doc["expected"])
    assert "expected median" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not JSON"),
        (json.dumps({"channels": []}), "fails pyhf's workspace schema"),
    ],
)
def test_invalid_workspace_is_one_line_exit_2_and_no_output(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "limit.json"
    assert main(["limit", "--workspace", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_unknown_poi_and_out_of_bounds(workspace_file, tmp_path, capsys):
    out = tmp_path / "limit.json"
    assert main(["limit", "--workspace", str(workspace_file), "--poi", "nope", "--output", str(out)]) == 2
    assert "unknown POI 'nope'" in capsys.readouterr().err
    spec = json.loads(workspace_file.read_text())
    spec["measurements"][0]["config"]["parameters"][0]["bounds"] = [[0.0, 1.0]]  # limit ~2.4
    tight = _write(tmp_path / "tight.json", spec)
    assert main(["limit", "--workspace", str(tight), "--calculator", "asymptotics", "--output", str(out)]) == 2
    assert "above the upper bound 1 of mu" in capsys.readouterr().err
    assert not out.exists()


def test_argument_errors(capsys):
    assert main(["limit"]) == 2
    assert main(["limit", "taulgamma"]) == 2
    assert "--results DIR is required" in capsys.readouterr().err


def test_limit_search_on_run_output(tmp_path, capsys):
    taulgamma_counting_output(tmp_path, observed={"mugamma": 5, "egamma": 5})
    assert main(["limit", "taulgamma", "--results", str(tmp_path)]) == 0
    base = tmp_path / "taulgamma"
    doc = json.loads((base / "limits.json").read_text())
    assert {e["limit"] for e in doc["limits"]} == {"mugamma", "egamma"}
    for e in doc["limits"]:
        assert e["physics"]["quantity"] == "branching_fraction"
        assert "2 N_tautau" in e["normalisation"]["formula"]
    assert (base / "workspace.json").exists() and (base / "plots" / "cls_taumugamma_mugamma.pdf").exists()
    out = capsys.readouterr().out
    assert "mugamma" in out and "4.2e-08" in out  # the published limit beside ours


def test_limit_search_without_run_output(tmp_path, capsys):
    assert main(["limit", "taulgamma", "--results", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err


def test_validate_stats_json(tmp_path, capsys):
    out = tmp_path / "val.json"
    assert main(["validate-stats", "--output", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and all({"case", "ours", "published", "unit", "note"} <= set(r) for r in rows)
    assert "taulphi mu phi" in capsys.readouterr().out


def test_limit_all_and_summary(tmp_path, capsys):
    taulgamma_counting_output(tmp_path, observed=None)
    rows = limit_all(tmp_path)
    assert [r["channel"] for r in rows] == ["mugamma", "egamma"]
    assert all(r["asimov"] and r["published_observed"] for r in rows)
    print_summary(rows)
    assert "[Asimov]" in capsys.readouterr().out
    assert limit_all(tmp_path / "nothing") == []


PLUGIN = "belle_rare_test_plugin"  # an importable name no real package uses

STATS_YAML = """
search: bumphunt
experiment: belle2
cl: 0.90
calculator: asymptotics
signals:
  bump:
    label: "a bump"
    normalisation: {quantity: cross_section, parents: none, reference_value: 10.0}
channels:
  - name: sr
    histogram: yields
    region: SR
    counting: true
    samples:
      - {name: signal, signal: bump, datasets: {kind: signal}}
      - {name: background, datasets: {kind: background}, modifiers: [{type: staterror}]}
"""


@pytest.fixture
def plugin_search(tmp_path, monkeypatch):
    """A search installed by another package: an entry point in belle_rare.searches, its own stats YAML."""
    site = tmp_path / "site"
    package = site / PLUGIN
    package.mkdir(parents=True)
    (package / "stats.yaml").write_text(STATS_YAML)
    (package / "search.yaml").write_text("{}\n")
    (package / "__init__.py").write_text(textwrap.dedent('''
        from pathlib import Path
        from belle_rare.processors.registry import Search

        class BumpProcessor:
            """A bump hunt from another package."""
            experiments = ("belle2",)

        HERE = Path(__file__).parent
        SEARCH = Search("bumphunt", BumpProcessor, HERE / "search.yaml", stats_file=HERE / "stats.yaml")
    '''))
    info = site / f"{PLUGIN}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[belle_rare.searches]\nbumphunt = {PLUGIN}:SEARCH\n")
    monkeypatch.syspath_prepend(str(site))
    for cached in (registry._entry_points, registry._load):
        cached.cache_clear()
    yield "bumphunt"
    monkeypatch.undo()
    for cached in (registry._entry_points, registry._load):
        cached.cache_clear()


def _bump_output(results):
    hists = {}
    yields = book(hists, "yields", count_axis())
    yields.set_bins("bump_signal", "sr", "SR", 20.0, 0.04)
    yields.set_bins("qcd", "sr", "SR", 50.0, 1.0)
    yields.set_bins("data", "sr", "SR", 52.0)
    datasets = {"bump_signal": {"kind": "signal"}, "qcd": {"kind": "background"}, "data": {"kind": "data"}}
    write_run_output(results, "bumphunt", "belle2", 100.0, datasets, hists)


def test_limit_for_a_search_from_another_package(plugin_search, tmp_path, capsys):
    """The stats model of any registered search comes from its Search.stats_file, not configs/stats/."""
    assert plugin_search in available_searches()
    assert load_stats_config(plugin_search).channels[0].histogram == "yields"
    results = tmp_path / "results"
    _bump_output(results)
    assert main(["limit", plugin_search, "--results", str(results), "--no-plots"]) == 0
    doc = json.loads((results / plugin_search / "limits.json").read_text())
    assert [e["limit"] for e in doc["limits"]] == ["sr"]
    assert doc["limits"][0]["physics"]["quantity"] == "cross_section"
    capsys.readouterr()
    rows = limit_all(results)  # every installed search with run output: the plug-in's too
    assert [(r["search"], r["channel"]) for r in rows] == [(plugin_search, "sr")]


def test_limit_for_an_unknown_search_names_the_installed_ones(tmp_path, capsys):
    assert main(["limit", "nosuchsearch", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown search 'nosuchsearch'" in err and "taulgamma" in err and len(err.splitlines()) == 1

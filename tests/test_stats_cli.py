"""``belle-rare limit`` / ``validate-stats``: the file contract, errors as one line with exit 2, no partial output."""

from __future__ import annotations

import json

import pytest

from belle_rare.analyses.cli import main
from belle_rare.stats.counting import CountingChannel, counting_workspace
from belle_rare.stats.summary import limit_all, print_summary
from belle_rare.stats.synthetic import taulgamma_counting_output


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

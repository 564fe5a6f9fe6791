"""zprime in the paper-luminosity mode (configs/paper_mode.yaml): the shipped entry's samples, and a tiny plan
of the same shape end to end (generate, run, the per-mass scan, the paper table's row)."""

from __future__ import annotations

import json

from rich.console import Console

from belle_rare.analyses.paper_mode import run_paper_mode
from belle_rare.configs.paper_mode import PaperMode, load_paper_mode


def test_shipped_zprime_entry_scans_the_paper_masses_with_filtered_backgrounds():
    entry = load_paper_mode().searches["zprime"]
    masses = sorted(s.parameters["mass"] for s in entry.samples if s.process == "sig_zprime")
    assert masses[0] == 0.5 and masses[-1] == 8.0 and len(masses) == 16   # the paper's range, up to 8 GeV
    wide = sorted(s.parameters["mass"] for s in entry.samples if s.process == "sig_zprime_wide")
    assert wide == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]                 # the Gamma = 0.1 M benchmark
    backgrounds = {s.process: s for s in entry.samples if s.process not in ("sig_zprime", "sig_zprime_wide")}
    assert set(backgrounds) == {"mumu", "mumu_hard_isr", "tautau_mumu", "tautau_hard_isr", "eemumu"}
    assert all(s.filter == "zprime_recoil" for s in backgrounds.values())
    assert not entry.pid_weights


def test_tiny_zprime_paper_run(tmp_path, monkeypatch):
    from belle_rare.analyses import zprime_scan

    shipped = zprime_scan.load_scan_config

    def few_toys(path=None):   # the shipped scan with 3 toys of each kind: the toys are tested in test_zprime_minimum_limit
        cfg = shipped(path)
        return cfg.model_copy(update={"look_elsewhere": cfg.look_elsewhere.model_copy(update={"toys": 3}),
                                      "background_toys": cfg.background_toys.model_copy(update={"toys": 3})})

    monkeypatch.setattr(zprime_scan, "load_scan_config", few_toys)
    plan = PaperMode.model_validate({"budget_core_hours": 0.01, "searches": {"zprime": {
        "experiment": "belle2",
        "samples": [{"process": "sig_zprime", "parameters": {"mass": 2.0}, "events": 800},
                    {"process": "sig_zprime", "parameters": {"mass": 3.0}, "events": 800},
                    {"process": "sig_zprime_wide", "parameters": {"mass": 3.0}, "events": 800},
                    {"process": "tautau_mumu", "filter": "zprime_recoil", "events": 800}]}}})
    console = Console(file=open(tmp_path / "log.txt", "w"), width=200)
    assert run_paper_mode(tmp_path, 1.0, 1, 7, None, console, plan=plan, executor="iterative") == 0
    doc = json.loads((tmp_path / "paper_mode.json").read_text())
    rec = doc["searches"]["zprime"]
    assert rec["core_hours"]["total"] > 0
    row, wide = rec["channels"]
    assert row["channel"] == "mumu" and row["expected_limit"] > 0 and row["published_observed"] == 0.2
    # the paper's convention (toy median) and the like-with-like partner of its observed limit (toy minimum)
    assert row["expected_limit_paper_convention"] > 0 and row["observed_partner"] > 0
    limits = json.loads((tmp_path / "results" / "zprime" / "limits.json").read_text())
    assert limits["background_estimate"]["method"] == "factorised" and limits["hypotheses"] > 1
    # the Gamma = 0.1 M benchmark: its own row, its best expected limit, weaker than the narrow one (wider window)
    assert wide["channel"] == "mumu (Gamma = 0.1 M_Z', fully invisible)"
    assert wide["expected_limit"] == limits["benchmarks"]["wide_width"]["best_expected"] > row["expected_limit"]

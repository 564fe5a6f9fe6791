"""The paper-luminosity mode (``belle-rare demo --paper``): its plan, a tiny end-to-end run, resumption."""

from __future__ import annotations

import json
import math

import pytest
from rich.console import Console

from belle_rare.analyses.paper_mode import check_plan, run_paper_mode
from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.paper_mode import PaperMode, load_paper_mode
from belle_rare.configs.processes import load_catalogue
from belle_rare.core.errors import UserError
from belle_rare.stats.search_limits import limit_rows, with_limit_rows


def test_shipped_plan_accounts_for_every_background_and_fits_the_budget_line():
    """Every background process of a search's experiment is either simulated or left out with a
    reason: a process added to the catalogue cannot silently drop out of the paper mode."""
    plan = load_paper_mode()
    check_plan(plan)
    catalogue = load_catalogue()
    backgrounds = {name for name, p in catalogue.processes.items() if p.kind == "background"}
    for name, search in plan.searches.items():
        simulated = {_physics(catalogue, s.process) for s in search.samples}
        missing = backgrounds - simulated - set(search.left_out) - {p for p in backgrounds if catalogue.processes[p].biased}
        assert not missing, f"{name}: background processes neither simulated nor left out: {sorted(missing)}"
        assert all(reason.strip() for reason in search.left_out.values())
        assert any(catalogue.processes[s.process].kind == "signal" for s in search.samples), f"{name}: no signal sample"
        load_experiment(search.experiment)


def _physics(catalogue, process: str) -> str:
    """The plain process a biased sample stands for: the unbiased one with the same cross section and
    gamma* slice (tautau_3prong -> tautau, ee_central -> ee, tautau_isr_central -> tautau_hard_isr)."""
    if not catalogue.processes[process].biased:
        return process
    key = (catalogue.cross_section_keys(process), catalogue.gamma_star_mass(process))
    (plain,) = [name for name, p in catalogue.processes.items() if p.kind == "background" and not p.biased
                and (catalogue.cross_section_keys(name), catalogue.gamma_star_mass(name)) == key]
    return plain


def test_plan_errors_name_the_key():
    plan = PaperMode.model_validate({"budget_core_hours": 1, "searches": {"tau3mu": {
        "experiment": "belle2", "samples": [{"process": "tautau_nonsense", "events": 10}]}}})
    with pytest.raises(UserError, match=r"searches\.tau3mu\.samples\.0\.process: unknown process 'tautau_nonsense'"):
        check_plan(plan)
    plan = PaperMode.model_validate({"budget_core_hours": 1, "searches": {"tau3mu": {
        "experiment": "belle2", "samples": [{"process": "tautau", "events": 10, "filter": "nosuch"}]}}})
    with pytest.raises(UserError, match=r"samples\.0\.filter: no generator filter 'nosuch'"):
        check_plan(plan)


def test_limit_rows_compare_with_published_expected_or_observed():
    document = {"luminosity_fb": 988.0, "limits": [
        {"limit": "mugamma", "cl": 0.9, "method": "m", "physics": {"expected": [1, 2, 3, 4, 5]},
         "published": {"expected": 4.9e-8, "observed": 4.2e-8}, "background_events": 5.0, "background_estimate": ["sideband"]},
        {"limit": "3mu", "cl": 0.9, "method": "m", "physics": {"expected": [1, 2, 7, 4, 5]},
         "published": {"expected": None, "observed": 1.9e-8}, "background_events": 0.4, "background_from_mc_bound": True},
    ]}
    rows = {r["quantity"]: r for r in limit_rows(document)}
    assert rows["expected limit (mugamma)"]["ours"] == 3 and rows["expected limit (mugamma)"]["paper"] == 4.9e-8
    assert rows["expected limit (3mu)"]["paper"] == 1.9e-8 and "observed" in rows["expected limit (3mu)"]["note"]
    assert "MC statistical bound" in rows["background used by the limit (3mu)"]["note"]
    validation = [{"quantity": "signal efficiency (3mu)", "ours": 0.2}]
    once = with_limit_rows(validation, document)
    assert with_limit_rows(once, document) == once  # idempotent: a second `limit` does not duplicate rows
    assert once[0] == validation[0] and len(once) == 1 + 4


def test_tiny_paper_run_records_core_hours_and_resumes(tmp_path):
    """A two-sample plan end to end: filtered background + signal, PID-weighted run, limits and the
    summary document; a second call reuses the samples instead of producing them again."""
    plan = PaperMode.model_validate({"budget_core_hours": 0.01, "searches": {"tau3mu": {
        "experiment": "belle2", "pid_weights": True,
        "samples": [{"process": "sig_tau3mu", "events": 400},
                    {"process": "tautau_3prong", "filter": "tau3mu", "events": 1500}]}}})
    console = Console(file=open(tmp_path / "log.txt", "w"), width=200)
    assert run_paper_mode(tmp_path, 1.0, 1, 7, None, console, plan=plan, executor="iterative") == 0
    doc = json.loads((tmp_path / "paper_mode.json").read_text())
    rec = doc["searches"]["tau3mu"]
    assert rec["core_hours"]["generation"] > 0 and rec["core_hours"]["processing"] > 0
    assert doc["core_hours"] == pytest.approx(rec["core_hours"]["total"])
    filtered = next(s for s in rec["samples"] if "filter" in s["dataset"])
    assert filtered["events"] == 1500 and filtered["generated_events"] > filtered["events"]
    (row,) = rec["channels"]
    assert row["channel"] == "3mu" and row["background"] > 0 and row["efficiency"] > 0
    assert row["expected_limit_paper_convention"] > 0 and row["published_expected"] == 1.8e-8  # the paper's convention, beside
    manifest = tmp_path / "samples" / "tau3mu" / "belle2_tautau_3prong_filter_tau3mu.json"
    before = manifest.stat().st_mtime_ns
    assert run_paper_mode(tmp_path, 1.0, 1, 7, None, console, plan=plan, executor="iterative") == 0
    assert manifest.stat().st_mtime_ns == before
    # a production made by other physics (another simulation fingerprint) is made again, not reused
    stale = json.loads(manifest.read_text())
    assert stale["simulation_fingerprint"]
    manifest.write_text(json.dumps({**stale, "simulation_fingerprint": "made-before-a-detector-change"}))
    assert run_paper_mode(tmp_path, 1.0, 1, 7, None, console, plan=plan, executor="iterative") == 0
    assert json.loads(manifest.read_text())["simulation_fingerprint"] == stale["simulation_fingerprint"]
    validation = json.loads((tmp_path / "results" / "tau3mu" / "validation.json").read_text())
    assert any(r["quantity"] == "expected limit (3mu)" for r in validation)
    # a left-out background process is not run, and is named with its events and reason
    from belle_rare.analyses.runner import RunOptions, run_search

    result = run_search(RunOptions(search="tau3mu", experiment="belle2", samples=tmp_path / "samples" / "tau3mu",
                                   out=tmp_path / "r2", progress=False, left_out={"tautau_3prong": "a test"}))
    meta = result["metadata"]
    assert meta["left_out"] == {"tautau_3prong_filter_tau3mu": {"process": "tautau_3prong", "events": 1500, "reason": "a test"}}
    assert "tautau_3prong_filter_tau3mu" not in meta["events"] and "sig_tau3mu" in meta["events"]


def test_fitted_limit_row_uses_the_reports_signal_window(tmp_path):
    """kstartautau's limit is a fit of E_ECL^extra over 0-2 GeV: its paper-table row takes the background of the
    paper's signal window (E_ECL^extra < 0.2 GeV) and the efficiency in the paper's definition from the report's
    rows tagged with the limit, not the fit range's total; L_eq = L b / sigma_b^2; an empty window is the MC bound."""
    from belle_rare.analyses.paper_mode import channel_rows

    run = tmp_path / "kstartautau"
    run.mkdir()
    (run / "limits.json").write_text(json.dumps({"luminosity_fb": 711.0, "limits": [
        {"limit": "eecl", "background_events": 5000.0, "background_estimates": [], "physics": {"expected": [1, 2, 2.5e-3, 4, 5]},
         "normalisation": {"efficiency": 9.0e-5}, "published": {"expected": None, "observed": 3.1e-3}}]}))
    validation = [
        {"quantity": "signal efficiency, every cut (SR) (belle)", "ours": 8.0e-5, "paper": 1.23e-5, "limit": "eecl"},
        {"quantity": "signal efficiency, SR and E_ECL^extra < 0.2 GeV (belle)", "ours": 4.0e-5, "paper": None},
        {"quantity": "expected background, SR and E_ECL^extra < 0.2 GeV (belle)", "ours": 150.0, "uncertainty": 30.0,
         "paper": 122.4, "limit": "eecl", "simulated_events": 40},
    ]
    (run / "validation.json").write_text(json.dumps(validation))
    (row,) = channel_rows("kstartautau", run)
    assert row["background"] == 150.0 and row["background_uncertainty"] == 30.0 and row["paper_background"] == 122.4
    assert row["equivalent_luminosity_fb"] == pytest.approx(711.0 * 150.0 / 30.0**2)
    assert row["efficiency"] == 8.0e-5 and row["paper_efficiency"] == 1.23e-5
    assert row["expected_limit"] == 2.5e-3 and row["published_observed"] == 3.1e-3 and not row["background_from_mc_bound"]
    validation[2].update(ours=20.0, uncertainty=20.0, simulated_events=0, mc_bound_events=20.0)
    (run / "validation.json").write_text(json.dumps(validation))
    (row,) = channel_rows("kstartautau", run)
    assert row["background_from_mc_bound"] and row["background"] == 20.0


def test_simulation_uncertainty_leaves_out_the_data_count_poisson_term(tmp_path):
    """A data-driven estimate (N_before x eps) carries the Poisson term of the data count it stands for; the
    table's "sim. +-" is the simulated statistics alone (what more simulation shrinks), summed over the used
    estimates, and "-" when an estimate does not split its uncertainty."""
    from belle_rare.analyses.paper_mode import channel_rows

    run = tmp_path / "taulphi"
    run.mkdir()
    estimates = [{"channel": "ephi", "estimate": "factorised", "used": True, "value": 0.1, "uncertainty": 0.06,
                  "simulation_rel_uncertainty": 0.3},
                 {"channel": "ephi", "estimate": "factorised", "used": True, "value": 0.2, "uncertainty": 0.1,
                  "simulation_rel_uncertainty": 0.2},
                 {"channel": "ephi", "estimate": "transfer_factor", "used": False, "value": 5.0, "uncertainty": 5.0}]
    (run / "limits.json").write_text(json.dumps({"luminosity_fb": 190.0, "limits": [
        {"limit": "ephi", "background_events": 0.3, "background_estimates": estimates}]}))
    (row,) = channel_rows("taulphi", run)
    assert row["background_uncertainty"] == pytest.approx(math.hypot(0.06, 0.1))
    assert row["background_simulation_uncertainty"] == pytest.approx(math.hypot(0.1 * 0.3, 0.2 * 0.2))
    del estimates[1]["simulation_rel_uncertainty"]
    (run / "limits.json").write_text(json.dumps({"luminosity_fb": 190.0, "limits": [
        {"limit": "ephi", "background_events": 0.3, "background_estimates": estimates}]}))
    (row,) = channel_rows("taulphi", run)
    assert row["background_simulation_uncertainty"] is None


def test_an_entry_can_name_the_search_it_runs():
    """``search:`` lets one search have an entry per experiment (kstartautau: Belle and Belle II); a wrong
    name is refused with the key; each such entry's run goes to OUT/results/ENTRY so the two do not collide."""
    from pathlib import Path

    from belle_rare.analyses.paper_mode import results_root

    plan = load_paper_mode()
    belle2 = plan.searches["kstartautau_belle2"]
    assert belle2.experiment == "belle2" and plan.search_of("kstartautau_belle2") == "kstartautau"
    assert plan.searches["kstartautau"].experiment == "belle" and plan.search_of("kstartautau") == "kstartautau"
    assert {"sig_kstartautau", "mixed", "uds", "charm", "tautau"} <= {s.process for s in belle2.samples}
    assert results_root(Path("OUT"), "kstartautau", plan) == Path("OUT/results")
    assert results_root(Path("OUT"), "kstartautau_belle2", plan) == Path("OUT/results/kstartautau_belle2")
    bad = PaperMode.model_validate({"budget_core_hours": 1, "searches": {"kst_b2": {
        "search": "kstartautauu", "experiment": "belle2", "samples": [{"process": "sig_kstartautau", "events": 10}]}}})
    with pytest.raises(UserError, match=r"searches\.kst_b2\.search: no such search 'kstartautauu'"):
        check_plan(bad)
    unnamed = PaperMode.model_validate({"budget_core_hours": 1, "searches": {"kst_b2": {
        "experiment": "belle2", "samples": [{"process": "sig_kstartautau", "events": 10}]}}})
    with pytest.raises(UserError, match=r"searches\.kst_b2: no such search 'kst_b2'"):
        check_plan(unnamed)


def test_category_rows_give_each_fitted_category_its_background_and_efficiency():
    """Belle II kstartautau fits four categories together: the paper table gets one row per category (background,
    its simulation error, L_eq, efficiency) from the report's per-category rows; totals (ending in "(belle2)") and
    categories with only an efficiency row are not repeated."""
    from belle_rare.analyses.paper_mode import category_rows

    validation = [
        {"quantity": "expected background, SR and BDT output >= 0.4 (belle2)", "ours": 30.0, "uncertainty": 6.0},
        {"quantity": "expected background, SR and BDT output >= 0.4, ll", "ours": 10.0, "uncertainty": 5.0,
         "simulated_events": 4, "mc_bound_events": 0.0},
        {"quantity": "expected background, SR and BDT output >= 0.4, pipi", "ours": 3.0, "uncertainty": 3.0,
         "simulated_events": 0, "mc_bound_events": 3.0},
        {"quantity": "signal efficiency, SR and BDT output >= 0.4, ll", "ours": 2.0e-5},
        {"quantity": "signal efficiency, SR and BDT output >= 0.4, lpi", "ours": 1.0e-5},
    ]
    rows = {r["channel"]: r for r in category_rows(validation, 365.0)}
    assert set(rows) == {"ll", "pipi"}
    assert rows["ll"]["background"] == 10.0 and rows["ll"]["efficiency"] == 2.0e-5 and not rows["ll"]["background_from_mc_bound"]
    assert rows["ll"]["equivalent_luminosity_fb"] == pytest.approx(365.0 * 10.0 / 25.0)
    assert rows["pipi"]["background_from_mc_bound"] and rows["pipi"]["efficiency"] is None


def test_background_events_override_one_process_and_unknown_ones_are_refused(tmp_path):
    """``demo --paper --background-events uds=N``: that background gets N written events whatever --scale,
    the others and the signal keep the plan's; a process the selected searches do not simulate is a one-line error."""
    from belle_rare.analyses.demo import _process_events
    from belle_rare.analyses.paper_mode import _request

    plan = load_paper_mode()
    search = plan.searches["tau3mu"]
    by_process = {s.process: s for s in search.samples}
    override = _process_events(["uds=3e6"])
    assert override == {"uds": 3_000_000}
    assert _request(search, by_process["uds"], 0.25, 1, tmp_path, override).events == 3_000_000
    assert _request(search, by_process["charm"], 0.25, 1, tmp_path, override).events == round(by_process["charm"].events * 0.25)
    assert _request(search, by_process["sig_tau3mu"], 0.25, 1, tmp_path, {"sig_tau3mu": 5}).events == by_process["sig_tau3mu"].events
    with pytest.raises(UserError, match="--background-events: 'uds': expected PROCESS=N"):
        _process_events(["uds"])
    console = Console(file=open(tmp_path / "log.txt", "w"), width=200)
    with pytest.raises(UserError, match="--background-events: mixed: not a background sample of tau3mu"):
        run_paper_mode(tmp_path, 0.25, 1, 7, ["tau3mu"], console, background_events={"mixed": 10})
    assert not (tmp_path / "samples").exists()

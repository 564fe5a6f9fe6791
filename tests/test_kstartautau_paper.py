"""kstartautau in the paper-luminosity mode: the report's background in the paper's signal window
(E_ECL^extra < 0.2 GeV) with its simulation-statistics error and MC bound, as the paper table reads it."""

from __future__ import annotations

import pytest

from belle_rare.configs.paper_mode import load_paper_mode


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny Belle run: signal and B0 B0bar (no B0 B0bar event is expected in the window at this size)."""
    from belle_rare.analyses.runner import RunOptions, run_search
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("kst_paper")
    produce(Request("belle", "sig_kstartautau", 3000, 41, out / "samples"), progress=False)
    produce(Request("belle", "mixed", 1500, 42, out / "samples"), progress=False)
    return run_search(RunOptions(search="kstartautau", experiment="belle", samples=out / "samples", out=out / "results",
                                 executor="iterative", progress=False))


def test_window_yield_and_its_simulation_error(run):
    """The window yield from the ``yields`` histogram equals the cutflow's (two independent fills), and its
    variance (sum of squared weights) is at least (sum w)^2 / n (Cauchy-Schwarz: equal weights give equality)."""
    from belle_rare.analyses.kstartautau import SIGNAL_STEP, window_background

    (part,) = window_background(run, ["sig_kstartautau"], 0.1).values()
    flows = run["cutflow"]["sig_kstartautau"]
    weighted = sum(f["weighted"][SIGNAL_STEP["belle"]] for f in flows.values())
    assert part["raw"] > 0 and part["bound"] == 0.0
    assert part["events"] == pytest.approx(weighted, rel=1e-9)
    assert part["variance"] >= part["events"] ** 2 / part["raw"] * (1 - 1e-9)


def test_background_row_carries_the_bound_of_an_empty_dataset(run):
    """No B0 B0bar event in the window: the row is not b = 0 but 0.1 (the window's share of the 0-2 GeV fit
    range) x the dataset's largest weight per event, +- the same, tagged with the E_ECL^extra limit."""
    from belle_rare.analyses.kstartautau import measure

    rows = {r["quantity"]: r for r in measure(run)}
    row = rows["expected background, SR and E_ECL^extra < 0.2 GeV (belle)"]
    info = run["metadata"]["datasets"]["mixed"]
    if row["simulated_events"] == 0:
        assert row["mc_bound_events"] == pytest.approx(0.1 * info["max_event_weight"], rel=1e-9)
        assert row["ours"] == pytest.approx(row["mc_bound_events"]) and row["uncertainty"] == pytest.approx(row["ours"])
    else:  # a 1,500-event sample rarely reaches the window; then the row is its weighted yield
        assert row["mc_bound_events"] == 0.0 and row["ours"] > 0 and row["uncertainty"] > 0
    assert row["limit"] == "eecl" and row["paper"] == 122.4
    assert rows["signal efficiency, every cut (SR) (belle)"]["limit"] == "eecl"


def test_paper_plan_for_kstartautau():
    """The plan runs Belle at 711 /fb with the signal, the control process and the backgrounds the paper names
    (B0 B0bar dominant, continuum); B+ B- is left out with the reason the tag emulation gives."""
    plan = load_paper_mode().searches["kstartautau"]
    assert plan.experiment == "belle" and not plan.pid_weights
    processes = {s.process for s in plan.samples}
    assert {"sig_kstartautau", "ctl_dlnu", "mixed", "uds", "charm"} <= processes
    assert "charged" in plan.left_out and "charge" in plan.left_out["charged"]


def test_belle2_background_per_category_adds_up_to_the_window(tmp_path):
    """Belle II: one background row per BDT category (the paper-mode table's category rows); their simulated
    yields and events add up to the BDT signal region's total row, and each empty dataset carries its MC bound
    in every category where it has no event."""
    from belle_rare.analyses.kstartautau import measure
    from belle_rare.analyses.runner import RunOptions, run_search
    from belle_rare.simulation.production import Request, produce

    produce(Request("belle2", "sig_kstartautau", 2000, 51, tmp_path / "samples"), progress=False)
    produce(Request("belle2", "mixed", 1500, 52, tmp_path / "samples"), progress=False)
    run = run_search(RunOptions(search="kstartautau", experiment="belle2", samples=tmp_path / "samples",
                                out=tmp_path / "results", executor="iterative", progress=False))
    rows = {r["quantity"]: r for r in measure(run)}
    total = rows["expected background, SR and BDT output >= 0.4 (belle2)"]
    categories = [rows[f"expected background, SR and BDT output >= 0.4, {c}"] for c in ("ll", "lpi", "rhoX", "pipi")]
    simulated = sum(r["ours"] - r["mc_bound_events"] for r in categories)
    assert simulated == pytest.approx(total["ours"] - total["mc_bound_events"], rel=1e-9, abs=1e-9)
    assert sum(r["simulated_events"] for r in categories) == total["simulated_events"]
    from belle_rare.stats.mc_bound import weight_per_event

    weight = weight_per_event(run["metadata"]["datasets"]["mixed"])
    for r in categories:
        assert r["mc_bound_events"] == (pytest.approx(weight) if r["simulated_events"] == 0 else 0.0)

"""analyses/stack_plots.py on synthetic histograms: stack order and yields, regions summed, the signal
scaled to the stated branching fraction, contour levels that hold the stated fractions."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.analyses import stack_plots
from belle_rare.core.histograms import new_hist, regular


def _filled(values: dict[str, float]) -> dict[str, object]:
    """One 1D histogram with an entry of the given weight per region at x = 0.5."""
    h = new_hist(regular(10, 0, 1, "x"))
    for region, weight in values.items():
        h.fill(channel="c", region=region, x=[0.5], weight=[weight])
    return h


def test_backgrounds_stack_smallest_first_and_regions_sum():
    hists = {"big": {"x": _filled({"A": 5.0, "B": 2.0})}, "small": {"x": _filled({"A": 1.0})}, "empty": {}}
    parts = stack_plots.background_parts(hists, ["big", "small", "empty"], "x", "c", region=["A", "B"])
    assert [d for d, _ in parts] == ["small", "big"]
    assert parts[1][1].values().sum() == pytest.approx(7.0)  # A + B
    assert stack_plots.background_parts(hists, ["big"], "x", "c", region="B")[0][1].values().sum() == pytest.approx(2.0)
    assert stack_plots.no_background_note([]) == "no background samples in the input"


def test_the_signal_is_scaled_to_the_stated_branching_fraction():
    """sig_taumuphi's cross section holds 2 sigma_tautau x BR_ref x BR(phi -> KK) x the gamma* slice share:
    the factor to BR = 1e-6 divides both out of the reference (the stats layer's reference_value)."""
    from belle_rare.configs.experiment import load_experiment
    from belle_rare.configs.processes import forced_sub_branching_fraction
    from belle_rare.simulation.production import gamma_star_share

    sigma_tautau = load_experiment("belle2").cross_section("tautau")
    br_sim, sub = 1e-7, forced_sub_branching_fraction("sig_taumuphi")
    share = gamma_star_share("sig_taumuphi", "belle2")
    meta = {"experiment": "belle2", "datasets": {"sig": {"cross_section_nb": 2 * sigma_tautau * br_sim * sub * share,
                                                         "process": "sig_taumuphi"}}}
    scale, label = stack_plots.signal_scale(meta, "sig", 1e-6, "x")
    assert sub == pytest.approx(0.491, abs=0.01) and scale == pytest.approx(10.0)
    assert "1.0e-06" in label
    assert stack_plots.signal_scale({"experiment": "belle2", "datasets": {}}, "sig", 1e-6, "x")[0] is None


def test_contour_levels_hold_the_stated_fractions():
    rng = np.random.default_rng(4)
    values = rng.exponential(1.0, (40, 40))
    for fraction, level in zip((0.5, 0.9), stack_plots.contour_levels(values, (0.5, 0.9))[::-1]):
        held = values[values >= level].sum() / values.sum()
        assert fraction <= held < fraction + 0.01
    assert stack_plots.contour_levels(np.zeros((3, 3)), (0.5,)).size == 0


def test_a_process_keeps_its_colour_in_every_panel_whatever_the_stack_order():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backgrounds = ["big", "small"]
    colours = []
    for region in ("A", "B"):  # "big" is the larger in A, the smaller in B: the stack order flips
        hists = {"big": {"x": _filled({"A": 5.0, "B": 1.0})}, "small": {"x": _filled({"A": 1.0, "B": 5.0})}}
        fig, ax = plt.subplots()
        stack_plots.stacked_distribution(ax, hists, backgrounds, "sig", "x", "c", None, "sig", None, region=region)
        handles, labels = ax.get_legend_handles_labels()
        colours.append({label.split()[0]: matplotlib.colors.to_hex(handle.get_facecolor())
                        for handle, label in zip(handles, labels)})
        plt.close(fig)
    assert colours[0] == colours[1]
    assert colours[0]["big"] != colours[0]["small"]

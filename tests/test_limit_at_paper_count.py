"""A published observed limit compared like with like (issue 11).

An observed limit rests on the count the paper observed: taulphi saw 2 events in e phi over b = 0.23 and 0
in mu phi, tau3mu 1 over 0.7. Our expected (median) limit against such a number mixes in the paper's
fluctuation (e phi: 2 events over 0.23 weaken its limit about 2 x), so the stats layer also computes our
limit at the paper's count with our b and efficiency (``Published.observed_events``; limits.json
``limit_at_paper_count``, a validation row, the paper-mode table's ``obs. partner`` column).
"""

from __future__ import annotations

import json
import math

import pytest
from scipy import optimize
from scipy.special import gammaincc

from belle_rare.stats.counting import OneBin
from belle_rare.stats.model_config import Published, load_stats_config
from belle_rare.stats.search_limits import compute_search_limits, limit_at_paper_count, limit_rows
from tests.test_stats_factorised import _run  # Asimov tau3mu output: tautau of weight w in given regions


def _published(n: int | None) -> Published:
    return Published(observed=1e-7, cl=0.90, source="test", observed_events=n)


def test_the_yamls_carry_the_papers_counts():
    taulphi = load_stats_config("taulphi").signals
    assert taulphi["tauephi"].published["ephi"].observed_events == 2  # Table 3, N_obs SR 2.0 / 0.0
    assert taulphi["taumuphi"].published["muphi"].observed_events == 0
    assert load_stats_config("tau3mu").signals["tau3mu"].published["3mu"].observed_events == 1  # sec. 5


@pytest.mark.parametrize("n, b", [(0, 0.1), (2, 0.097), (2, 1.5), (1, 1.18)])
def test_the_limit_at_the_count_against_scipy(n, b):
    """No uncertainties: CLs = P(N <= n | s + b) / P(N <= n | b) = 0.1, the Poisson CDF as gammaincc(n + 1, .)."""
    result = limit_at_paper_count(_published(n), OneBin(n=0.0, b=b, b_unc=0.0, s=1.0, s_rel_unc=0.0), 0.90)
    s = optimize.brentq(lambda x: gammaincc(n + 1, x + b) / gammaincc(n + 1, b) - 0.10, 1e-3, 50.0, xtol=1e-12)
    assert result["signal_events"] == pytest.approx(s, rel=1e-6)
    assert result["observation"] == n and result["background"] == b
    if n == 0:  # CLs with nothing observed is independent of b: ln 10
        assert result["signal_events"] == pytest.approx(math.log(10.0), rel=1e-6)


def test_no_count_no_one_bin_or_an_mc_bound_gives_none():
    one_bin = OneBin(n=1.0, b=0.7, b_unc=0.1, s=1.0, s_rel_unc=0.05)
    assert limit_at_paper_count(_published(None), one_bin, 0.90) is None
    assert limit_at_paper_count(None, one_bin, 0.90) is None
    assert limit_at_paper_count(_published(2), None, 0.90) is None
    # two observed events against an MC bound of 1e4 says nothing about the search
    bound = OneBin(n=1e4, b=1e4, b_unc=1e4, s=1.0, s_rel_unc=0.05)
    assert limit_at_paper_count(_published(2), bound, 0.90) is None


def test_more_background_strengthens_the_limit_at_a_fixed_count():
    """At n = 2 a larger b leaves less room for signal (the paper's 0.23 against ours below it)."""
    limits = [limit_at_paper_count(_published(2), OneBin(n=0.0, b=b, b_unc=0.0, s=1.0, s_rel_unc=0.0), 0.90)["signal_events"]
              for b in (0.05, 0.23, 1.0)]
    assert limits[0] > limits[1] > limits[2]


def test_limits_json_validation_and_paper_table_carry_it(tmp_path):
    from belle_rare.analyses.paper_mode import channel_rows

    _run(tmp_path, {"SR_pass": 2.0, "SR_fail": 40.0, "outer_pass": 20.0, "outer_fail": 100.0}, 0.35)
    document = compute_search_limits("tau3mu", tmp_path).document
    entry = document["limits"][0]
    at_count = entry["limit_at_paper_count"]
    assert at_count["observation"] == 1
    assert at_count["background"] == pytest.approx(entry["background_events"], rel=1e-6)
    per_event = entry["physics"]["expected"][2] / entry["signal_events"]["expected"][2]
    assert at_count["physics"] == pytest.approx(at_count["signal_events"] * per_event, rel=1e-9)
    rows = {r["quantity"]: r for r in limit_rows(document)}
    row = rows["limit at the paper's count (3mu)"]
    assert row["ours"] == pytest.approx(at_count["physics"])
    assert row["paper"] == pytest.approx(1.9e-8)  # the published observed limit
    (tmp_path / "limits.json").write_text(json.dumps(document))
    (table_row,) = channel_rows("tau3mu", tmp_path)
    assert table_row["observed_partner"] == pytest.approx(at_count["physics"])
    # make run's closing table too
    from rich.console import Console

    from belle_rare.stats.summary import _rows_of, print_summary

    (summary_row,) = _rows_of("tau3mu", document)
    assert summary_row["observed_partner"] == pytest.approx(at_count["physics"])
    console = Console(record=True, width=250)
    print_summary([summary_row, {"search": "broken", "error": "bad input"}], console)
    text = console.export_text()
    assert "Like with like for a published observed limit" in text and f"3mu {at_count['physics']:.3g}" in text
    assert "error: bad input" in text


def test_a_scan_entry_offers_its_toys_minimum():
    from belle_rare.stats.search_limits import observed_partner

    assert observed_partner({"minimum_observed_limit": {"median": 0.41}}) == pytest.approx(0.41)
    assert observed_partner({"limit_at_paper_count": {"physics": 2.5e-7}}) == pytest.approx(2.5e-7)
    assert observed_partner({"physics": {"expected": [1] * 5}}) is None

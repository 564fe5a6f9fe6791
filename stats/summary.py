"""Limits of every installed search that has run output and a stats model, and one summary table.

``limit_all(results_dir)`` is what ``make run`` calls after the analyses; it writes each
search's ``limits.json``, workspaces and plots, and returns one row per limit (per signal and
channel / combined; a scan gives one row per limit with its strongest point).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.table import Table

from belle_rare.core.errors import UserError
from belle_rare.configs.loader import ConfigError
from belle_rare.stats.histograms import has_run_output
from belle_rare.processors import registry
from belle_rare.stats.model_config import has_stats_model
from belle_rare.stats.search_limits import Settings, observed_partner, run_search_limits


def _rows_of(search: str, document: dict) -> list[dict]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for e in document["limits"]:
        groups.setdefault((e["signal"], e["limit"]), []).append(e)
    rows = []
    for (signal, limit), entries in groups.items():
        best = min(entries, key=lambda e: e["physics"]["expected"][2])  # a scan: its most sensitive point
        published = best["published"] or {}
        rows.append(
            {
                "search": search,
                "signal": signal,
                "label": best["label"],
                "channel": limit,
                "cl": best["cl"],
                "quantity": best["physics"]["quantity"],
                "unit": best["physics"]["unit"],
                "expected": best["physics"]["expected"][2],
                "observed": best["physics"]["observed"],
                "published_expected": published.get("expected"),
                "published_observed": published.get("observed"),
                "observed_partner": observed_partner(best),
                "method": best["method"],
                # a scan hook's entry stands for a whole curve and says how many hypotheses it holds
                "hypotheses": best.get("hypotheses", len(entries)),
                "hypothesis": best["hypothesis"] if len(entries) > 1 or best.get("hypotheses", 1) > 1 else {},
                "asimov": best["asimov_observation"],
                "background": best.get("background_events"),
                "background_from_mc_bound": bool(best.get("background_from_mc_bound")),
            }
        )
    return rows


def limit_all(results_dir: str | Path, settings: Settings | None = None, searches: list[str] | None = None,
              combine_with: Mapping[str, Sequence[Path]] | None = None) -> list[dict]:
    """Compute and write the limits of every search with run output under ``results_dir``.

    ``searches`` defaults to every installed search with a stats model (the registry's
    ``Search.stats_file``, built-in or from another package). ``combine_with``: search -> results
    directories of its runs on the other experiments (adds the combined limit, stats.combination).

    A search that fails gives one row with an ``error`` message; the others still run.
    """
    rows: list[dict] = []
    for search in searches or registry.search_names():
        if not has_run_output(results_dir, search):
            continue
        try:
            if not searches and not has_stats_model(search):
                continue  # a search without limits
            own = settings
            if combine_with and search in combine_with:
                own = replace(settings or Settings(), combine_with=tuple(Path(d) for d in combine_with[search]))
            result = run_search_limits(search, results_dir, own)
        except (UserError, ConfigError, ValueError) as err:
            rows.append({"search": search, "error": str(err)})
            continue
        rows += _rows_of(search, result.document)
    return rows


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


MC_BOUND_MARK = "\u2020"  # dagger
MC_BOUND_LEGEND = (
    f"{MC_BOUND_MARK} background rests on the MC statistical bound: a region no simulated event reached carries "
    "sum of the weights per event of its empty datasets, +-100 % (limits.json: background_from_mc_bound, mc_bound)"
)


def _background(r: dict) -> str:
    return _fmt(r.get("background")) + (MC_BOUND_MARK if r.get("background_from_mc_bound") else "")


def print_summary(rows: list[dict], console: Console | None = None) -> None:
    """One table: search, channel, our expected and observed limit, the published ones."""
    console = console or Console(width=None if Console().is_terminal else 150)
    table = Table(title="Upper limits (ours vs published)")
    numeric = ("CL", "b", "expected", "observed", "publ. exp.", "publ. obs.")
    for col in ("search", "signal", "channel", "CL", "quantity", *numeric[1:], "method"):
        table.add_column(col, justify="right" if col in numeric else "left")
    for r in rows:
        if "error" in r:
            table.add_row(r["search"], *[""] * (len(numeric) + 3), f"[red]error: {r['error']}[/red]")
            continue
        quantity = ("BR" if r["quantity"] == "branching_fraction" else "sigma") + (f" [{r['unit']}]" if r["unit"] else "")
        channel = r["channel"] + (f" ({r['hypotheses']} hyp., best)" if r["hypotheses"] > 1 else "")
        method = r["method"] + (" [Asimov]" if r["asimov"] else "")
        table.add_row(
            r["search"], r["label"], channel, f"{r['cl']:.2f}", quantity, _background(r), _fmt(r["expected"]), _fmt(r["observed"]),
            _fmt(r["published_expected"]), _fmt(r["published_observed"]), method,
        )
    console.print(table)
    partners = [f"{r['search']} {r['channel']} {_fmt(r['observed_partner'])} (published {_fmt(r['published_observed'])})"
                for r in rows if r.get("observed_partner") is not None]
    if partners:  # below the table: one more column would squeeze the numbers on a 120-column console
        console.print("Like with like for a published observed limit -- ours at the count the paper observed (counting) or "
                      "the median smallest observed limit of the scan in background-only toys (zprime): " + "; ".join(partners))
    if any(r.get("background_from_mc_bound") for r in rows):
        console.print(MC_BOUND_LEGEND)

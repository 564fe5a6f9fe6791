"""``belle-rare demo --paper``: the searches of ``configs/paper_mode.yaml`` (the tau searches, zprime,
kstartautau) with the statistics their background estimates need at the papers' luminosities (issue 11, item 4).

For each search of ``configs/paper_mode.yaml``: generate its samples (filtered, biased) into
``OUT/samples/SEARCH``, run it (PID-weighted where the plan says so, dask executor) into
``OUT/results/SEARCH``, compute its limits; then one table and ``OUT/paper_mode.json`` with, per
channel, the background estimate beside the paper's, the luminosity a plain simulated count would
need for the same precision, the efficiency, the limits beside the published ones and the
core-hours spent (CPU seconds of every generation chunk and every processed chunk).

A sample whose manifest already matches its request (same process, filter, parameters, seed and
events) is not produced again, so an interrupted paper run resumes where it stopped. A sample's seed is
the plan's seed plus its position in its search's list: a new sample goes at the end of the list, or
every sample after it is produced anew.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from belle_rare.configs.loader import load_config
from belle_rare.configs.paper_mode import PaperMode, PaperSample, PaperSearch, load_paper_mode
from belle_rare.configs.processes import load_catalogue
from belle_rare.core.atomic import write_json as write_json_atomic
from belle_rare.core.errors import UserError
from belle_rare.stats.search_limits import observed_partner

# events per written file: the unit a production resumes and a run spreads over workers. Files are written in
# blocks of production.WRITE_BLOCK_EVENTS, so a worker's memory no longer grows with this number (it once held a
# whole file: 200,000 filtered tau pairs took 12.7 GB); changing it changes which events files above one block hold
EVENTS_PER_FILE = 50_000


def _request(search: PaperSearch, sample: PaperSample, scale: float, seed: int, out: Path,
             background_events: Mapping[str, int] | None = None):
    from belle_rare.simulation.production import Request

    if load_catalogue().processes[sample.process].kind == "signal":
        events = sample.events  # --scale sizes the background statistics; a signal sample (efficiency, shapes) keeps its events
    else:
        events = (background_events or {}).get(sample.process, max(1, round(sample.events * scale)))
    return Request(
        experiment=search.experiment,
        process=sample.process,
        events=events,
        seed=seed,
        out=out,
        events_per_file=EVENTS_PER_FILE,
        parameters=dict(sample.parameters),
        generator_filter=load_catalogue().search_filters[sample.filter] if sample.filter else None,
        filter_name=sample.filter,
    )


def _existing(req) -> dict[str, Any] | None:
    """The manifest of an earlier identical production (resume), or None: same process, seed and
    events, every file present, the cross section today's catalogue gives, and made by today's
    simulation (``simulation_fingerprint``: sources, process catalogue, beam and detector configs)."""
    from belle_rare.simulation.manifest import simulation_fingerprint
    from belle_rare.simulation.production import cross_section

    path = req.out / f"{req.experiment}_{req.dataset}.json"
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    same = (m.get("seed") == req.seed and m.get("events") == req.events and m.get("process") == req.process
            and all((req.out / f["path"]).exists() for f in m.get("files", []))
            and m.get("simulation_fingerprint") == simulation_fingerprint(req.experiment)
            and abs(float(m.get("cross_section_nb", -1.0)) / cross_section(req)[0] - 1.0) < 1e-9)
    return m if same else None


def produce_samples(name: str, search: PaperSearch, scale: float, seed: int, out: Path, workers: int,
                    console: Console, background_events: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """Every sample of one search's plan (reusing identical earlier productions); their manifests.
    ``background_events``: written events of a background process instead of the plan's x ``scale``."""
    from belle_rare.simulation.production import produce

    manifests = []
    for j, sample in enumerate(search.samples):
        req = _request(search, sample, scale, seed + j, out, background_events)
        manifest = _existing(req)
        if manifest is None:
            manifest = produce(req, workers=workers, progress=console.is_terminal)
        else:
            console.print(f"  {name}: {req.dataset} already produced ({manifest['events']} events), kept")
        manifests.append(manifest)
        console.print(f"  {name}: {manifest['dataset']}: {manifest['events']} written of {manifest['generated_events']} "
                      f"generated, {manifest.get('cpu_seconds', 0.0):.0f} CPU s")
    return manifests


def check_plan(plan: PaperMode) -> None:
    """Every search, process and filter of the plan exists (before anything is generated)."""
    from belle_rare.processors.registry import search_names

    catalogue = load_catalogue()
    for name, search in plan.searches.items():
        if plan.search_of(name) not in search_names():
            key = f"searches.{name}" + (".search" if search.search else "")
            raise UserError(f"configs/paper_mode.yaml: {key}: no such search '{plan.search_of(name)}' "
                            f"(installed: {', '.join(search_names())})")
        for i, sample in enumerate(search.samples):
            where = f"configs/paper_mode.yaml: searches.{name}.samples.{i}"
            if sample.process not in catalogue.processes:
                raise UserError(f"{where}.process: unknown process '{sample.process}'")
            if sample.filter is not None and sample.filter not in catalogue.search_filters:
                raise UserError(f"{where}.filter: no generator filter '{sample.filter}' in configs/processes.yaml")


def run_paper_mode(out: Path, scale: float, workers: int, seed: int, only: list[str] | None, console: Console,
                   plan: PaperMode | None = None, executor: str = "dask",
                   background_events: Mapping[str, int] | None = None) -> int:
    """Generate, run and limit every search of ``plan`` (default configs/paper_mode.yaml; or ``only``
    those); returns the exit code. ``background_events`` overrides a background process's written
    events (after ``scale``): the statistics one estimate needs without scaling every sample."""
    from belle_rare.analyses.run_command import write_outputs
    from belle_rare.analyses.runner import RunOptions, run_search
    from belle_rare.stats.summary import limit_all

    if scale <= 0:
        raise UserError(f"--scale must be positive (got {scale})")
    plan = plan or load_paper_mode()
    check_plan(plan)
    names = [n for n in plan.searches if only is None or n in only]
    if only is not None and (unknown := sorted(set(only) - set(plan.searches))):
        raise UserError(f"--searches: not in configs/paper_mode.yaml: {', '.join(unknown)}")
    background_events = dict(background_events or {})
    planned = {s.process for n in names for s in plan.searches[n].samples
               if load_catalogue().processes[s.process].kind != "signal"}
    if unknown := sorted(set(background_events) - planned):
        raise UserError(f"--background-events: {', '.join(unknown)}: not a background sample of "
                        f"{', '.join(names)} in configs/paper_mode.yaml (have: {', '.join(sorted(planned))})")
    if bad := sorted(p for p, n in background_events.items() if n < 1):
        raise UserError(f"--background-events: {', '.join(bad)}: events must be >= 1")
    records: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        search = plan.searches[name]
        start = time.perf_counter()
        manifests = produce_samples(name, search, scale, seed + 1000 * i, out / "samples" / name, workers, console,
                                    background_events)
        opts = RunOptions(search=plan.search_of(name), experiment=search.experiment, samples=out / "samples" / name,
                          out=results_root(out, name, plan), executor=executor, workers=workers,
                          progress=console.is_terminal, pid_weighting=search.pid_weights)
        result = run_search(opts)
        write_outputs(result, opts.out, console)
        generation_cpu = sum(float(m.get("cpu_seconds", 0.0)) for m in manifests)
        run_cpu = sum(result["metadata"].get("cpu_seconds", {}).values())
        records[name] = {
            "search": plan.search_of(name),
            "experiment": search.experiment,
            "pid_weights": search.pid_weights,
            "samples": [{"dataset": m["dataset"], "events": m["events"], "generated_events": m["generated_events"],
                         "filter_efficiency": m["filter_efficiency"], "equivalent_luminosity_fb": m["equivalent_luminosity_fb"],
                         "cpu_seconds": m.get("cpu_seconds")} for m in manifests],
            "left_out": dict(search.left_out),
            "core_hours": {"generation": generation_cpu / 3600, "processing": run_cpu / 3600,
                           "total": (generation_cpu + run_cpu) / 3600},
            "wall_seconds": time.perf_counter() - start,
        }
    limits_start = time.perf_counter()
    rows = [row for name in names for row in limit_all(results_root(out, name, plan), searches=[plan.search_of(name)])]
    limits_seconds = time.perf_counter() - limits_start
    for name in names:
        records[name]["channels"] = channel_rows(plan.search_of(name), results_root(out, name, plan) / plan.search_of(name))
    document = {
        "scale": scale,
        "background_events": background_events,
        "budget_core_hours": plan.budget_core_hours,
        # generation + processing CPU; the limits (one process, pyhf) are their wall time beside it
        "core_hours": sum(r["core_hours"]["total"] for r in records.values()),
        "limits_wall_seconds": limits_seconds,
        "searches": records,
    }
    write_json_atomic(out / "paper_mode.json", document)
    print_paper_table(document, console)
    return 1 if any("error" in r for r in rows) else 0


def results_root(out: Path, entry: str, plan: PaperMode) -> Path:
    """Where an entry's run goes (``ROOT/SEARCH``): ``OUT/results`` for an entry named by its search, else
    ``OUT/results/ENTRY`` (``kstartautau_belle2`` -> ``OUT/results/kstartautau_belle2/kstartautau``), so two
    entries of one search do not overwrite each other."""
    return out / "results" if plan.search_of(entry) == entry else out / "results" / entry


def channel_rows(search: str, results: Path) -> list[dict[str, Any]]:
    """Per channel: the background estimate the limit uses beside the paper's, the luminosity a plain
    simulated count needs for the same precision (L b / sigma_b^2), efficiency (the report's
    "signal efficiency (CHANNEL)" row, in the paper's definition, where it has one) and limits."""
    from belle_rare.processors.registry import get_search

    limits = json.loads((results / "limits.json").read_text())
    validation = json.loads((results / "validation.json").read_text()) if (results / "validation.json").exists() else []
    efficiency_rows = {r["quantity"]: r for r in validation if isinstance(r, dict) and "quantity" in r}
    config = load_config(get_search(search).config_file, get_search(search).processor.config_model)
    paper_background = (getattr(getattr(config, "paper", None), "expected_background", None) or {})
    # a fitted limit (kstartautau: the E_ECL^extra fit over 0-2 GeV) compares with the paper in its signal
    # window: the report's rows tagged with that limit (``limit``) give the window's background and the
    # efficiency in the paper's definition
    tagged = {(r["quantity"].split(",")[0], r["limit"]): r for r in validation if isinstance(r, dict) and r.get("limit")}
    lumi = float(limits["luminosity_fb"])
    rows = []
    for entry in limits["limits"]:
        channel = entry["limit"]
        used = [e for e in entry.get("background_estimates", []) if e.get("used", True) and e.get("channel") == channel]
        b = entry.get("background_events")
        sigma = (sum(e["uncertainty"] ** 2 for e in used if e.get("uncertainty") is not None) ** 0.5) if used else None
        # the simulated statistics alone, without the Poisson term of the data count a data-driven estimate
        # (N_before x eps, N_RSB x r_MC) carries as the data would: the part more simulation shrinks
        simulated = [e["value"] * e["simulation_rel_uncertainty"] for e in used if e.get("simulation_rel_uncertainty") is not None]
        sigma_simulation = sum(x * x for x in simulated) ** 0.5 if used and len(simulated) == len(used) else None
        from_bound = entry.get("background_from_mc_bound", False)
        paper_b = _paper_value(paper_background, channel)
        efficiency_row = efficiency_rows.get(f"signal efficiency ({channel})", {})
        if (window := tagged.get(("expected background", channel))) is not None:
            b, sigma, paper_b = window["ours"], window.get("uncertainty"), window.get("paper")
            sigma_simulation = sigma  # a simulated count: sqrt(sum w^2) and MC bounds, nothing from data
            from_bound = window.get("simulated_events", 1) == 0 or window.get("mc_bound_events", 0.0) > 0
        efficiency_row = tagged.get(("signal efficiency", channel), efficiency_row)
        published = entry.get("published") or {}
        rows.append({
            "channel": channel,
            "background": b,
            "background_uncertainty": sigma,
            "background_simulation_uncertainty": sigma_simulation,
            "background_from_mc_bound": from_bound,
            "paper_background": paper_b,
            "equivalent_luminosity_fb": (lumi * b / sigma**2) if (b and sigma) else None,
            "efficiency": efficiency_row.get("ours") or entry.get("normalisation", {}).get("efficiency"),
            "paper_efficiency": efficiency_row.get("paper"),
            "expected_limit": (entry.get("physics") or {}).get("expected", [None] * 5)[2],
            # the paper's own convention where it differs from our median (tau3mu: n_obs = b; zprime: the median of
            # background-only toys, ours being Asimov)
            "expected_limit_paper_convention": (entry.get("expected_paper_convention") or {}).get("physics"),
            "observed_partner": observed_partner(entry),
            "published_expected": published.get("expected"),
            "published_observed": published.get("observed"),
        })
    return rows + benchmark_rows(limits) + category_rows(validation, lumi)


def benchmark_rows(limits: dict[str, Any]) -> list[dict[str, Any]]:
    """A scan's other signal models (zprime: the Gamma = 0.1 M benchmark; limits.json ``benchmarks``), one row each:
    their best expected limit, no background or efficiency of their own (windows differ by mass)."""
    channel = limits["limits"][0]["limit"] if limits.get("limits") else ""
    return [{"channel": f"{channel} ({b['signal_model']})", "background": None, "background_uncertainty": None,
             "background_simulation_uncertainty": None, "background_from_mc_bound": False, "paper_background": None,
             "equivalent_luminosity_fb": None, "efficiency": None, "paper_efficiency": None,
             "expected_limit": b["best_expected"], "expected_limit_paper_convention": None, "observed_partner": None,
             "published_expected": None, "published_observed": None}
            for b in (limits.get("benchmarks") or {}).values()]


def category_rows(validation: list[dict[str, Any]], lumi: float) -> list[dict[str, Any]]:
    """The categories a fit takes together (kstartautau Belle II: ll, lpi, rhoX, pipi), one row each from the
    report's "expected background, <window>, CATEGORY" and "signal efficiency, <window>, CATEGORY" rows: the
    background and efficiency of each, no limit of their own. Only categories with a background row."""
    rows = []
    by_quantity = {r["quantity"]: r for r in validation if isinstance(r, dict) and "quantity" in r}
    for quantity, r in by_quantity.items():
        if not quantity.startswith("expected background, ") or quantity.endswith(")"):
            continue
        window, category = quantity.removeprefix("expected background, ").rsplit(", ", 1)
        b, sigma = r.get("ours"), r.get("uncertainty")
        efficiency = by_quantity.get(f"signal efficiency, {window}, {category}", {}).get("ours")
        rows.append({"channel": category, "background": b, "background_uncertainty": sigma, "background_simulation_uncertainty": sigma,
                     "background_from_mc_bound": r.get("simulated_events", 1) == 0 or r.get("mc_bound_events", 0.0) > 0,
                     "paper_background": r.get("paper"),
                     "equivalent_luminosity_fb": (lumi * b / sigma**2) if (b and sigma) else None,
                     "efficiency": efficiency, "paper_efficiency": None, "expected_limit": None, "expected_limit_paper_convention": None, "observed_partner": None,
                     "published_expected": None, "published_observed": None})
    return rows


def _paper_value(values: Any, channel: str) -> float | None:
    if isinstance(values, dict):
        return values.get(channel)
    if isinstance(values, (int, float)):
        return float(values)
    return getattr(values, channel, None)


def _fmt(value: float | None, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def print_paper_table(document: dict[str, Any], console: Console) -> None:
    table = Table(title=f"paper-luminosity mode (scale {document['scale']:g}): {document['core_hours']:.2f} core-hours "
                        f"(budget {document['budget_core_hours']:g})")
    for col in ("search", "channel", "b", "+-", "sim. +-", "paper b", "L_eq (/fb)", "eff", "paper eff", "exp. limit", "exp. paper",
                "publ. exp.", "obs. partner", "publ. obs.", "core-h"):
        table.add_column(col, justify="left" if col in ("search", "channel") else "right")
    for name, rec in document["searches"].items():
        for k, row in enumerate(rec.get("channels", [])):
            table.add_row(
                name if k == 0 else "", row["channel"],
                _fmt(row["background"]) + ("\u2020" if row["background_from_mc_bound"] else ""),
                _fmt(row["background_uncertainty"]), _fmt(row.get("background_simulation_uncertainty")),
                _fmt(row["paper_background"]), _fmt(row["equivalent_luminosity_fb"]),
                _fmt(row["efficiency"]), _fmt(row["paper_efficiency"]), _fmt(row["expected_limit"]),
                _fmt(row.get("expected_limit_paper_convention")), _fmt(row["published_expected"]),
                _fmt(row.get("observed_partner")), _fmt(row["published_observed"]), f"{rec['core_hours']['total']:.2f}" if k == 0 else "",
            )
    console.print(table)
    console.print("sim. +-: the simulated statistics' part of +- (without the Poisson term of the data count a "
                  "data-driven estimate carries); L_eq: the luminosity at which a plain simulated count would have the estimate's relative precision "
                  "(L b / sigma_b^2); exp. paper: the expected limit in the paper's own convention where it differs from exp. limit "
                  "(tau3mu: n_obs = b; zprime: the best median of background-only toys, exp. limit being Asimov); "
                  "obs. partner: ours beside a published observed limit, at the count the paper observed (counting) or the "
                  "median smallest observed limit of the scan in background-only toys (zprime); "
                  "\u2020 rests on the MC statistical bound")

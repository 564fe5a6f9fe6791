"""A finished run's outputs as one object, for notebooks: ``run = belle_rare.open_run(DIR)``.

``DIR`` is a results directory (``--out`` of ``belle-rare run``; ``search`` picks the run, or the
only one there) or one run's directory ``RESULTS/SEARCH``. The ``Run`` holds what the run wrote
(``histograms.coffea`` as ``{dataset: {name: Hist}}``, ``cutflow.json``, ``metadata.json``) and
what came after it if present (``validation.json`` from the search's report, ``limits.json``
from ``belle-rare limit``)::

    run = belle_rare.open_run("results", "taulgamma")
    run                                   # search, datasets, histograms, cutflow, limits
    run.hist("mbc_de", "sig_taumugamma", channel="mugamma", region=sum, tag=sum)
    run.hist("yields", run.backgrounds(), channel="mugamma", variation="nominal")
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hist

from belle_rare.core.errors import UserError
from belle_rare.core.histograms import RunHistograms


def _is_run(directory: Path) -> bool:
    return (directory / "metadata.json").is_file() or (directory / "histograms.coffea").is_file()


def run_directory(directory: str | Path, search: str | None = None) -> Path:
    """``RESULTS/SEARCH`` for ``open_run(directory, search)`` (UserError if there is none)."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise UserError(f"{directory}: no such directory (a run's results directory or RESULTS/SEARCH)")
    if _is_run(directory):
        return directory
    if search is not None:
        candidate = directory / search
        if not candidate.is_dir():
            have = ", ".join(_runs_in(directory)) or "none"
            raise UserError(f"{candidate}: no such run directory (runs in {directory}: {have})")
        return candidate
    runs = _runs_in(directory)
    if not runs:
        raise UserError(f"{directory}: no run output here (neither metadata.json nor SEARCH/metadata.json)")
    if len(runs) > 1:
        raise UserError(f"{directory}: holds several runs ({', '.join(runs)}); pick one: open_run({str(directory)!r}, {runs[0]!r})")
    return directory / runs[0]


def _runs_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".") and _is_run(p))


def _read_json(path: Path, required: bool = True) -> Any:
    if not path.is_file():
        if required:
            raise UserError(f"{path}: missing (is {path.parent} the output of `belle-rare run`?)")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None


def _load_histograms(path: Path) -> RunHistograms:
    import coffea.util  # heavy: only when a run is opened

    if not path.is_file():
        raise UserError(f"{path}: missing (is {path.parent} the output of `belle-rare run`?)")
    try:
        loaded = coffea.util.load(str(path))
    except Exception as err:  # a pickle fails in many ways; the message names the file
        raise UserError(f"{path}: cannot load ({type(err).__name__}: {err})") from None
    if not isinstance(loaded, dict) or any(not isinstance(v, dict) for v in loaded.values()):
        raise UserError(f"{path}: expected {{dataset: {{histogram: Hist}}}} (an output of an older belle-rare? run it again)")
    return {ds: {n: h for n, h in hists.items() if isinstance(h, hist.Hist)} for ds, hists in loaded.items()}


def _with_categories(h: hist.Hist, slices: dict[str, Any]) -> hist.Hist:
    """``h`` with every category named in ``slices`` on its growing axes (appended, empty): a
    category no dataset filled (tiny samples, a cut nothing passed) slices to zeros."""
    missing: dict[str, list[str]] = {}
    for name, value in slices.items():
        if name not in h.axes.name:
            continue
        ax = h.axes[name]
        if isinstance(ax, hist.axis.StrCategory) and ax.traits.growth:
            values = [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
            new = [v for v in dict.fromkeys(values) if v not in ax]
            if new:
                missing[name] = new
    if not missing:
        return h
    axes = [
        hist.axis.StrCategory([*ax, *missing[ax.name]], name=ax.name, label=ax.label, growth=True) if ax.name in missing else ax
        for ax in h.axes
    ]
    out = hist.Hist(*axes, storage=h.storage_type())
    old = h.view(flow=True)  # growing category axes have no flow bins: the old cells come first
    out.view(flow=True)[tuple(slice(0, n) for n in old.shape)] = old
    return out


def _as_list(dataset: str | Iterable[str] | None, all_names: list[str]) -> list[str]:
    if dataset is None:
        return list(all_names)
    if isinstance(dataset, str):
        return [dataset]
    return list(dataset)


@dataclass(repr=False)
class Run:
    """One run's outputs. ``histograms``: ``{dataset: {name: Hist}}``; ``datasets``: name -> kind;
    ``validation`` / ``limits``: the JSON documents, or None if not written (yet)."""

    directory: Path
    search: str
    experiment: str
    luminosity_fb: float
    histograms: RunHistograms
    cutflow: dict
    metadata: dict
    validation: Any = None
    limits: dict | None = None
    datasets: dict[str, str] = field(default_factory=dict)

    # ------------------------------------------------------------------ datasets
    def of_kind(self, kind: str) -> list[str]:
        """Datasets of ``kind`` ("signal", "background", "data"), in metadata order."""
        return [name for name, k in self.datasets.items() if k == kind]

    def signals(self) -> list[str]:
        return self.of_kind("signal")

    def backgrounds(self) -> list[str]:
        return self.of_kind("background")

    # ------------------------------------------------------------------ histograms
    def histogram_names(self) -> list[str]:
        """Every histogram name, in the order the processor books them."""
        names: dict[str, None] = {}
        for hists in self.histograms.values():
            names.update(dict.fromkeys(hists))
        return list(names)

    def hist(self, name: str, dataset: str | Iterable[str] | None = None, **slices: Any) -> hist.Hist:
        """Histogram ``name`` summed over ``dataset`` (a name, a list of names; default: all), then
        sliced with hist's dict semantics: ``channel="mugamma"``, ``region=sum``, ``mbc=slice(1.7j, 1.8j)``.

        A dataset that never filled ``name`` adds nothing, and a channel / region / variation no
        dataset filled gives zeros (as in the stats layer); the result is a new histogram.
        """
        names = self.histogram_names()
        if name not in names:
            raise UserError(f"{self.search}: no histogram '{name}' (have: {', '.join(names) or 'none'})")
        known = list(self.histograms)
        chosen = _as_list(dataset, [d for d in known if name in self.histograms[d]])
        unknown = [d for d in chosen if d not in self.histograms and d not in self.datasets]
        if unknown:
            raise UserError(f"{self.search}: no dataset {', '.join(map(repr, unknown))} (have: {', '.join(known)})")
        parts = [self.histograms[d][name] for d in chosen if name in self.histograms.get(d, {})]
        if parts:
            total = parts[0].copy()
            for h in parts[1:]:
                try:
                    total += h
                except ValueError as err:
                    raise UserError(f"{self.search}: histogram '{name}': datasets differ in their axes ({err})") from None
        else:  # none of them filled it: an empty histogram with the axes of another dataset's
            total = next(hists[name] for hists in self.histograms.values() if name in hists).copy()
            total.reset()
        if not slices:
            return total
        try:
            return _with_categories(total, slices)[slices]
        except KeyError as err:
            axes = {ax.name: list(ax) for ax in total.axes if isinstance(ax, hist.axis.StrCategory)}
            raise UserError(f"{self.search}: histogram '{name}': cannot slice {slices!r}: {err} (categories: {axes})") from None

    def axes_summary(self, name: str) -> str:
        """``axis[size], ...`` of histogram ``name`` over all datasets (category axes: the union)."""
        parts = [hists[name] for hists in self.histograms.values() if name in hists]
        out = []
        for i, ax in enumerate(parts[0].axes):
            if isinstance(ax, hist.axis.StrCategory) and ax.traits.growth:
                size = len({c for h in parts for c in h.axes[i]})
            else:
                size = ax.size
            out.append(f"{ax.name}[{size}]")
        return ", ".join(out)

    # ------------------------------------------------------------------ text
    def _cutflow_lines(self) -> list[str]:
        finals: dict[str, list[str]] = {}
        steps: dict[str, str] = {}
        for dataset, channels in self.cutflow.items():
            if not isinstance(channels, dict):
                continue
            for channel, counts in channels.items():
                raw = counts.get("raw", {}) if isinstance(counts, dict) else {}
                weighted = counts.get("weighted", {}) if isinstance(counts, dict) else {}
                if not raw:
                    continue
                step = list(raw)[-1]
                steps.setdefault(channel, step)
                finals.setdefault(channel, []).append(f"{dataset} {raw[step]:g} / {weighted.get(step, float('nan')):.4g}")
        return [f"  {channel} ({steps[channel]!r}): " + "; ".join(rows) for channel, rows in finals.items()]

    def _limit_lines(self) -> list[str]:
        if self.limits is None:
            return [f"limits: none (`belle-rare limit {self.search} --results {self.directory.parent}` writes limits.json)"]
        groups: dict[tuple[str, str], list[dict]] = {}
        for entry in self.limits.get("limits", []):
            groups.setdefault((entry["label"], entry["limit"]), []).append(entry)
        lines = [f"limits ({100 * self.limits.get('cl', 0):g}% CL{', Asimov' if 'Asimov' in str(self.limits.get('observations', '')) else ''}):"]
        for (label, limit), entries in groups.items():
            best = min(entries, key=lambda e: e["physics"]["expected"][2])
            physics = best["physics"]
            quantity = "BR" if physics["quantity"] == "branching_fraction" else "sigma"
            unit = f" {physics['unit']}" if physics.get("unit") else ""
            scan = f" (best of {len(entries)} hypotheses: {best['hypothesis']})" if len(entries) > 1 else ""
            published = (best.get("published") or {}).get("observed")
            paper = f", published {published:.3g}" if published is not None else ""
            bound = f"; b = {best['background_events']:.3g} rests on the MC statistical bound" if best.get("background_from_mc_bound") else ""
            lines.append(f"  {label} [{limit}]: {quantity} < {physics['observed']:.3g}{unit} "
                         f"(expected {physics['expected'][2]:.3g}{paper}{bound}){scan}")
        return lines

    def __repr__(self) -> str:
        events = self.metadata.get("events", {})
        lines = [f"Run {self.search} on {self.experiment}, {self.luminosity_fb:g} /fb ({self.directory})"]
        lines.append(f"datasets ({len(self.datasets)}):")
        width = max((len(n) for n in self.datasets), default=0)
        for name, kind in self.datasets.items():
            read = events.get(name, {}).get("read") if isinstance(events.get(name), dict) else None
            lines.append(f"  {name:{width}s}  {kind:10s}" + (f"  {read} events read" if read is not None else ""))
        names = self.histogram_names()
        lines.append(f"histograms ({len(names)}):")
        width = max((len(n) for n in names), default=0)
        lines += [f"  {name:{width}s}  {self.axes_summary(name)}" for name in names]
        cutflow = self._cutflow_lines()
        if cutflow:
            lines.append("cutflow, final step (dataset raw / weighted):")
            lines += cutflow
        lines += self._limit_lines()
        lines.append("validation: " + ("none" if self.validation is None else f"{len(self.validation)} rows"))
        return "\n".join(lines)

    __str__ = __repr__


def open_run(directory: str | Path, search: str | None = None) -> Run:
    """The outputs of one run: ``directory`` is ``RESULTS/`` (``search`` picks the run, or the only
    one there) or ``RESULTS/SEARCH/``. Missing or broken files are one-line UserErrors naming them."""
    path = run_directory(directory, search)
    metadata = _read_json(path / "metadata.json")
    for key in ("search", "experiment", "luminosity_fb", "datasets"):
        if key not in metadata:
            raise UserError(f"{path / 'metadata.json'}: missing key '{key}'")
    if search is not None and metadata["search"] != search:
        raise UserError(f"{path}: is a run of '{metadata['search']}', not '{search}'")
    histograms = _load_histograms(path / "histograms.coffea")
    cutflow = _read_json(path / "cutflow.json")
    return Run(
        directory=path,
        search=str(metadata["search"]),
        experiment=str(metadata["experiment"]),
        luminosity_fb=float(metadata["luminosity_fb"]),
        histograms=histograms,
        cutflow=cutflow,
        metadata=metadata,
        validation=_read_json(path / "validation.json", required=False),
        limits=_read_json(path / "limits.json", required=False),
        datasets={name: (info.get("kind", "?") if isinstance(info, dict) else "?") for name, info in metadata["datasets"].items()},
    )

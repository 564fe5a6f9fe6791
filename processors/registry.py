"""The searches this installation knows, each described once.

A search module defines one ``Search`` object (its processor, its YAMLs, its report, its BDT
training recipe, its demo samples) and installs it under the entry-point group
``belle_rare.searches``; ``belle-rare list/run/train/limit/demo`` iterate over that group. The
built-in searches register themselves in this package's ``pyproject.toml``; a physicist's own
package adds a search the same way (README, "Adding a search from your own package"). No shared
code names a search.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from belle_rare.configs.loader import load_config
from belle_rare.core.errors import UserError

if TYPE_CHECKING:
    from belle_rare.processors.base import SearchProcessor

ENTRY_POINT_GROUP = "belle_rare.searches"


@dataclass(frozen=True)
class Training:
    """How ``belle-rare train`` builds a search's k-fold BDT from its processor's ``features`` columns.

    ``sr_fraction(config, channel)``: area of the signal region over the window the Punzi
    background is counted in; ``extra_metadata(data, config)``: search-specific records for the
    model metadata (e.g. a signal-shape fit), or None.
    """

    sr_fraction: Callable[[Any, str], float]
    extra_metadata: Callable[[dict, Any], dict] | None = None
    #: one model per channel, stored under ``model_per_channel(channel)`` (None: one model for every channel)
    model_per_channel: Callable[[str], str] | None = None


@dataclass(frozen=True)
class Demo:
    """What ``make run`` does with a search: the experiment(s) it runs on, the samples that need more
    than the default number of events (process -> events, on each of its experiments) and, for a scan
    search, the stats YAML of its reduced scan (``Search.scan``'s ``scan_config``).

    The first experiment's run goes to ``OUT/results`` and gets limits; each further one's to
    ``OUT/results_<experiment>`` (a results directory holds one run per search), histograms and report only."""

    experiment: str | tuple[str, ...]
    larger_samples: Mapping[str, int] = field(default_factory=dict)
    scan_config: Path | None = None

    @property
    def experiments(self) -> tuple[str, ...]:
        return (self.experiment,) if isinstance(self.experiment, str) else tuple(self.experiment)


@dataclass(frozen=True)
class Search:
    """Everything the framework needs to know about one search.

    ``config_file`` / ``stats_file``: the search YAML (validated against
    ``processor.config_model``) and the stats-model YAML (None: no limits). ``report``:
    ``"module:function"`` writing validation.json / plots into a run's output directory, called as
    ``function(result, out_dir, console)`` (imported only when a run writes its outputs).
    ``scan``: ``"module:function"`` for a search whose limits are a many-hypothesis scan of its run
    output (``belle-rare limit SEARCH --results DIR`` and ``make run``'s limits call it instead of the
    generic stats-YAML path), called as ``function(search, results_dir, settings, make_plots)`` with the
    stats layer's ``Settings``; it writes DIR/SEARCH/limits.json (its ``limits`` entries in the generic
    path's form, one per curve, with ``hypotheses``: how many; ``files``: the paths written) and a scan
    table (``stats.scan_table``), and returns the ``stats.search_limits.SearchLimits``.
    """

    name: str
    processor: type[SearchProcessor]
    config_file: Path
    stats_file: Path | None = None
    report: str | None = None
    training: Training | None = None
    demo: Demo | None = None
    scan: str | None = None

    @property
    def experiments(self) -> tuple[str, ...]:
        return tuple(self.processor.experiments)

    @property
    def description(self) -> str:
        return (self.processor.__doc__ or self.name).strip().splitlines()[0]

    def load_config(self) -> Any:
        """The validated search config (a ConfigError names the file and the key)."""
        return load_config(self.config_file, self.processor.config_model)

    def report_function(self) -> Callable[..., None] | None:
        if self.report is None:
            return None
        module, _, function = self.report.partition(":")
        return getattr(importlib.import_module(module), function)

    def scan_function(self) -> Callable[..., Any] | None:
        if self.scan is None:
            return None
        module, _, function = self.scan.partition(":")
        return getattr(importlib.import_module(module), function)


def builtin_file(*parts: str) -> Path:
    """A YAML shipped in ``belle_rare.configs`` (for the built-in searches' ``Search`` objects)."""
    return Path(str(resources.files("belle_rare.configs").joinpath(*parts)))


@lru_cache(maxsize=None)
def _entry_points() -> dict[str, metadata.EntryPoint]:
    found: dict[str, metadata.EntryPoint] = {}
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in found and found[ep.name].value != ep.value:
            raise UserError(f"two installed packages register the search '{ep.name}' ({ENTRY_POINT_GROUP}): "
                            f"{found[ep.name].value} and {ep.value}")
        found[ep.name] = ep
    return found


@lru_cache(maxsize=None)
def _load(name: str) -> Search:
    """Import one search (only when asked: a broken plug-in does not stop the others)."""
    ep = _entry_points()[name]
    try:
        search = ep.load()
    except Exception as err:
        raise UserError(f"search entry point '{ep.name} = {ep.value}' ({ENTRY_POINT_GROUP}) failed to load: "
                        f"{type(err).__name__}: {err}") from err
    if not isinstance(search, Search):
        raise UserError(f"search entry point '{ep.name} = {ep.value}' is a {type(search).__name__}, not a "
                        "belle_rare.processors.registry.Search")
    if search.name != ep.name:
        raise UserError(f"search entry point '{ep.name}' points at a search named '{search.name}'")
    return search


def search_names() -> list[str]:
    """Names of every installed search (built-in and from other packages), without importing them."""
    return list(_entry_points())


def searches() -> dict[str, Search]:
    """Every installed search, by name (imports them all)."""
    return {name: _load(name) for name in _entry_points()}


def get_search(name: str) -> Search:
    """The search called ``name``; an unknown name is a UserError listing the installed ones."""
    if name not in _entry_points():
        raise UserError(f"unknown search '{name}' (installed: {', '.join(_entry_points()) or 'none'})")
    return _load(name)

"""Schema of ``configs/paper_mode.yaml``: the samples of ``belle-rare demo --paper``."""

from __future__ import annotations

from typing import Annotated

import pydantic

from belle_rare.configs.loader import StrictModel, config_path, load_config


class PaperSample(StrictModel):
    """One production: a catalogue process, the events to write (after its filter), an optional
    generator filter (a search name in ``search_filters``) and generator parameters."""

    process: str
    events: Annotated[int, pydantic.Field(gt=0)]
    filter: str | None = None
    parameters: dict[str, float] = pydantic.Field(default_factory=dict)
    why: str = ""  # what this sample is for (printed in the plan)


class PaperSearch(StrictModel):
    """The paper-luminosity mode of one search: where it runs and on what. ``search`` names the search
    an entry runs when its key is not a search name, so one search can have an entry per experiment
    (``kstartautau`` on Belle, ``kstartautau_belle2`` with ``search: kstartautau`` on Belle II)."""

    experiment: str
    search: str | None = None  # the search this entry runs (default: the entry's key)
    pid_weights: bool = False
    samples: Annotated[list[PaperSample], pydantic.Field(min_length=1)]
    left_out: dict[str, str] = pydantic.Field(default_factory=dict)  # process -> why it does not matter


class PaperMode(StrictModel):
    budget_core_hours: Annotated[float, pydantic.Field(gt=0)]
    searches: dict[str, PaperSearch]

    def search_of(self, entry: str) -> str:
        """The search an entry of ``searches`` runs: its ``search``, else its key."""
        return self.searches[entry].search or entry


def load_paper_mode() -> PaperMode:
    return load_config(config_path("paper_mode.yaml"), PaperMode)

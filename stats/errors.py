"""Errors of the statistics layer; all are user errors the CLI prints as one line (exit 2)."""

from __future__ import annotations

from belle_rare.core.errors import UserError


class StatsError(UserError):
    """A statistics input or result the user has to act on (bad workspace, failed fit, ...)."""


class WorkspaceError(StatsError):
    """The workspace is not JSON, fails pyhf's schema, or does not define the requested POI."""


class FitError(StatsError):
    """A maximum-likelihood fit did not converge."""


class LimitOutOfBounds(StatsError):
    """The CLs crossing lies outside the POI bounds of the model."""


class NoSignalError(StatsError):
    """The chosen channels expect no signal (a small simulated signal sample left a channel empty)."""

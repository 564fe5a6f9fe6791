"""Load YAML configuration files and validate them against pydantic models.

Every error is one line naming the file and the offending key, e.g.::

    ConfigError: configs/experiments/belle.yaml: beams.her.energy: Input should be a valid number
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

import pydantic
import yaml

# package data, found through importlib.resources (works from a wheel as from the checkout)
CONFIG_DIR = Path(str(resources.files("belle_rare.configs")))

Model = TypeVar("Model", bound=pydantic.BaseModel)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or does not match its schema."""


class StrictModel(pydantic.BaseModel):
    """Base for config models: unknown keys are errors, values are not coerced silently."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def config_path(*parts: str) -> Path:
    """Path of a file shipped in ``configs/`` (e.g. ``config_path("experiments", "belle.yaml")``)."""
    return CONFIG_DIR.joinpath(*parts)


def _format_location(loc: tuple) -> str:
    return ".".join(str(part) for part in loc) or "<top level>"


def read_yaml(path: str | Path) -> object:
    """Read a YAML file with ``yaml.safe_load``; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config ({err.strerror or err})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(err, 'problem', err)})") from None


def validate(data: object, model: type[Model], source: str | Path) -> Model:
    """Validate already-parsed data against ``model``; the first error names ``source`` and the key."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as err:
        # an unknown key is usually a typo of a required one: name the typo first
        errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_format_location(first['loc'])}: {first['msg']}{more}") from None


def load_config(path: str | Path, model: type[Model]) -> Model:
    """Read ``path`` and validate it against ``model``."""
    return validate(read_yaml(path), model, path)

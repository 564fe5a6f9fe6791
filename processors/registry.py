"""The searches this product knows: name -> processor class and its config file."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from configs.loader import config_path, load_config

# name -> (module, processor class); the class names its config model as ``config_model``
SEARCHES: dict[str, tuple[str, str]] = {
    "taulgamma": ("processors.taulgamma", "TauLGammaProcessor"),
    "tau3mu": ("processors.tau3mu", "Tau3MuProcessor"),
    "taulphi": ("processors.taulphi", "TauLPhiProcessor"),
}


@dataclass(frozen=True)
class Search:
    name: str
    processor_class: type
    config: object
    description: str


def load_search(name: str) -> Search:
    """Processor class and validated config (``configs/searches/<name>.yaml``) of a search."""
    if name not in SEARCHES:
        raise KeyError(f"unknown search '{name}' (known: {', '.join(SEARCHES)})")
    module_name, class_name = SEARCHES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    config = load_config(config_path("searches", f"{name}.yaml"), cls.config_model)
    return Search(name, cls, config, (cls.__doc__ or "").strip().splitlines()[0])

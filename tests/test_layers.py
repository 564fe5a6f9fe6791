"""Imports point down the layers: core <- configs <- corrections, simulation <- processors <- stats <- analyses.

A module may import from its own layer and the ones below, never from above (function-level
imports included), so each layer can be read, tested and reused without the ones on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import belle_rare

LAYERS = {"core": 0, "configs": 1, "corrections": 2, "simulation": 2, "processors": 3, "stats": 4, "analyses": 5, "models": 0}
ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"core": ROOT / "belle_rare" / "core", **{name: ROOT / name for name in LAYERS if name != "core"}}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "belle_rare" else [])
            found += [(node.lineno, n) for n in names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, name) for line, name in found if name.startswith("belle_rare.")]


def _modules():
    for layer, folder in FOLDERS.items():
        for path in sorted(folder.rglob("*.py")):
            yield layer, path


@pytest.mark.parametrize("layer,path", list(_modules()), ids=lambda x: str(x.relative_to(ROOT)) if isinstance(x, Path) else x)
def test_no_upward_import(layer, path):
    upward = []
    for line, name in _imports(path):
        target = name.split(".")[1]
        if target in LAYERS and LAYERS[target] > LAYERS[layer]:
            upward.append(f"{path.relative_to(ROOT)}:{line} imports {name} ({target} is above {layer})")
    assert not upward, "\n".join(upward)


def test_every_layer_is_in_the_namespace():
    for layer in LAYERS:
        assert (Path(belle_rare.__file__).parent.parent / "belle_rare").exists()
        __import__(f"belle_rare.{layer}")

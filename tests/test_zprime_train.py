"""``belle-rare train zprime`` (analyses/zprime_train.py through analyses/train_command.py) on a tiny generated
sample: it writes a model the processor loads, with a working point per trained mass."""

from __future__ import annotations

import json

import numpy as np
import pytest

from belle_rare.analyses.train_command import TrainOptions, train
from belle_rare.analyses.zprime_train import summary_lines
from belle_rare.configs.processes import load_catalogue
from belle_rare.processors import bdt
from belle_rare.processors import zprime_classifier as zc
from belle_rare.processors.registry import get_search
from belle_rare.simulation.production import Request, produce


@pytest.fixture(scope="module")
def tiny_samples(tmp_path_factory):
    out = tmp_path_factory.mktemp("zprime_train")
    for mass, seed in ((1.0, 71), (3.0, 73)):
        produce(Request("belle2", "sig_zprime", 600, seed, out, parameters={"mass": mass}), progress=False)
    spec = load_catalogue().search_filters["zprime_recoil"]
    produce(Request("belle2", "tautau_mumu", 1000, 75, out, generator_filter=spec, filter_name="zprime_recoil"), progress=False)
    return out


def test_train_zprime_writes_a_loadable_model(tiny_samples, tmp_path):
    result = train(TrainOptions(search="zprime", experiment="belle2", samples=tiny_samples, out=tmp_path))["zprime"]
    assert sorted(p.name for p in result["paths"]) == ["zprime_belle2.json", "zprime_belle2_meta.json"]
    meta = result["meta"]
    assert len(summary_lines(result)) == 2 + len(meta["masses"])   # header, one row per mass, footnote
    assert meta["masses"] == [1.0, 3.0] and set(meta["working_points"]) == {"1", "3"}
    for wp in meta["working_points"].values():
        assert 0.0 < wp["efficiency_before"] <= 1.0 and 0.0 <= wp["quoted_efficiency"] <= wp["efficiency_before"] + 0.05
    # the processor's loader: the k-fold model, its features, a cut per trained mass
    model = bdt.load_model(zc.MODEL_NAME, "belle2", zc.MODEL_FEATURES, tmp_path)
    cut = zc.ClassifierCut.from_model(model)
    assert list(cut.masses) == [1.0, 3.0]
    rng = np.random.default_rng(1)
    cols = {f: rng.uniform(0.0, 3.0, 50) for f in zc.FEATURES} | {"m2_recoil": rng.uniform(0.0, 12.0, 50)}
    score, idx = cut.scores(cols, np.arange(50))
    assert np.all((score >= 0) & (score <= 1)) and set(idx) <= {0, 1}
    # the processor runs with it (belle-rare run --model-dir)
    search = get_search("zprime")
    proc = search.processor("belle2", search.load_config(), model_dir=tmp_path)
    assert proc.classifier is not None and list(proc.classifier.masses) == [1.0, 3.0]


def test_train_zprime_cli(tiny_samples, tmp_path):
    """The command line: ``belle-rare train zprime`` prints the per-mass table and writes the artefacts."""
    from belle_rare.analyses.cli import main

    assert main(["train", "zprime", "--experiment", "belle2", "--samples", str(tiny_samples), "--out", str(tmp_path)]) == 0
    meta = json.loads((tmp_path / "zprime_belle2_meta.json").read_text())
    assert meta["trainer"] == "belle-rare train zprime" and set(meta["working_points"]) == {"1", "3"}

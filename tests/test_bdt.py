"""The shared BDT machinery: k-fold scoring never uses a model that saw the event, the Punzi
working point maximises the figure of merit, artefacts round-trip and refuse other feature lists,
a missing or broken model is a one-line error saying what to do."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.core.errors import UserError
from belle_rare.processors import bdt

FEATURES = ["a", "b", "c"]


def _toy(n: int = 3000, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    X = rng.normal(size=(n, 3)) + y[:, None] * np.array([1.0, 0.5, 0.0])
    event = rng.permutation(n * 7)[:n]  # unique, unordered event numbers
    return X, y, np.ones(n), event


@pytest.fixture(scope="module")
def trained():
    X, y, w, event = _toy()
    settings = bdt.TrainingSettings(folds=3, n_estimators=20, max_depth=2, seed=5)
    model, oof = bdt.train_kfold(X, y, w, event, FEATURES, settings)
    return model, oof, (X, y, w, event), settings


def test_kfold_never_scores_an_event_with_a_model_trained_on_it(trained):
    model, oof, (X, y, w, event), settings = trained
    fold = bdt.fold_of(event, settings.folds)
    # construct the check: retrain each fold's model by hand on exactly the other folds, and verify that
    # (1) the model's score of an event equals that fold model's prediction, (2) the fold model never saw it
    import xgboost as xgb

    for i in range(settings.folds):
        test = fold == i
        train_events = set(event[fold != i])
        assert not train_events & set(event[test])
        expected = model.boosters[i].predict(xgb.DMatrix(X[test], feature_names=FEATURES))
        np.testing.assert_allclose(model.score(X[test], event[test]), expected)
        assert np.array_equal(model.score(X[test], event[test]), expected)  # inplace_predict: bit for bit
        np.testing.assert_allclose(oof[test], expected)
        # booster i is exactly the model trained on the other folds only (training is deterministic) ...
        refit = bdt.train_fold(X[~test], y[~test], w[~test], FEATURES, settings, i)
        np.testing.assert_allclose(refit.predict(xgb.DMatrix(X[test], feature_names=FEATURES)), expected, rtol=1e-6)
        # ... and not a model that also saw fold i
        leaky = bdt.train_fold(X, y, w, FEATURES, settings, i)
        assert not np.allclose(leaky.predict(xgb.DMatrix(X[test], feature_names=FEATURES)), expected, rtol=1e-6)
    # scoring is per event and independent of the order / batch the events come in
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(model.score(X[perm], event[perm]), model.score(X, event)[perm])
    # and the out-of-fold scores separate the toy classes
    assert oof[y == 1].mean() > oof[y == 0].mean() + 0.1


def test_punzi_working_point_maximises_the_figure_of_merit():
    rng = np.random.default_rng(1)
    sig = rng.beta(5, 1, 2000)
    bkg = rng.beta(1, 5, 5000)
    w_sig, w_bkg = np.ones_like(sig), np.full_like(bkg, 0.2)
    wp = bdt.punzi_working_point(sig, w_sig, 4000.0, bkg, w_bkg, a=3.0)
    grid = np.linspace(0, 1, 501)
    fom = [np.sum(w_sig[sig > c]) / 4000.0 / (1.5 + np.sqrt(np.sum(w_bkg[bkg > c]))) for c in grid]
    assert wp["fom"] >= max(fom) - 1e-12
    assert wp["fom"] == pytest.approx(np.sum(sig > wp["cut"]) / 4000.0 / (1.5 + np.sqrt(0.2 * np.sum(bkg > wp["cut"]))))
    assert 0.0 < wp["cut"] < 1.0
    # no background at all: the loosest cut wins
    none = bdt.punzi_working_point(sig, w_sig, 4000.0, np.array([]), np.array([]), a=3.0)
    assert none["efficiency"] == pytest.approx(0.5)


def test_punzi_working_point_keeps_the_requested_background_events():
    rng = np.random.default_rng(2)
    sig = rng.beta(5, 1, 2000)
    bkg = rng.beta(1, 5, 300)  # few simulated events: the unconstrained optimum sits in a nearly empty tail
    w_sig, w_bkg = np.ones_like(sig), np.full_like(bkg, 5.0)
    free = bdt.punzi_working_point(sig, w_sig, 4000.0, bkg, w_bkg)
    kept = bdt.punzi_working_point(sig, w_sig, 4000.0, bkg, w_bkg, min_background_events=30)
    assert free["background_events_above_cut"] < 30 <= kept["background_events_above_cut"]
    assert kept["background_events_above_cut"] == np.sum(bkg > kept["cut"])
    assert kept["cut"] < free["cut"] and kept["fom"] <= free["fom"]
    # more than the sample holds: the constraint cannot be met and the unconstrained optimum is kept
    assert bdt.punzi_working_point(sig, w_sig, 4000.0, bkg, w_bkg, min_background_events=10_000)["cut"] == free["cut"]


def test_artefacts_round_trip_and_refuse_another_feature_list(trained, tmp_path):
    model, _, (X, _, _, event), _ = trained
    meta = {"working_point": {"cut": 0.42}}
    model_path, meta_path = bdt.save_model(model, "toy", "belle2", meta, tmp_path)
    assert model_path.name == "toy_belle2.json" and meta_path.name == "toy_belle2_meta.json"
    loaded = bdt.load_model("toy", "belle2", FEATURES, tmp_path)
    assert loaded.meta["features"] == FEATURES and loaded.folds == 3 and loaded.working_point == 0.42
    np.testing.assert_allclose(loaded.score(X, event), model.score(X, event), rtol=1e-6)
    with pytest.raises(bdt.FeatureMismatchError, match="different feature list.*missing from the model: \\['d'\\]"):
        bdt.load_model("toy", "belle2", FEATURES + ["d"], tmp_path)
    with pytest.raises(bdt.FeatureMismatchError, match="order differs: True"):
        bdt.load_model("toy", "belle2", list(reversed(FEATURES)), tmp_path)
    with pytest.raises(UserError) as err:
        bdt.load_model("other", "belle2", FEATURES, tmp_path)
    message = str(err.value)
    assert isinstance(err.value, bdt.MissingModelError) and "\n" not in message
    assert str(tmp_path) in message and "other_belle2.json and other_belle2_meta.json missing" in message
    assert "`belle-rare train other --experiment belle2 --samples DIR --out DIR`, then run with `--model-dir DIR`" in message
    (tmp_path / "toy_belle2.json").write_text("{not json")
    with pytest.raises(bdt.ModelArtefactError, match="not valid JSON"):
        bdt.load_model("toy", "belle2", FEATURES, tmp_path)


def test_the_bdt_block_of_a_search_yaml_gives_the_training_settings():
    cfg = bdt.BDTConfig(folds=4, n_estimators=10, max_depth=2, learning_rate=0.3, seed=9, punzi_a=5.0)
    assert cfg.settings() == bdt.TrainingSettings(folds=4, n_estimators=10, max_depth=2, learning_rate=0.3, seed=9, punzi_a=5.0,
                                                  min_background_events=0)
    with pytest.raises(ValueError, match="foldz"):
        bdt.BDTConfig(foldz=4, n_estimators=10, max_depth=2, learning_rate=0.3, seed=9, punzi_a=5.0)


def test_loaded_model_scores_on_one_thread_with_the_same_scores(trained, tmp_path):
    """A stored model predicts with one thread (xgboost's thread pool is a fixed ~20 ms per call on
    a loaded machine), through pickling to the workers too, with the scores of the trained boosters."""
    import json
    import pickle

    model, _, (X, _, _, event), _ = trained
    bdt.save_model(model, "toy", "belle", {"working_point": {"cut": 0.5}}, tmp_path)
    loaded = pickle.loads(pickle.dumps(bdt.load_model("toy", "belle", FEATURES, tmp_path)))
    for booster in loaded.boosters:
        assert json.loads(booster.save_config())["learner"]["generic_param"]["nthread"] == "1"
    assert np.array_equal(loaded.score(X, event), model.score(X, event))

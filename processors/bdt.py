"""Shared BDT machinery for the searches: k-fold xgboost training, Punzi working point, artefacts.

* Folds are keyed on the event number: an event with ``__event__ % k == i`` is in fold ``i``;
  model ``i`` is trained on every other fold and is the only model that ever scores fold ``i``
  (``fold_of`` / ``KFoldModel.score``), so no event is scored by a model that saw it.
* The working point maximises the Punzi figure of merit eps_sig / (a/2 + sqrt(B)) (Punzi,
  physics/0308063) over the out-of-fold scores (``punzi_working_point``).
* Artefacts: ``<name>.json`` holds the k boosters (xgboost JSON, one per fold) and
  ``<name>_meta.json`` the feature list, folds, working point, samples, seeds and version.
  ``load_model`` refuses a model whose feature list differs from the one asked for, and a
  missing model is a one-line error saying how to train one.
* ``BDTConfig``: the ``bdt:`` block every search YAML with a BDT shares (searches subclass it
  to add search-specific keys); ``settings()`` gives the ``TrainingSettings``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Sequence

import numpy as np
import pydantic

from belle_rare.configs.loader import StrictModel
from belle_rare.processors.base import SearchProcessor
from belle_rare.core.errors import UserError

ARTEFACT_FORMAT = "belle-rare-kfold-xgboost"
ARTEFACT_VERSION = 1
# the trained models shipped as package data (belle_rare.models)
MODELS_DIR = Path(str(resources.files("belle_rare.models")))
NO_MODEL_SCORE = -1.0


class FeatureMismatchError(UserError, ValueError):
    """A stored model was trained on another feature list than the processor computes (a one-line CLI error)."""


class ModelArtefactError(UserError, ValueError):
    """A stored model file is not a readable artefact of this format (a one-line CLI error)."""


class MissingModelError(UserError, FileNotFoundError):
    """No stored model for a search (a one-line CLI error saying how to train one)."""


@dataclass(frozen=True)
class TrainingSettings:
    folds: int = 3
    n_estimators: int = 100
    max_depth: int = 3
    learning_rate: float = 0.1
    seed: int = 1
    punzi_a: float = 3.0
    min_background_events: int = 0


class BDTConfig(StrictModel):
    """The ``bdt:`` block of a search YAML (a search may subclass it to add keys)."""

    folds: int
    n_estimators: int
    max_depth: int
    learning_rate: float
    seed: int
    punzi_a: float
    min_background_events: int = 0

    def settings(self) -> TrainingSettings:
        return TrainingSettings(folds=self.folds, n_estimators=self.n_estimators, max_depth=self.max_depth,
                                learning_rate=self.learning_rate, seed=self.seed, punzi_a=self.punzi_a,
                                min_background_events=self.min_background_events)


def feature_list(computed: Sequence[str], module: str) -> Any:
    """Type of a search config's ``features``: names ``module`` computes (the YAML picks and orders them)."""

    def check(value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(computed))
        if unknown:
            raise ValueError(f"features not computed by {module}: {unknown}")
        return value

    return Annotated[list[str], pydantic.AfterValidator(check)]


def fold_of(event_number: np.ndarray, folds: int) -> np.ndarray:
    """Fold index of each event: ``__event__ % folds``."""
    return np.asarray(event_number, dtype=np.int64) % folds


def model_paths(search: str, experiment: str, models_dir: Path | None = None) -> tuple[Path, Path]:
    base = Path(models_dir or MODELS_DIR)
    return base / f"{search}_{experiment}.json", base / f"{search}_{experiment}_meta.json"


@dataclass
class KFoldModel:
    """k boosters; ``score`` applies booster ``i`` to the events of fold ``i`` only."""

    features: list[str]
    boosters: list[Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def folds(self) -> int:
        return len(self.boosters)

    @property
    def working_point(self) -> float:
        return float(self.meta.get("working_point", {}).get("cut", 0.5))

    def score(self, X: np.ndarray, event_number: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float).reshape(-1, len(self.features))
        out = np.full(len(X), NO_MODEL_SCORE)
        fold = fold_of(event_number, self.folds)
        for i, booster in enumerate(self.boosters):
            sel = fold == i
            if sel.any():
                # inplace_predict: the same scores as predict(DMatrix(...)) without building a DMatrix
                # (3 x less CPU; tests/test_bdt.py compares them)
                out[sel] = booster.inplace_predict(X[sel])
        return out


def train_fold(X: np.ndarray, y: np.ndarray, w: np.ndarray, features: Sequence[str], settings: TrainingSettings, fold: int) -> Any:
    """One booster on the given (training) events; classes weighted to equal totals. Deterministic."""
    import xgboost as xgb

    if len(np.unique(y)) < 2:
        raise ValueError(f"fold {fold}: training needs both signal and background events")
    wt = np.asarray(w, dtype=float).copy()
    for cls in (0, 1):
        tot = wt[y == cls].sum()
        if tot > 0:
            wt[y == cls] /= tot
    params = {"objective": "binary:logistic", "max_depth": settings.max_depth, "eta": settings.learning_rate,
              "seed": settings.seed + fold, "nthread": 1, "tree_method": "hist", "eval_metric": "logloss"}
    dtrain = xgb.DMatrix(X, label=y, weight=wt * len(wt), feature_names=list(features))
    return xgb.train(params, dtrain, num_boost_round=settings.n_estimators)


def train_kfold(X: np.ndarray, y: np.ndarray, w: np.ndarray, event_number: np.ndarray, features: Sequence[str],
                settings: TrainingSettings = TrainingSettings()) -> tuple[KFoldModel, np.ndarray]:
    """Train one booster per fold on the other folds; returns the model and out-of-fold scores."""
    import xgboost as xgb

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=int)
    w = np.asarray(w, dtype=float)
    fold = fold_of(event_number, settings.folds)
    oof = np.full(len(y), np.nan)
    boosters = []
    for i in range(settings.folds):
        train, test = fold != i, fold == i
        booster = train_fold(X[train], y[train], w[train], features, settings, i)
        boosters.append(booster)
        if test.any():
            oof[test] = booster.predict(xgb.DMatrix(X[test], feature_names=list(features)))
    return KFoldModel(list(features), boosters), oof


def _weight_above(score: np.ndarray, weight: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Sum of ``weight`` over entries with ``score > cut``, for every cut (sorted cumulative sums)."""
    order = np.argsort(score)
    above = np.concatenate([np.cumsum(weight[order][::-1])[::-1], [0.0]])
    return above[np.searchsorted(score[order], cuts, side="right")]


def punzi_working_point(sig_score: np.ndarray, sig_weight: np.ndarray, n_signal_total: float,
                        bkg_score: np.ndarray, bkg_weight: np.ndarray, a: float = 3.0,
                        cuts: np.ndarray | None = None, min_background_events: int = 0) -> dict[str, float]:
    """The cut on the score maximising eps_sig / (a/2 + sqrt(B)).

    eps_sig: signal weight with score > cut over ``n_signal_total``; B: background weight
    (already scaled to the search luminosity and region) with score > cut.  Only cuts that leave
    at least ``min_background_events`` simulated background events are eligible (when any does),
    so that B is measured rather than a fluctuation of a nearly empty tail.
    """
    sig_score, bkg_score = np.asarray(sig_score, float), np.asarray(bkg_score, float)
    sig_weight, bkg_weight = np.asarray(sig_weight, float), np.asarray(bkg_weight, float)
    if cuts is None:
        cuts = np.unique(np.concatenate([[0.0], sig_score, bkg_score]))
        cuts = cuts[np.isfinite(cuts)] - 1e-12
    cuts = np.asarray(cuts, float)
    eps = _weight_above(sig_score, sig_weight, cuts) / n_signal_total
    b = _weight_above(bkg_score, bkg_weight, cuts)
    n_bkg = _weight_above(bkg_score, np.ones_like(bkg_score), cuts)
    fom = eps / (a / 2.0 + np.sqrt(np.clip(b, 0, None)))
    eligible = n_bkg >= min_background_events
    if eligible.any():
        fom = np.where(eligible, fom, -np.inf)
    best = int(np.argmax(fom))
    return {"cut": float(cuts[best]), "fom": float(fom[best]), "efficiency": float(eps[best]), "background": float(b[best]), "a": a,
            "background_events_above_cut": int(n_bkg[best])}


def save_model(model: KFoldModel, search: str, experiment: str, meta: dict[str, Any], models_dir: Path | None = None) -> tuple[Path, Path]:
    """Write the boosters (one JSON) and the metadata JSON; returns both paths."""
    model_path, meta_path = model_paths(search, experiment, models_dir)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    boosters = [json.loads(bytes(b.save_raw("json")).decode()) for b in model.boosters]
    model_path.write_text(json.dumps({"format": ARTEFACT_FORMAT, "version": ARTEFACT_VERSION, "features": model.features,
                                      "boosters": boosters}))
    full = {"format": ARTEFACT_FORMAT, "version": ARTEFACT_VERSION, "search": search, "experiment": experiment,
            "features": model.features, "folds": model.folds, "fold_key": "__event__ % folds", **meta}
    meta_path.write_text(json.dumps(full, indent=2) + "\n")
    model.meta = full
    return model_path, meta_path


def load_model(search: str, experiment: str, features: Sequence[str], models_dir: Path | None = None) -> KFoldModel:
    """The stored model (``models_dir`` None: the shipped ones). A missing model is a
    ``MissingModelError``, a different feature list a ``FeatureMismatchError``."""
    import xgboost as xgb

    model_path, meta_path = model_paths(search, experiment, models_dir)
    missing = [p.name for p in (model_path, meta_path) if not p.is_file()]
    if missing:
        where = "the shipped models" if models_dir is None else "--model-dir"
        raise MissingModelError(
            f"no {search} BDT model for {experiment} in {model_path.parent} ({where}; {' and '.join(missing)} missing): "
            f"train one with `belle-rare train {search} --experiment {experiment} --samples DIR --out DIR`, "
            f"then run with `--model-dir DIR`"
        )
    try:
        meta, payload = json.loads(meta_path.read_text()), json.loads(model_path.read_text())
    except json.JSONDecodeError as err:
        raise ModelArtefactError(f"{model_path.parent}: model files are not valid JSON ({err})") from None
    if payload.get("format") != ARTEFACT_FORMAT or payload.get("version") != ARTEFACT_VERSION:
        raise ModelArtefactError(f"{model_path}: not a {ARTEFACT_FORMAT} v{ARTEFACT_VERSION} artefact")
    stored = list(meta.get("features", []))
    if stored != list(features) or list(payload.get("features", [])) != stored:
        missing = sorted(set(features) - set(stored))
        extra = sorted(set(stored) - set(features))
        raise FeatureMismatchError(
            f"{meta_path}: model trained on a different feature list (missing from the model: {missing or 'none'}; "
            f"not computed by the processor: {extra or 'none'}; order differs: {not missing and not extra}); "
            f"retrain with `belle-rare train {search} --experiment {experiment} --samples DIR --out DIR`"
        )
    boosters = []
    for b in payload["boosters"]:
        booster = xgb.Booster()
        booster.load_model(bytearray(json.dumps(b).encode()))
        booster.feature_names = stored
        # one thread: each worker is one single-threaded process, and xgboost's OpenMP pool costs a
        # fixed ~20 CPU ms per inplace_predict call on a loaded machine (0.2 ms with one thread; the
        # scores are the same, row by row; kept through pickling to the workers)
        booster.set_param({"nthread": 1})
        boosters.append(booster)
    if len(boosters) != meta.get("folds"):
        raise ModelArtefactError(f"{model_path}: {len(boosters)} boosters but metadata says {meta.get('folds')} folds")
    return KFoldModel(stored, boosters, meta)


class BDTProcessor(SearchProcessor):
    """A search processor with a k-fold BDT: loads the stored model (none in training mode) and
    scores events; the search's config has ``features`` and a ``bdt`` block."""

    def setup(self) -> None:
        self.model = None if self.training else load_model(self.name, self.experiment, self.config.features, self.model_dir)

    def score(self, X: np.ndarray, event_number: np.ndarray) -> np.ndarray:
        """Out-of-fold scores; ``NO_MODEL_SCORE`` for every event in training mode."""
        if self.model is None or len(X) == 0:
            return np.full(len(X), NO_MODEL_SCORE)
        return self.model.score(X, event_number)

    @property
    def working_point(self) -> float:
        """The stored Punzi working point (infinite in training mode: nothing passes)."""
        return self.model.working_point if self.model is not None else np.inf

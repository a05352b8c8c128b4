"""The blend stage: the LSTM's and the baseline's probabilities averaged with one weight chosen
on validation only, scored on test, in reports/blend.json and its own MLflow run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from src.lib import blending, model_folder, predictions
from src.lib.errors import UserError
from src.stages import blend

REVIEWS = 400


def write_predictions(cfg, name: str, probability, label, review_id) -> None:
    predictions.save(
        Path(cfg.paths.reports) / predictions.DIRECTORY / name,
        predictions.Predictions(
            np.asarray(probability, np.float32), np.asarray(label, np.int8), np.asarray(review_id, np.int32)
        ),
    )


def two_models(cfg, seed: int = 0, test_labels=None) -> None:
    """What the train, evaluate and baseline stages leave for the blend: two models, each
    informative with its own noise, so neither alone is best; and the training run's record."""
    rng = np.random.default_rng(seed)
    for split in ("val", "test"):
        label = rng.integers(0, 2, REVIEWS)
        signal = np.where(label == 1, 1.0, -1.0)
        lstm = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.6, REVIEWS))))
        nblr = 1 / (1 + np.exp(-(signal + rng.normal(0, 1.2, REVIEWS))))
        if split == "test" and test_labels is not None:
            label = test_labels(label)
        ids = np.arange(REVIEWS)
        write_predictions(cfg, predictions.file_name(split), lstm, label, ids)
        write_predictions(cfg, "baseline-" + predictions.file_name(split), nblr, label, ids)
    folder = Path(cfg.paths.model)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / model_folder.RUN_FILE).write_text(
        json.dumps({"run_id": "0" * 32, "model_uri": "models:/m/1", "best_val_accuracy": 0.5})
    )


def test_the_blend_scores_test_with_a_weight_from_validation_and_logs_a_comparable_run(tiny_cfg):
    two_models(tiny_cfg)
    metrics = blend.blend(tiny_cfg)
    assert json.loads((Path(tiny_cfg.paths.reports) / blend.METRICS_FILE).read_text()) == metrics
    assert 0 < metrics["weight"] < 1  # both models carry signal: the blend uses both
    folder = Path(tiny_cfg.paths.reports) / predictions.DIRECTORY
    lstm, nblr = (predictions.load(folder / name) for name in ("test.npz", "baseline-test.npz"))
    expected = metrics["weight"] * lstm.probability + (1 - metrics["weight"]) * nblr.probability
    assert metrics["accuracy"] == pytest.approx(np.mean((expected >= 0.5) == lstm.label))
    [run] = mlflow.search_runs(
        experiment_names=[tiny_cfg.tracking.experiment], output_format="list", filter_string="tags.blend = 'lstm+nblr'"
    )
    assert run.data.metrics["test_accuracy"] == metrics["accuracy"] and run.data.metrics["weight"] == metrics["weight"]
    # Per-review predictions on the run, as `python -m src.compare` reads them.
    assert predictions.from_run(run.info.run_id, "test").probability == pytest.approx(expected)
    assert predictions.from_run(run.info.run_id, "val").digest == predictions.load(folder / "val.npz").digest


def test_the_weight_is_chosen_without_test_labels(tiny_cfg, tmp_path):
    two_models(tiny_cfg)
    weight = blend.blend(tiny_cfg)["weight"]
    # The same validation predictions, test labels flipped and shuffled: a weight that read them
    # would move (on test alone, these labels favour the other end of the grid).
    for change in (lambda y: 1 - y, lambda y: np.random.default_rng(1).permutation(y)):
        other = replace(
            tiny_cfg,
            paths=replace(
                tiny_cfg.paths, reports=str(tmp_path / "other" / "reports"), model=str(tmp_path / "other" / "models")
            ),
        )
        two_models(other, test_labels=change)
        assert blend.blend(other)["weight"] == weight


def test_the_weight_follows_the_better_model_on_validation():
    y = np.array([0, 1] * 50, np.int8)
    ids = np.arange(100, dtype=np.int32)
    right, wrong = np.where(y == 1, 0.9, 0.1).astype(np.float32), np.full(100, 0.5, np.float32)
    wrong[::3] = 1 - right[::3]
    lstm, nblr = predictions.Predictions(right, y, ids), predictions.Predictions(wrong, y, ids)
    assert blending.choose_weight(lstm, nblr, 0.05) == 1.0
    assert blending.choose_weight(nblr, lstm, 0.05) == 0.0
    other_reviews = predictions.Predictions(wrong, y, ids + 1)
    with pytest.raises(UserError, match="different reviews"):
        blending.choose_weight(lstm, other_reviews, 0.05)

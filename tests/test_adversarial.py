"""Adversarial training on the embeddings (train.adversarial=at): the perturbation's size and
reach, the training it changes, and a saved model that is the plain classifier."""

from __future__ import annotations

import csv
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from src.lib import config, model_folder
from src.lib.errors import UserError
from src.stages import evaluate, train


def test_the_perturbation_has_norm_epsilon_per_review_and_leaves_padding_alone():
    import tensorflow as tf

    from src.lib.adversarial import perturbation

    rng = np.random.default_rng(0)
    gradient = rng.normal(size=(3, 6, 4)).astype(np.float32) * np.array([1, 1e-9, 1e3], np.float32)[:, None, None]
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]], bool)
    r = np.asarray(perturbation(tf.constant(gradient), tf.constant(mask), 5.0))
    assert np.sqrt((r ** 2).sum(axis=(1, 2))) == pytest.approx([5.0, 5.0, 5.0], rel=1e-4)  # tiny or large gradients
    assert np.all(r[~mask] == 0)
    # Along the gradient, on the words it moves.
    direction = gradient * mask[:, :, None]
    cosine = (r * direction).sum(axis=(1, 2)) / (np.linalg.norm(r, axis=(1, 2)) * np.linalg.norm(direction, axis=(1, 2)))
    assert cosine == pytest.approx([1.0, 1.0, 1.0], rel=1e-4)


def history(cfg) -> list[dict]:
    with open(Path(cfg.paths.reports) / "history.csv") as f:
        return list(csv.DictReader(f))


def test_an_adversarially_trained_model_is_saved_and_served_as_a_plain_classifier(prepared_cfg, tmp_path):
    at_cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, adversarial="at", adversarial_epsilon=1.0))
    result = train.train(at_cfg)
    rows = history(at_cfg)
    # Moved against the model, the reviews cost more than as they are: the direction is adversarial.
    assert all(float(row["adversarial_loss"]) > float(row["loss"]) for row in rows)
    metrics = evaluate.evaluate(at_cfg)  # loads with safe_mode=True
    saved = Path(at_cfg.paths.model) / model_folder.MODEL_FILE
    with zipfile.ZipFile(saved) as archive:
        assert "Adversarial" not in archive.read("config.json").decode()
    [run] = mlflow.search_runs(experiment_names=[at_cfg.tracking.experiment], output_format="list")
    assert run.data.params["train.adversarial"] == "at" and run.info.run_id == result["run_id"]
    assert run.data.metrics["test_accuracy"] == metrics["accuracy"] and "adversarial_loss" in run.data.metrics
    classifier = model_folder.ReviewClassifier.from_folder(at_cfg.paths.model)
    assert classifier.predict_proba(["a wonderful film", "an awful film"]).shape == (2,)

    # The same seed without the adversarial term trains other weights.
    plain_cfg = replace(prepared_cfg, paths=replace(prepared_cfg.paths, model=str(tmp_path / "plain" / "models"),
                                                    reports=str(tmp_path / "plain" / "reports")))
    train.train(plain_cfg)
    assert "adversarial_loss" not in history(plain_cfg)[0]
    assert float(history(plain_cfg)[0]["loss"]) != float(rows[0]["loss"])


@pytest.mark.parametrize("override, message", [
    ("train.adversarial=vat", "train.adversarial must be one of none, at, got 'vat'"),
    ("train.adversarial_epsilon=0", "train.adversarial_epsilon must be > 0"),
])
def test_bad_adversarial_settings_are_one_line(override, message):
    with pytest.raises(UserError, match=message):
        config.compose([override])

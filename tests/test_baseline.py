"""The baseline stage: TF-IDF + logistic regression on the LSTM's own training split, scored on
the same test reviews, in its own metrics file and its own MLflow run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from src.lib import data, predictions
from src.lib.errors import UserError
from src.stages import baseline, download, tokenize


@pytest.mark.parametrize("val_split", ["random", "movie"])
def test_the_baseline_fits_the_lstms_training_split_and_scores_its_test_reviews(tiny_cfg, val_split):
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, val_split=val_split))
    download.download(cfg)
    tokenize.tokenize(cfg)
    metrics = baseline.fit_and_score(cfg)
    written = json.loads((Path(cfg.paths.reports) / baseline.METRICS_FILE).read_text())
    assert written == metrics and 0.5 < metrics["accuracy"] <= 1 and metrics["features"] > 0
    [run] = mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list",
                               filter_string="tags.baseline = 'tfidf-logreg'")
    assert run.data.metrics["test_accuracy"] == metrics["accuracy"]
    assert run.data.metrics["val_accuracy"] == metrics["val_accuracy"] and "test_val_accuracy" not in run.data.metrics
    # The same reviews as the LSTM's: its validation and test splits, review by review.
    for split in ("val", "test"):
        tokens = Path(cfg.paths.tokens) / f"{split}.npz"
        _, labels = data.load_ragged(tokens)
        theirs = predictions.Predictions(np.zeros(len(labels), np.float32), labels, data.load_review_ids(tokens))
        assert predictions.from_run(run.info.run_id, split).digest == theirs.digest


def test_bad_baseline_settings_are_one_line(tiny_cfg):
    from src.lib import config

    with pytest.raises(UserError, match="baseline.C must be > 0"):
        config.compose(["baseline.C=0"])

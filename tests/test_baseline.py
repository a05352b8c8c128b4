"""The baseline stage: NB-weighted logistic regression (or TF-IDF + logistic regression) on the
LSTM's own training split, scored on the same test reviews, in its own metrics file, prediction
files and MLflow run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
from scipy import sparse

from src.lib import config, data, ngrams, predictions
from src.lib.errors import UserError
from src.stages import baseline, download, tokenize


@pytest.mark.parametrize("method, val_split", [("nblr", "movie"), ("tfidf", "movie"), ("nblr", "random")])
def test_the_baseline_fits_the_lstms_training_split_and_scores_its_test_reviews(tiny_cfg, method, val_split):
    cfg = replace(
        tiny_cfg,
        data=replace(tiny_cfg.data, val_split=val_split),
        baseline=config.compose([f"baseline={method}"]).baseline,
    )
    download.download(cfg)
    tokenize.tokenize(cfg)
    metrics = baseline.fit_and_score(cfg)
    written = json.loads((Path(cfg.paths.reports) / baseline.METRICS_FILE).read_text())
    assert written == metrics and metrics["accuracy"] > 0.5 and metrics["features"] > 0
    [run] = mlflow.search_runs(
        experiment_names=[cfg.tracking.experiment], output_format="list", filter_string=f"tags.baseline = '{method}'"
    )
    assert run.data.metrics["test_accuracy"] == metrics["accuracy"] and run.info.run_name == f"baseline-{method}"
    assert run.data.metrics["val_accuracy"] == metrics["val_accuracy"] and "test_val_accuracy" not in run.data.metrics
    # The same reviews as the LSTM's: its validation and test splits, review by review; the
    # files the blend stage reads hold what the run holds.
    for split in ("val", "test"):
        tokens = Path(cfg.paths.tokens) / f"{split}.npz"
        _, labels = data.load_ragged(tokens)
        theirs = predictions.Predictions(np.zeros(len(labels), np.float32), labels, data.load_review_ids(tokens))
        logged = predictions.from_run(run.info.run_id, split)
        assert logged.digest == theirs.digest
        saved = predictions.load(Path(cfg.paths.reports) / predictions.DIRECTORY / baseline.prediction_file(split))
        assert saved.digest == theirs.digest and np.array_equal(saved.probability, logged.probability)


def test_the_method_picks_the_features():
    texts = ["a great film", "great acting", "an awful film", "awful acting"] * 3
    labels = np.array([1, 1, 0, 0] * 3)
    nblr = ngrams.fitted(config.compose().baseline, texts, labels)
    tfidf = ngrams.fitted(config.compose(["baseline=tfidf"]).baseline, texts, labels)
    assert [type(step).__name__ for step in nblr] == ["CountVectorizer", "LogCountRatio", "LogisticRegression"]
    assert nblr[0].binary and nblr[0].ngram_range == (1, 3)
    assert [type(step).__name__ for step in tfidf] == ["TfidfVectorizer", "LogisticRegression"]
    assert nblr.predict(["great", "awful"]).tolist() == [1, 0]


def test_the_log_count_ratio_weighs_words_by_the_label_they_mark():
    # Columns: a word only positive reviews hold, one only negative ones hold, one both hold.
    x = sparse.csr_matrix(np.array([[1, 0, 1], [1, 0, 1], [0, 1, 1], [0, 1, 1]], dtype=np.float32))
    ratio = ngrams.LogCountRatio(alpha=1.0).fit(x, np.array([1, 1, 0, 0])).ratio_
    # p = (3, 1, 3) / 7 and q = (1, 3, 3) / 7 after add-one smoothing.
    assert ratio == pytest.approx([np.log(3), -np.log(3), 0.0])
    scaled = ngrams.LogCountRatio(alpha=1.0).fit_transform(x, np.array([1, 1, 0, 0]))
    assert scaled.toarray()[0] == pytest.approx([np.log(3), 0.0, 0.0])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["baseline.C=0"], "baseline.C must be > 0"),
        (["baseline.method=svm"], "baseline.method must be one of nblr, tfidf, got 'svm'"),
        (["baseline=tfidf", "baseline.method=nblr"], "baseline.sublinear_tf is TF-IDF's"),
        (["blend.weight_step=0"], "blend.weight_step must be in (0, 1]"),
    ],
)
def test_bad_baseline_settings_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config.compose(overrides)

"""DVC stage `baseline`: the number the LSTM must beat, TF-IDF of word n-grams + logistic regression.

Fitted on the same training reviews the train stage fits on (the training reviews but the
validation split, carved as data.val_split says) and scored on the same test reviews, with the
same standardization (src.lib.text). Writes reports/baseline.json (`accuracy` among the
evaluate stage's metrics), so `dvc metrics show` puts the two side by side, and logs an MLflow
run tagged `baseline=tfidf-logreg` with its validation and test figures and predictions.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from src.lib import config, data, evaluation, predictions, tracking
from src.lib.artifacts import atomic_write_text
from src.lib.errors import command
from src.lib.text import standardize

METRICS_FILE = "baseline.json"
TAG = {"baseline": "tfidf-logreg"}


def fitted(b: config.BaselineConfig, texts: list[str], labels: np.ndarray):
    """(vectorizer, logistic regression) fitted on these reviews, as the baseline config says."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(tokenizer=standardize, token_pattern=None, lowercase=False,
                                 ngram_range=(1, b.ngram_max), min_df=b.min_df, sublinear_tf=b.sublinear_tf,
                                 dtype=np.float32)
    model = LogisticRegression(C=b.C, max_iter=1000).fit(vectorizer.fit_transform(texts), labels)
    return vectorizer, model


def fit_and_score(cfg: config.Config) -> dict:
    """The baseline's test metrics (plus validation accuracy and seconds), in an MLflow run."""
    import mlflow

    splits, _ = data.split_reviews(cfg)
    texts = {name: [text for text, _, _ in rows] for name, rows in splits.items()}
    labels = {name: np.array([label for _, label, _ in rows], dtype=np.int8) for name, rows in splits.items()}
    ids = {name: np.array([i for _, _, i in rows], dtype=np.int32) for name, rows in splits.items()}
    b = cfg.baseline
    run_cfg = replace(cfg, tracking=replace(cfg.tracking, run_name="baseline-tfidf-logreg", registered_model=None))
    with tracking.run(run_cfg, tags=data.source_tags(cfg) | TAG):
        started = time.perf_counter()
        vectorizer, model = fitted(b, texts["train"], labels["train"])
        seconds = time.perf_counter() - started
        p = {name: model.predict_proba(vectorizer.transform(texts[name]))[:, 1].astype(np.float32)
             for name in ("val", "test")}
        metrics, _ = evaluation.score(labels["test"].astype(int), p["test"])
        evaluation.log_to_active_run(metrics)  # test_* metrics, as the LSTM's run has them
        val = predictions.Predictions(p["val"], labels["val"], ids["val"])
        metrics |= {"val_accuracy": val.accuracy, "fit_seconds": round(seconds, 1),
                    "features": len(vectorizer.vocabulary_)}
        mlflow.log_params({f"baseline.{k}": v for k, v in vars(b).items()} | {"data.val_split": cfg.data.val_split})
        mlflow.log_metrics({k: metrics[k] for k in ("val_accuracy", "fit_seconds", "features")})
        predictions.log_to_active_run("val", val)
        predictions.log_to_active_run("test", predictions.Predictions(p["test"], labels["test"], ids["test"]))
    atomic_write_text(Path(cfg.paths.reports) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    m = fit_and_score(cfg)
    print(f"baseline (TF-IDF 1-{cfg.baseline.ngram_max}-grams + logistic regression): test accuracy "
          f"{m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}, validation accuracy {m['val_accuracy']:.4f}, "
          f"{m['features']} features, fitted in {m['fit_seconds']:.0f} s")


if __name__ == "__main__":
    main()

"""DVC stage `baseline`: the number the LSTM must beat, a linear model of word n-grams.

`baseline.method=nblr` (the default): NB-weighted logistic regression on binarized 1-3-grams
(Wang & Manning 2012): a review is the set of n-grams it holds, each scaled by its log-count
ratio between positive and negative training reviews, classified by logistic regression.
`baseline.method=tfidf` (with `baseline=tfidf`, its own settings): TF-IDF + logistic regression.

Fitted on the same training reviews the train stage fits on (the training reviews but the
validation split, carved as data.val_split says) and scored on the same test reviews, with the
same standardization (src.lib.text). Writes reports/baseline.json (`accuracy` among the
evaluate stage's metrics), so `dvc metrics show` puts the two side by side, every validation
and test review's probability (reports/predictions/baseline-{val,test}.npz, what the blend
stage reads), and logs an MLflow run tagged `baseline=<method>` with the same figures and
predictions.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from src.lib import config, data, evaluation, ngrams, predictions, tracking
from src.lib.artifacts import publish, staging_dir
from src.lib.errors import command

METRICS_FILE = "baseline.json"
PREDICTIONS_PREFIX = "baseline-"  # reports/predictions/baseline-val.npz, baseline-test.npz
NAMES = {"nblr": "NB-weighted logistic regression", "tfidf": "TF-IDF + logistic regression"}


def prediction_file(split: str) -> str:
    return PREDICTIONS_PREFIX + predictions.file_name(split)


def fit_and_score(cfg: config.Config) -> dict:
    """The baseline's test metrics (plus validation accuracy and seconds), in an MLflow run."""
    import mlflow

    splits, _ = data.split_reviews(cfg)
    texts = {name: [text for text, _, _ in rows] for name, rows in splits.items()}
    labels = {name: np.array([label for _, label, _ in rows], dtype=np.int8) for name, rows in splits.items()}
    ids = {name: np.array([i for _, _, i in rows], dtype=np.int32) for name, rows in splits.items()}
    b = cfg.baseline
    run_cfg = replace(cfg, tracking=replace(cfg.tracking, run_name=f"baseline-{b.method}", registered_model=None))
    with tracking.run(run_cfg, tags=data.source_tags(cfg) | {"baseline": b.method}):
        started = time.perf_counter()
        model = ngrams.fitted(b, texts["train"], labels["train"])
        seconds = time.perf_counter() - started
        p = {name: model.predict_proba(texts[name])[:, 1].astype(np.float32) for name in ("val", "test")}
        metrics, _ = evaluation.score(labels["test"].astype(int), p["test"])
        evaluation.log_to_active_run(metrics)  # test_* metrics, as the LSTM's run has them
        split_predictions = {name: predictions.Predictions(p[name], labels[name], ids[name]) for name in p}
        metrics |= {
            "val_accuracy": split_predictions["val"].accuracy,
            "fit_seconds": round(seconds, 1),
            "features": len(model[0].vocabulary_),
        }
        tracking.log_params(cfg, ("data", "baseline"))
        mlflow.log_metrics({k: metrics[k] for k in ("val_accuracy", "fit_seconds", "features")})
        for name, split in split_predictions.items():
            predictions.log_to_active_run(name, split)
        reports = Path(cfg.paths.reports)
        with staging_dir(reports) as staging:
            for name, split in split_predictions.items():
                predictions.save(staging / prediction_file(name), split)
            (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
            # The metrics file last: it is what `dvc metrics show` reads.
            publish(
                {
                    staging / prediction_file(name): reports / predictions.DIRECTORY / prediction_file(name)
                    for name in split_predictions
                }
                | {staging / METRICS_FILE: reports / METRICS_FILE}
            )
    return metrics


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    m = fit_and_score(cfg)
    print(
        f"baseline ({NAMES[cfg.baseline.method]}, 1-{cfg.baseline.ngram_max}-grams): test accuracy "
        f"{m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}, validation accuracy {m['val_accuracy']:.4f}, "
        f"{m['features']} features, fitted in {m['fit_seconds']:.0f} s"
    )


if __name__ == "__main__":
    main()

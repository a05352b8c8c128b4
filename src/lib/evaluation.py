"""Scoring a model on the test split: the metrics the evaluate stage, the baseline and
`src.repeat` report, and `score_test`, which predicts, scores and logs in one step."""

from __future__ import annotations

import numpy as np

from src.lib import batches, config, predictions
from src.lib.data import Split

THRESHOLD = 0.5  # probability at or above which a review is labelled positive


def log_loss(y_true: np.ndarray, p_positive: np.ndarray) -> float:
    """Binary cross-entropy, the probabilities clipped to Keras' epsilon so it matches model.evaluate."""
    p = np.clip(p_positive, 1e-7, 1 - 1e-7)
    return float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))


def score(y_true: np.ndarray, p_positive: np.ndarray) -> tuple[dict, np.ndarray]:
    """Test metrics and the ROC curve (rows of fpr, tpr, threshold)."""
    from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score, roc_curve

    y_pred = (p_positive >= THRESHOLD).astype(int)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    metrics = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "loss": log_loss(y_true, p_positive),
        "roc_auc": float(roc_auc_score(y_true, p_positive)),
        "f1": float(f1_score(y_true, y_pred)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }
    fpr, tpr, thresholds = roc_curve(y_true, p_positive)
    return metrics, np.column_stack([fpr, tpr, thresholds])


def log_to_active_run(metrics: dict) -> None:
    """The test metrics (the confusion matrix's cells each as one) on the active MLflow run."""
    import mlflow

    cm = metrics["confusion_matrix"]
    mlflow.log_metrics(
        {f"test_{k}": v for k, v in metrics.items() if k != "confusion_matrix"}
        | {f"test_{k}": v for k, v in cm.items()}
    )


def score_test(cfg: config.Config, model, test: Split) -> tuple[dict, np.ndarray, predictions.Predictions]:
    """(metrics, ROC curve rows, every review's prediction) of `model` on `test`, the metrics and
    predictions logged to the active MLflow run."""
    p_positive = batches.predict(model, test.x, cfg.train)
    metrics, roc = score(test.y.astype(int), p_positive)
    scored = predictions.Predictions(p_positive, test.y, test.review_ids)
    log_to_active_run(metrics)
    predictions.log_to_active_run("test", scored)
    return metrics, roc, scored

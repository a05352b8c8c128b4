"""DVC stage `evaluate`: score the trained model on the test split.

Writes DVC metrics (accuracy, loss, ROC AUC, F1, confusion matrix), plots (ROC curve,
confusion matrix) and every test review's prediction (src.predictions), and adds the test
metrics and predictions to the MLflow run that trained the model.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from src import batches, config, predictions, registry, tracking
from src.artifacts import publish, staging_dir
from src.errors import UserError, command
from src.pad import load_split, review_ids
from src.splits import read_json
from src.train import MODEL_FILE, RUN_FILE

METRICS_FILE = "metrics.json"
ROC_FILE = "roc.csv"
CONFUSION_FILE = "confusion.csv"
LABEL_NAMES = np.array(["neg", "pos"])


def score(y_true: np.ndarray, p_positive: np.ndarray) -> tuple[dict, np.ndarray]:
    """Test metrics and the ROC curve (rows of fpr, tpr, threshold)."""
    from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score, roc_curve

    y_pred = (p_positive >= 0.5).astype(int)
    p = np.clip(p_positive, 1e-7, 1 - 1e-7)  # Keras' epsilon, so the loss matches model.evaluate
    loss = float(-np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p)))
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    metrics = {
        "accuracy": float(np.mean(y_pred == y_true)),
        "loss": loss,
        "roc_auc": float(roc_auc_score(y_true, p_positive)),
        "f1": float(f1_score(y_true, y_pred)),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
    }
    fpr, tpr, thresholds = roc_curve(y_true, p_positive)
    return metrics, np.column_stack([fpr, tpr, thresholds])


def _csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def evaluate(cfg: config.Config) -> dict:
    import mlflow

    from src.model import load_model

    model_path = Path(cfg.paths.model) / MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{model_path} not found: run the train stage first (`dvc repro train`)")
    trained = read_json(Path(cfg.paths.model) / RUN_FILE)
    if not {"run_id", "model_uri", "best_val_accuracy"} <= trained.keys():
        raise UserError(f"{Path(cfg.paths.model) / RUN_FILE} is from an older version: re-run training (`dvc repro -f train`)")
    model = load_model(model_path, jit_compile=cfg.train.jit_compile)
    x_test, y_test = load_split(cfg, "test")
    p_positive = batches.predict(model, x_test, cfg.train)
    metrics, roc = score(y_test.astype(int), p_positive)
    test = predictions.Predictions(p_positive, y_test, review_ids(cfg, "test"))

    reports = Path(cfg.paths.reports)
    with tracking.run(cfg, run_id=trained["run_id"]), staging_dir(reports) as staging:
        (staging / ROC_FILE).write_text(_csv(["fpr", "tpr", "threshold"], roc.round(6).tolist()))
        y_pred = (p_positive >= 0.5).astype(int)
        (staging / CONFUSION_FILE).write_text(
            _csv(["actual", "predicted"], zip(LABEL_NAMES[y_test], LABEL_NAMES[y_pred])))
        (staging / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
        predictions.save(staging / predictions.file_name("test"), test)
        predictions.log_to_active_run("test", test)
        cm = metrics["confusion_matrix"]
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items() if k != "confusion_matrix"}
                           | {f"test_{k}": v for k, v in cm.items()})
        mlflow.log_dict(metrics, METRICS_FILE)
        # All reports at once, the metrics file last: it is what `dvc metrics show` reads.
        test_file = Path(predictions.DIRECTORY) / predictions.file_name("test")
        publish({staging / name: reports / name for name in (ROC_FILE, CONFUSION_FILE)}
                | {staging / test_file.name: reports / test_file, staging / METRICS_FILE: reports / METRICS_FILE})
        # Registered last: a failure before this point leaves no registry version behind.
        if cfg.tracking.registered_model:
            version = registry.register(cfg, trained["model_uri"], trained["best_val_accuracy"], metrics["accuracy"])
            print(f"registered {cfg.tracking.registered_model} version {version.version} "
                  f"(alias {registry.CHALLENGER}); `python -m src.registry promote` makes it {registry.CHAMPION}")
    return metrics


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv)
    m = evaluate(cfg)
    print(f"test accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f}, ROC AUC {m['roc_auc']:.4f}, F1 {m['f1']:.4f}")


if __name__ == "__main__":
    main()

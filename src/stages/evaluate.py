"""DVC stage `evaluate`: score the trained model on the test split.

Writes DVC metrics (accuracy, loss, ROC AUC, F1, confusion matrix), plots (ROC curve,
confusion matrix) and every test review's prediction (src.lib.predictions), and adds the test
metrics and predictions to the MLflow run that trained the model.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

from src.lib import config, data, evaluation, model_folder, predictions, registry, tracking
from src.lib.artifacts import publish, staging_dir
from src.lib.errors import UserError, command

METRICS_FILE = "metrics.json"
ROC_FILE = "roc.csv"
CONFUSION_FILE = "confusion.csv"
LABEL_NAMES = np.array(["neg", "pos"])


def _csv(header: list[str], rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def evaluate(cfg: config.Config) -> dict:
    import mlflow

    from src.lib.model import load_model  # imports TensorFlow: after the checks, which need none

    folder = Path(cfg.paths.model)
    model_path = folder / model_folder.MODEL_FILE
    if not model_path.is_file():
        raise UserError(f"{model_path} not found: run the train stage first (`dvc repro train`)")
    trained = model_folder.read_run(folder)
    model = load_model(model_path, jit_compile=cfg.train.jit_compile)
    test_split = data.load(cfg, "test")

    reports = Path(cfg.paths.reports)
    with tracking.run(cfg, run_id=trained["run_id"]), staging_dir(reports) as staging:
        metrics, roc, test = evaluation.score_test(cfg, model, test_split)
        (staging / ROC_FILE).write_text(_csv(["fpr", "tpr", "threshold"], roc.round(6).tolist()))
        y_pred = (test.probability >= evaluation.THRESHOLD).astype(int)
        (staging / CONFUSION_FILE).write_text(
            _csv(["actual", "predicted"], zip(LABEL_NAMES[test_split.y], LABEL_NAMES[y_pred]))
        )
        # The saved model's validation accuracy and epochs beside the test figures: what `dvc exp
        # show` and `dvc metrics diff` should rank experiments by (test is for the one chosen).
        chosen_on = {"val_accuracy": trained["best_val_accuracy"], "epochs": trained.get("epochs")}
        (staging / METRICS_FILE).write_text(json.dumps(chosen_on | metrics, indent=2) + "\n")
        predictions.save(staging / predictions.file_name("test"), test)
        mlflow.log_dict(metrics, METRICS_FILE)
        # The plots DVC draws, as tables the run's artifact view shows.
        mlflow.log_table({"fpr": roc[:, 0], "tpr": roc[:, 1], "threshold": roc[:, 2]}, "plots/roc_curve.json")
        cm = metrics["confusion_matrix"]
        mlflow.log_table(
            {
                "actual": ["neg", "neg", "pos", "pos"],
                "predicted": ["neg", "pos", "neg", "pos"],
                "reviews": [cm["tn"], cm["fp"], cm["fn"], cm["tp"]],
            },
            "plots/confusion_matrix.json",
        )
        # All reports at once, the metrics file last: it is what `dvc metrics show` reads.
        test_file = Path(predictions.DIRECTORY) / predictions.file_name("test")
        publish(
            {staging / name: reports / name for name in (ROC_FILE, CONFUSION_FILE)}
            | {staging / test_file.name: reports / test_file, staging / METRICS_FILE: reports / METRICS_FILE}
        )
        # Registered last: a failure before this point leaves no registry version behind.
        if cfg.tracking.registered_model:
            version = registry.register(cfg, trained["model_uri"], trained["best_val_accuracy"], metrics["accuracy"])
            print(
                f"registered {cfg.tracking.registered_model} version {version.version} "
                f"(alias {registry.CHALLENGER}); `python -m src.registry promote` makes it {registry.CHAMPION}"
            )
    return metrics


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    m = evaluate(cfg)
    print(f"test accuracy {m['accuracy']:.4f}, loss {m['loss']:.4f}, ROC AUC {m['roc_auc']:.4f}, F1 {m['f1']:.4f}")


if __name__ == "__main__":
    main()

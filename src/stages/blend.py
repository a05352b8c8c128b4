"""DVC stage `blend`: the LSTM's and the baseline's probabilities averaged, one weight chosen on validation.

    p = w * p_lstm + (1 - w) * p_baseline,  w from 0 to 1 in steps of about blend.weight_step

w is the one with the highest validation accuracy (ties: the lower validation log loss), read
from the two models' validation predictions only; the test predictions are then blended with
it and scored. A recurrent model and an n-gram model err on different reviews, so the blend
can beat both. Writes reports/blend.json (`accuracy` and the evaluate stage's other metrics,
`weight`, `val_accuracy`), so `dvc metrics show` puts the three side by side, and logs an MLflow
run tagged `blend` with the weight and every review's blended probability, which
`python -m src.compare` takes like any run. The registry serves the LSTM alone: the blend needs
the n-gram model beside it, which is not part of the saved model.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from src.lib import blending, config, evaluation, model_folder, predictions, tracking
from src.lib.artifacts import atomic_write_text
from src.lib.data import source_tags
from src.lib.errors import command

METRICS_FILE = "blend.json"
BASELINE_PREFIX = "baseline-"  # the baseline stage's predictions: reports/predictions/baseline-<split>.npz


def blend(cfg: config.Config) -> dict:
    import mlflow

    folder = Path(cfg.paths.reports) / predictions.DIRECTORY
    lstm = {split: predictions.load(folder / predictions.file_name(split)) for split in ("val", "test")}
    baseline = {
        split: predictions.load(folder / (BASELINE_PREFIX + predictions.file_name(split))) for split in ("val", "test")
    }
    weight = blending.choose_weight(lstm["val"], baseline["val"], cfg.blend.weight_step)
    val, test = (
        blending.blended(lstm["val"], baseline["val"], weight),
        blending.blended(lstm["test"], baseline["test"], weight),
    )
    metrics, _ = evaluation.score(test.label.astype(int), test.probability)
    metrics |= {"weight": weight, "val_accuracy": val.accuracy}
    trained = model_folder.read_run(Path(cfg.paths.model))
    run_cfg = replace(cfg, tracking=replace(cfg.tracking, run_name="blend", registered_model=None))
    tags = source_tags(cfg) | {"blend": f"lstm+{cfg.baseline.method}", "blend.lstm_run": trained["run_id"]}
    with tracking.run(run_cfg, tags=tags):
        tracking.log_params(cfg, ("blend", "baseline"))
        mlflow.log_metrics({"weight": weight, "val_accuracy": val.accuracy})
        evaluation.log_to_active_run(metrics)
        predictions.log_to_active_run("val", val)
        predictions.log_to_active_run("test", test)
    atomic_write_text(Path(cfg.paths.reports) / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    m = blend(cfg)
    print(
        f"blend ({m['weight']:.2f} LSTM + {1 - m['weight']:.2f} {cfg.baseline.method}, weight chosen on "
        f"validation {m['val_accuracy']:.4f}): test accuracy {m['accuracy']:.4f}, ROC AUC {m['roc_auc']:.4f}"
    )


if __name__ == "__main__":
    main()

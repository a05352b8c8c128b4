"""DVC stage `train`: fit the LSTM on the padded training split, validate each epoch.

    python -m src.stages.train --params params.yaml     # as dvc.yaml runs it
    python -m src.stages.train experiment=lecture12 model.units=64   # conf/ with overrides

Fits through `src.lib.tracked.fit` (as the sweep's trials and `src.repeat` do) under one MLflow run,
then writes the model folder (src.lib.model_folder) with the id of that run, which the
evaluate stage reopens to add the test metrics, the per-epoch history (a DVC plot) and the
saved model's validation predictions; the model is also logged as an MLflow model.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from src.lib import config, data, model_folder, predictions, registry, tracked
from src.lib.artifacts import publish, staging_dir
from src.lib.errors import UserError, command
from src.lib.text import VOCAB_FILE, Vocabulary

HISTORY_FILE = "history.csv"  # one row per epoch: the training-curve plot


def _history_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def train(cfg: config.Config) -> dict:
    """Fit, save and publish the model; return the run id, the saved model's validation
    accuracy (`best_val_accuracy`) and the epochs run per member."""
    vocabulary_file = Path(cfg.paths.tokens) / VOCAB_FILE
    if not vocabulary_file.is_file():  # checked first: the model folder needs it after training
        raise UserError(f"{vocabulary_file} not found: run the tokenize stage (`dvc repro tokenize`)")
    vocabulary = Vocabulary.load(vocabulary_file)
    train_split, val_split = data.load(cfg, "train"), data.load(cfg, "val")
    model_dir, reports = Path(cfg.paths.model), Path(cfg.paths.reports)
    with tracked.fit(cfg, train_split, val_split, data.load(cfg, "test")) as (run_id, fitted):
        with staging_dir(model_dir) as staging:
            files = model_folder.write(staging, cfg, fitted.model, vocabulary)
            model_uri = registry.log_model(files)
            predictions.save(staging / predictions.file_name("val"), fitted.val)
            (staging / HISTORY_FILE).write_text(_history_csv(fitted.histories[0]))
            (staging / model_folder.RUN_FILE).write_text(
                json.dumps(
                    {
                        "run_id": run_id,
                        "model_uri": model_uri,
                        "best_val_accuracy": fitted.best_val_accuracy,
                        "epochs": sum(fitted.member_epochs),
                    }
                )
                + "\n"
            )
            # All outputs at once, run.json last (evaluate reads it): a stage killed before
            # this line leaves none of them.
            publish(
                {path: model_dir / path.name for path in files.values()}
                | {
                    staging / HISTORY_FILE: reports / HISTORY_FILE,
                    staging / predictions.file_name("val"): reports
                    / predictions.DIRECTORY
                    / predictions.file_name("val"),
                    staging / model_folder.RUN_FILE: model_dir / model_folder.RUN_FILE,
                }
            )
    return {
        "run_id": run_id,
        "best_val_accuracy": fitted.best_val_accuracy,
        "epochs": sum(fitted.member_epochs),
        "member_epochs": fitted.member_epochs,
    }


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv, usage=__doc__)
    result = train(cfg)
    epochs = result["member_epochs"]
    averaged = (
        f"{len(epochs)} models averaged, epochs {'+'.join(map(str, epochs))}"
        if len(epochs) > 1
        else f"{epochs[0]} epochs"
    )
    print(f"best val_accuracy {result['best_val_accuracy']:.4f} ({averaged}); MLflow run {result['run_id']}")


if __name__ == "__main__":
    main()

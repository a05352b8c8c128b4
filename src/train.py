"""DVC stage `train`: fit the LSTM on the padded training split, validate each epoch.

`python -m src.train [overrides]` composes conf/ (e.g. `experiment=lecture12 model.units=64`);
the DVC stage runs `python -m src.train --params params.yaml`. Both call `train(cfg)`, as the
sweep does. Writes the model (.keras), the per-epoch history (a DVC plot) and the id of the
MLflow run, which the evaluate stage reopens to add the test metrics.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from src import batches, config, predictions, tracking
from src.artifacts import publish, staging_dir
from src.errors import command
from src.pad import load_split, review_ids
from src.splits import read_json

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"          # the MLflow run that trained the model, the logged model's URI, best val accuracy
HISTORY_FILE = "history.csv"   # one row per epoch: the training-curve plot
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def _epoch_logger(metrics: tuple[str, ...] = EPOCH_METRICS, prefix: str = ""):
    import keras
    import mlflow

    class EpochLogger(keras.callbacks.Callback):
        """Per-epoch metrics and wall seconds to MLflow (names prefixed by `prefix`) and to
        `rows` (the history plot)."""

        def __init__(self):
            super().__init__()
            self.rows = []

        def on_epoch_begin(self, epoch, logs=None):
            self._started = self._last_batch_end = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._last_batch_end = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            row = {"epoch": epoch + 1} | {k: float(logs[k]) for k in metrics}
            row["epoch_seconds"] = time.perf_counter() - self._started
            row["train_seconds"] = self._last_batch_end - self._started  # without validation
            self.rows.append(row)
            mlflow.log_metrics({prefix + k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)

    return EpochLogger()


def _history_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def dataset_tags(cfg: config.Config) -> dict[str, str]:
    from src.download import SOURCE_FILE

    source = Path(cfg.paths.raw) / SOURCE_FILE
    return {"dataset.sha256": read_json(source)["sha256"]} if source.is_file() else {}


def _compiled_model(cfg: config.Config, name: str):
    """A new model, seeded by train.seed (Python, NumPy and TensorFlow), compiled for training."""
    import keras

    from src.model import build_model

    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg.model, cfg.data.num_words, name=name)
    optimizer = keras.optimizers.Adam(cfg.train.learning_rate, global_clipnorm=cfg.train.clipnorm)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"],
                  jit_compile=cfg.train.jit_compile)
    return model


def kept_epoch(rows: list[dict], patience: int) -> int:
    """The epoch whose weights training kept: the best one under early stopping, else the last."""
    if patience == 0:
        return len(rows)
    return max(rows, key=lambda row: row["val_accuracy"])["epoch"]  # the first of equals, as Keras


def _fit_member(cfg: config.Config, train_split, val_split, *, callbacks: list, prefix: str, name: str,
                verbose: int):
    """One model trained with its own seed and early stopping (then refitted if train.refit):
    the model, its per-epoch rows and its validation probabilities before any refit."""
    import keras
    import mlflow
    import numpy as np

    (x_train, y_train), (x_val, y_val) = train_split, val_split
    logger = _epoch_logger(prefix=prefix)
    callbacks = [logger, *callbacks]  # the logger first: a pruning callback sees the epoch logged
    if cfg.train.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=cfg.train.patience, restore_best_weights=True, verbose=min(verbose, 1)))
    model = _compiled_model(cfg, name)
    model.fit(batches.training_dataset(x_train, y_train, cfg.train),
              validation_data=batches.prediction_dataset(x_val, y_val, cfg.train),
              epochs=cfg.train.epochs, callbacks=callbacks, verbose=verbose,
              shuffle=False)  # the dataset shuffles, seeded by train.seed
    p_val = batches.predict(model, x_val, cfg.train)
    if cfg.train.refit:
        # Validation has chosen the epoch count; the final model learns from the validation
        # reviews too (data.val_fraction more data), from the same seed, for that many epochs.
        refit_epochs = kept_epoch(logger.rows, cfg.train.patience)
        refit_logger = _epoch_logger(("loss", "accuracy"), prefix=prefix + "refit_")
        model = _compiled_model(cfg, name)
        model.fit(batches.training_dataset(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]),
                                           cfg.train),
                  epochs=refit_epochs, callbacks=[refit_logger], verbose=verbose, shuffle=False)
        mlflow.log_metric(prefix + "refit_epochs", refit_epochs)
    return model, logger.rows, p_val


def train(cfg: config.Config, *, train_fraction: float = 1.0, callbacks: list = (),
          parent_run_id: str | None = None, tags: dict[str, str] | None = None, save: bool = True,
          verbose: int = 2) -> dict:
    """Train under an MLflow run; return the run id, the saved model's validation accuracy
    (`best_val_accuracy`: the kept epoch's, see kept_epoch) and the epochs run.

    train.ensemble models are trained, member k with seed train.seed + k, and saved as one
    model averaging their probabilities. Member 0 logs the plain per-epoch metric names (its
    curves compare with any single-model run) and is the history plot; member k > 0 logs under
    `member<k>_`. best_val_accuracy is the averaged model's, whose validation predictions are an
    artifact of the run (`predictions/val.npz`) and, with `save`, a report.

    The DVC stage and `python -m src.train` use the defaults. A sweep trial trains on a seeded,
    stratified `train_fraction` of the training reviews, adds its pruning callback, nests its
    run under the study's parent run, keeps no model files (`save=False`) and prints no
    per-epoch lines (`verbose=0`: the sweep prints a line per trial).
    """
    import mlflow
    import numpy as np

    from src import registry
    from src.model import average_models
    from src.predict import write_companions
    from src.tokenize import stratified_split

    x_train, y_train = load_split(cfg, "train")
    x_val, y_val = load_split(cfg, "val")
    if train_fraction < 1:
        _, keep = stratified_split(y_train, train_fraction, cfg.train.seed)
        x_train, y_train = x_train[keep], y_train[keep]

    model_dir = Path(cfg.paths.model)
    with tracking.run(cfg, parent_run_id=parent_run_id, tags=dataset_tags(cfg) | (tags or {})) as active:
        subset = {"sweep.train_fraction": str(train_fraction)} if train_fraction < 1 else {}
        mlflow.log_params(tracking.flat_params(cfg) | subset)
        members, histories, val_probabilities = [], [], []
        for k in range(cfg.train.ensemble):
            # Seeded inside the run: MLflow draws a run's random name from Python's `random`,
            # so seeding first would give every run of one seed the same name.
            member_cfg = replace(cfg, train=replace(cfg.train, seed=cfg.train.seed + k))
            model, rows, p_val = _fit_member(member_cfg, (x_train, y_train), (x_val, y_val), callbacks=list(callbacks),
                                             prefix=f"member{k}_" if k else "", verbose=verbose,
                                             name=f"member_{k}" if cfg.train.ensemble > 1 else "imdb_lstm")
            members.append(model)
            histories.append(rows)
            val_probabilities.append(p_val)
            if cfg.train.ensemble > 1:
                mlflow.log_metric("member_val_accuracy", float(((p_val >= 0.5) == y_val).mean()), step=k)
        # The saved model's (the members' average; each member's best epoch under early
        # stopping, its last without), before any refit: the refit model has seen these reviews.
        val = predictions.Predictions(np.mean(val_probabilities, axis=0), y_val, review_ids(cfg, "val"))
        best = val.accuracy
        epochs = [len(rows) for rows in histories]
        mlflow.log_metrics({"best_val_accuracy": best, "epochs_run": sum(epochs)})
        predictions.log_to_active_run("val", val)
        if save:
            with staging_dir(model_dir) as staging:
                predictions.save(staging / predictions.file_name("val"), val)
                average_models(members).save(staging / MODEL_FILE)
                files = write_companions(cfg, staging)  # the model, its vocabulary and padding settings
                model_uri = registry.log_model(files)
                (staging / HISTORY_FILE).write_text(_history_csv(histories[0]))
                (staging / RUN_FILE).write_text(json.dumps(
                    {"run_id": active.info.run_id, "model_uri": model_uri, "best_val_accuracy": best}) + "\n")
                reports = Path(cfg.paths.reports)
                # All outputs at once, run.json last (evaluate reads it): a stage killed before
                # this line leaves none of them.
                publish({path: model_dir / path.name for path in files.values()}
                        | {staging / HISTORY_FILE: reports / HISTORY_FILE,
                           staging / predictions.file_name("val"):
                               reports / predictions.DIRECTORY / predictions.file_name("val"),
                           staging / RUN_FILE: model_dir / RUN_FILE})
    return {"run_id": active.info.run_id, "best_val_accuracy": best, "epochs": sum(epochs), "member_epochs": epochs}


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv)
    result = train(cfg)
    epochs = result["member_epochs"]
    averaged = f"{len(epochs)} models averaged, epochs {'+'.join(map(str, epochs))}" if len(epochs) > 1 else f"{epochs[0]} epochs"
    print(f"best val_accuracy {result['best_val_accuracy']:.4f} ({averaged}); "
          f"MLflow run {result['run_id']}")


if __name__ == "__main__":
    main()

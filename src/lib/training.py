"""Fitting the classifier: one function, `fit`, for the train stage, the sweep and repeats.

`fit` trains train.ensemble models (member k seeded train.seed + k; one model is an ensemble
of one) on the given training split, validating each epoch, and returns the model to save (the
members' average), each member's per-epoch rows and the saved model's validation predictions.
With train.teacher, a teacher is trained first and every member learns from its probabilities
too (src.lib.distillation). Per-epoch metrics go to the active MLflow run; opening that run, saving and publishing are the
caller's.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from src.lib import batches, config, data, distillation, embeddings, predictions
from src.lib.data import Split
from src.lib.errors import UserError
from src.lib.predictions import Predictions

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
ADVERSARIAL_METRIC = "adversarial_loss"  # train.adversarial: the added term (at: loss on the moved reviews; vat: KL), beside `loss` (clean)


@dataclass
class Fitted:
    model: object  # the model to save: the members' average (one member: itself)
    histories: list[list[dict]]  # per member, one row per epoch (member 0's is the history plot)
    val: Predictions  # the saved model's validation predictions, before any refit

    @property
    def best_val_accuracy(self) -> float:
        """The saved model's: each member's best epoch under early stopping, its last without."""
        return self.val.accuracy

    @property
    def member_epochs(self) -> list[int]:
        return [len(rows) for rows in self.histories]


def _epoch_logger(metrics: tuple[str, ...] = EPOCH_METRICS, prefix: str = ""):
    import keras
    import mlflow

    class EpochLogger(keras.callbacks.Callback):
        """Per-epoch metrics and wall seconds to MLflow (names prefixed by `prefix`) and to
        `rows` (the history plot). No per-batch hook: one would make Keras fetch every step's
        logs from the device (no asynchronous dispatch); the training part of an epoch ends
        where its validation begins."""

        def __init__(self):
            super().__init__()
            self.rows = []

        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()
            self._validation_started = None

        def on_test_begin(self, logs=None):
            self._validation_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            ended = time.perf_counter()
            row = {"epoch": epoch + 1} | {k: float(logs[k]) for k in (*metrics, ADVERSARIAL_METRIC) if k in logs}
            row["epoch_seconds"] = ended - self._started
            row["train_seconds"] = (self._validation_started or ended) - self._started  # without validation
            self.rows.append(row)
            mlflow.log_metrics({prefix + k: v for k, v in row.items() if k != "epoch"}, step=epoch + 1)

    return EpochLogger()


def _compiled_model(
    cfg: config.Config,
    name: str,
    steps: int,
    start: embeddings.Pretrained | None = None,
    initial: list[np.ndarray] | None = None,
):
    """(the model, what fits it): a new model, seeded by train.seed (Python, NumPy and
    TensorFlow), its Embedding (and with a language model, its LSTM) started from the pretrain
    stage's weights when given, or all its weights from `initial` (a teacher's), compiled to train
    for `steps` batches in all; fitted as it is, or with train.adversarial (at, vat) through an
    AdversarialTrainer that holds it."""
    import keras

    from src.lib.model import build_model  # imports Keras: deferred with it

    compute = keras.config.dtype_policy().compute_dtype
    if compute != "float32":
        # The adversarial step's norms have floors (1e-12, 1e-7) that vanish in float16, and its
        # gradients skip a loss-scale optimizer's scaling: a silent change of what is trained.
        raise UserError(
            f"Keras computes in {compute} here (a mixed-precision policy or floatx in keras.json): "
            f"this pipeline trains in float32; unset the policy"
        )
    if cfg.train.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(cfg.train.seed)
    model = build_model(cfg.model, cfg.data.num_words, name=name)
    if start is not None:
        model.get_layer("embedding").set_weights([start.vectors])
        if start.lstm is not None:
            model.get_layer("bidirectional_lstm" if cfg.model.bidirectional else "lstm").set_weights(start.lstm)
    if initial is not None:
        model.set_weights(initial)
    learning_rate = cfg.train.learning_rate
    if cfg.train.lr_schedule == "cosine":
        # Large steps early, small ones as the epoch cap nears: later epochs refine instead of
        # oscillating around the best validation point.
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
    optimizer = keras.optimizers.Adam(learning_rate, global_clipnorm=cfg.train.clipnorm)
    trainee = model
    if cfg.train.adversarial != "none":
        from src.lib.adversarial import AdversarialTrainer  # imports TensorFlow: deferred with it

        trainee = AdversarialTrainer(model, cfg.train)
    # A student's targets are probabilities: its accuracy is agreement with them rounded.
    accuracy = (
        keras.metrics.MeanMetricWrapper(_agreement, name="accuracy") if cfg.train.teacher != "none" else "accuracy"
    )
    trainee.compile(
        optimizer=optimizer, loss="binary_crossentropy", metrics=[accuracy], jit_compile=cfg.train.jit_compile
    )
    return model, trainee


def _agreement(y_true, y_pred):
    import keras

    return keras.metrics.binary_accuracy(keras.ops.round(y_true), y_pred)


def kept_epoch(rows: list[dict], patience: int) -> int:
    """The epoch whose weights training kept: the best one under early stopping, else the last."""
    if patience == 0:
        return len(rows)
    return max(rows, key=lambda row: row["val_accuracy"])["epoch"]  # the first of equals, as Keras


def _fit_member(
    cfg: config.Config,
    train: Split,
    val: Split,
    *,
    callbacks: list,
    prefix: str,
    name: str,
    verbose: int,
    start: embeddings.Pretrained | None,
    unlabeled: np.ndarray | None,
    initial: list[np.ndarray] | None = None,
):
    """One model trained with its own seed and early stopping (then refitted if train.refit),
    from `initial` weights when given: the model, its per-epoch rows and its validation
    probabilities before any refit."""
    import keras
    import mlflow

    logger = _epoch_logger(prefix=prefix)
    callbacks = [logger, *callbacks]  # the logger first: a pruning callback sees the epoch logged
    if cfg.train.patience > 0:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy",
                mode="max",
                patience=cfg.train.patience,
                restore_best_weights=True,
                verbose=min(verbose, 1),
            )
        )
    steps_per_epoch = math.ceil(len(train.x) / cfg.train.batch_size)
    model, trainee = _compiled_model(cfg, name, steps_per_epoch * cfg.train.epochs, start, initial)
    trainee.fit(
        batches.training_dataset(train.x, train.y, cfg.train, unlabeled),
        validation_data=batches.prediction_dataset(val.x, val.y, cfg.train),
        epochs=cfg.train.epochs,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
    )  # the dataset shuffles, seeded by train.seed
    p_val = batches.predict(model, val.x, cfg.train)
    if cfg.train.refit:
        # Validation has chosen the epoch count; the final model learns from the validation
        # reviews too (data.val_fraction more data), from the same seed and starting weights,
        # for that many epochs.
        refit_epochs = kept_epoch(logger.rows, cfg.train.patience)
        refit_logger = _epoch_logger(("loss", "accuracy"), prefix=prefix + "refit_")
        refit_steps = math.ceil((len(train.x) + len(val.x)) / cfg.train.batch_size) * refit_epochs
        model, trainee = _compiled_model(cfg, name, refit_steps, start, initial)
        trainee.fit(
            batches.training_dataset(
                np.concatenate([train.x, val.x]), np.concatenate([train.y, val.y]), cfg.train, unlabeled
            ),
            epochs=refit_epochs,
            callbacks=[refit_logger],
            verbose=verbose,
            shuffle=False,
        )
        mlflow.log_metric(prefix + "refit_epochs", refit_epochs)
    return model, logger.rows, p_val


def fit(cfg: config.Config, train: Split, val: Split, *, callbacks: list = (), verbose: int = 2) -> Fitted:
    """train.ensemble models, member k with seed train.seed + k, averaged into the model to save.
    Member 0 logs the plain per-epoch metric names (its curves compare with any single-model
    run); member k > 0 logs under `member<k>_`. Call inside an MLflow run."""
    import mlflow

    from src.lib.model import average_models  # imports Keras: deferred with it

    start = embeddings.load(cfg)  # None: the model starts random
    unlabeled = None
    if cfg.train.adversarial == "vat":
        unlabeled = data.load(cfg, data.UNLABELED).x
        if len(unlabeled) == 0:
            raise UserError(
                "train.adversarial=vat needs unlabeled reviews (the archive's train/unsup), and the "
                "tokenize stage found none: use the official archive, or train.adversarial=at"
            )
    teacher_weights = None  # with train.teacher_start, where each member starts
    if cfg.train.teacher != "none":
        train, teacher_weights = _taught(cfg, train, val, start=start, verbose=verbose)
    members, histories, probabilities = [], [], []
    for k in range(cfg.train.ensemble):
        member_cfg = replace(cfg, train=replace(cfg.train, seed=cfg.train.seed + k))
        model, rows, p_val = _fit_member(
            member_cfg,
            train,
            val,
            callbacks=list(callbacks),
            prefix=f"member{k}_" if k else "",
            verbose=verbose,
            start=start,
            name=f"member_{k}" if cfg.train.ensemble > 1 else "imdb_lstm",
            unlabeled=unlabeled,
            initial=teacher_weights,
        )
        members.append(model)
        histories.append(rows)
        probabilities.append(p_val)
        if cfg.train.ensemble > 1:
            mlflow.log_metric("member_val_accuracy", float(((p_val >= 0.5) == val.y).mean()), step=k)
    return Fitted(
        average_models(members), histories, Predictions(np.mean(probabilities, axis=0), val.y, val.review_ids)
    )


def _taught(
    cfg: config.Config, train: Split, val: Split, *, start: embeddings.Pretrained | None, verbose: int
) -> tuple[Split, list[np.ndarray] | None]:
    """The student's training split: the labeled training reviews and the transfer set with the
    teacher's targets (src.lib.distillation); and with train.teacher_start, the teacher LSTM's
    weights. The teacher's LSTMs log their epochs under `teacher<k>_`; its figures and seconds
    go to the active run."""
    import mlflow

    started = time.perf_counter()
    t = cfg.train
    reviews = distillation.reviews(cfg, train, val)
    fold = distillation.folds(train.y, t.teacher_folds, t.seed, reviews.train_movies)
    teacher_cfg = replace(cfg, train=replace(t, teacher="none", refit=False, ensemble=1, epochs=t.teacher_epochs))
    teacher_weights = []

    def fit_predict(k: int, rows: np.ndarray, held: np.ndarray):
        model, _, p_val = _fit_member(
            teacher_cfg,
            train.take(rows),
            val,
            callbacks=[],
            prefix=f"teacher{k}_",
            name=f"teacher_{k}",
            verbose=verbose,
            start=start,
            unlabeled=None,
        )
        if t.teacher_start:  # one fold: the one teacher LSTM
            teacher_weights.append(model.get_weights())
        return _predict(model, train.x[held], t), p_val, _predict(model, reviews.transfer.x, t)

    lstm = distillation.out_of_fold(fold, t.teacher_folds, fit_predict)
    ngram = distillation.ngram_view(cfg.baseline, reviews, train.y, fold, t.teacher_folds)
    student, summary = distillation.student_split(cfg, train, val, reviews.transfer, lstm, ngram)
    mlflow.log_metrics(summary | {"teacher_seconds": round(time.perf_counter() - started, 1)})
    return student, (teacher_weights[0] if teacher_weights else None)


def _predict(model, x: np.ndarray, cfg: config.TrainConfig) -> np.ndarray:
    return batches.predict(model, x, cfg) if len(x) else np.empty(0, dtype=np.float32)


def log_fitted(fitted: Fitted) -> None:
    """The saved model's validation accuracy, the epochs run and its validation predictions, on
    the active MLflow run: what every caller of `fit` records the same way."""
    import mlflow

    mlflow.log_metrics({"best_val_accuracy": fitted.best_val_accuracy, "epochs_run": sum(fitted.member_epochs)})
    predictions.log_to_active_run("val", fitted.val)

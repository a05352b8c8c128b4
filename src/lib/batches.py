"""Padded arrays -> tf.data batches, for training and for prediction.

With `train.bucket_by_length`, reviews of similar length share a batch and each batch is cut
to its longest review (rounded up to `train.length_step`), so the LSTM does not step through
columns that are padding in every row of the batch. The model masks padding ids, so a review's
score is the same in any batch. Most reviews are far shorter than maxlen, so most of the
steps a full-width batch would take are skipped (`python benchmarks/train_speed.py` measures it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from src.lib.config import TrainConfig
from src.lib.text import OOV_ID, PAD_ID

CHUNK_BATCHES = 50  # training: reviews are sorted by length within chunks of this many batches


def review_lengths(x: np.ndarray) -> np.ndarray:
    return np.count_nonzero(x, axis=1)  # id 0 is padding only


def batch_length(lengths: np.ndarray, step: int, maxlen: int) -> int:
    return min(maxlen, max(step, math.ceil(int(lengths.max(initial=0)) / step) * step))


def training_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches of row indices: shuffled, then sorted by length within chunks so a
    batch holds similar lengths, then the batches themselves shuffled."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * CHUNK_BATCHES
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def training_dataset(x: np.ndarray, y: np.ndarray, cfg: TrainConfig, unlabeled: np.ndarray | None = None):
    """Shuffled (x, y) batches, reshuffled every epoch, deterministic for a given train.seed.
    With `unlabeled` (padded reviews without labels), each batch's x ends with
    train.vat_unlabeled_ratio times as many of them as it has labeled rows (y labels the first
    len(y) rows only), drawn from the batch's length bucket (see `unlabeled_rows`)."""
    rng = np.random.default_rng(cfg.seed)
    lengths = review_lengths(x)
    y = y.astype("float32")
    if unlabeled is not None:
        unlabeled_lengths = review_lengths(unlabeled)
        by_length = np.argsort(unlabeled_lengths, kind="stable")
        sorted_lengths = unlabeled_lengths[by_length]

    def batch_rows():
        if cfg.bucket_by_length:
            for rows in training_order(lengths, cfg.batch_size, rng):
                yield rows, batch_length(lengths[rows], cfg.length_step, x.shape[1])
        else:
            order = rng.permutation(len(x))
            for i in range(0, len(order), cfg.batch_size):
                yield order[i : i + cfg.batch_size], x.shape[1]

    def epoch():
        for rows, width in batch_rows():
            xb = x[rows, :width]
            if unlabeled is not None:
                extra = unlabeled_rows(
                    by_length, sorted_lengths, width, cfg.length_step, round(len(rows) * cfg.vat_unlabeled_ratio), rng
                )
                xb = np.concatenate([xb, unlabeled[extra, :width]])
            if cfg.word_dropout:
                xb = drop_words(xb, cfg.word_dropout, rng)
            yield xb, y[rows]

    return _dataset(epoch, n_batches=math.ceil(len(x) / cfg.batch_size))


def unlabeled_rows(
    by_length: np.ndarray, sorted_lengths: np.ndarray, width: int, step: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    """`count` rows drawn at random among the unlabeled reviews of the labeled batch's length
    bucket (longer than width - step, at most `width`), so they add no steps and, over an epoch,
    follow the labeled reviews' lengths; when the bucket holds fewer than `count`, among the
    `count` nearest shorter (or, if fewer are shorter, the shortest, cut to `width`).
    by_length orders the rows by length; sorted_lengths are their lengths."""
    high = int(np.searchsorted(sorted_lengths, width, side="right"))
    low = int(np.searchsorted(sorted_lengths, width - step, side="right"))
    if high - low < count:
        low = max(0, high - count)
        high = max(high, min(low + count, len(by_length)))
    return by_length[rng.integers(low, high, size=count)]


def drop_words(x: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Each word replaced by the unknown-word id with probability `rate` (padding untouched):
    the model cannot lean on any single word, such as a name that marks one movie's reviews."""
    dropped = (rng.random(x.shape) < rate) & (x != PAD_ID)
    return np.where(dropped, OOV_ID, x).astype(x.dtype)


@dataclass(frozen=True)
class Batching:
    """What prediction reads of train.*: the model folder stores these (src.lib.model_folder)."""

    eval_batch_size: int
    bucket_by_length: bool
    length_step: int

    @classmethod
    def of(cls, train: TrainConfig) -> Batching:
        return cls(**{f.name: getattr(train, f.name) for f in fields(cls)})


def _prediction_order(x: np.ndarray, cfg: TrainConfig | Batching) -> np.ndarray:
    return np.argsort(review_lengths(x), kind="stable") if cfg.bucket_by_length else np.arange(len(x))


def prediction_dataset(x: np.ndarray, y: np.ndarray | None, cfg: TrainConfig | Batching):
    """Batches of `train.eval_batch_size` in length order (see `predict` for the original order)."""
    order = _prediction_order(x, cfg)
    lengths = review_lengths(x)
    labels = np.zeros(len(x), "float32") if y is None else y.astype("float32")

    def once():
        for i in range(0, len(order), cfg.eval_batch_size):
            rows = order[i : i + cfg.eval_batch_size]
            width = batch_length(lengths[rows], cfg.length_step, x.shape[1]) if cfg.bucket_by_length else x.shape[1]
            yield x[rows, :width], labels[rows]

    return _dataset(once, n_batches=math.ceil(len(x) / cfg.eval_batch_size))


def predict(model, x: np.ndarray, cfg: TrainConfig | Batching) -> np.ndarray:
    """Positive-class probability per row of x, in x's order."""
    scores = model.predict(prediction_dataset(x, None, cfg), verbose=0).ravel()
    p_positive = np.empty(len(x), dtype="float32")
    p_positive[_prediction_order(x, cfg)] = scores
    return p_positive


def _dataset(generator, n_batches: int):
    import tensorflow as tf

    signature = (tf.TensorSpec(shape=(None, None), dtype=tf.int32), tf.TensorSpec(shape=(None,), dtype=tf.float32))
    dataset = tf.data.Dataset.from_generator(generator, output_signature=signature)
    # A known length lets Keras show progress and end epochs without "ran out of data" warnings.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(n_batches))
    return dataset.prefetch(2)  # the next batch is gathered while the current one trains

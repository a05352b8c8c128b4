"""An LSTM language model on reviews, whose weights start the classifier (Dai & Le 2015).

The language model is the classifier's own Embedding and (bidirectional) LSTM with a softmax
over words on top: the forward LSTM's state after word t predicts word t+1, the backward LSTM's
state at word t predicts word t-1. Trained on reviews alone, its Embedding and LSTM weights have
the classifier's shapes and are copied into it (src.lib.training); the softmax is dropped.

Reviews are cut into windows of pretrain.lm_window words and batched by length as the
classifier's training batches are (src.lib.batches). The softmax covers the
pretrain.lm_output_words most frequent ids; rarer target words count as the unknown-word id,
which keeps the softmax, most of the cost per word, small.
"""

from __future__ import annotations

import math
import time

import numpy as np

from src.lib import batches
from src.lib.config import Config
from src.lib.text import OOV_ID, PAD_ID, pad

BATCH_SIZE = 64  # windows per gradient step
LEARNING_RATE = 1e-3  # Adam's step, as the classifier's default
CLIPNORM = 1.0  # cap on the global gradient norm, as the classifier's default
LENGTH_STEP = 16  # batch lengths rounded up to a multiple of this, as train.length_step


def windows(sequences: list[np.ndarray], window: int) -> np.ndarray:
    """Every review cut into consecutive pieces of at most `window` ids (pieces of one id, with
    nothing to predict, dropped), padded after: one row per piece."""
    pieces = [seq[start : start + window] for seq in sequences for start in range(0, len(seq), window)]
    return pad([p for p in pieces if len(p) >= 2], maxlen=window, padding="post", truncating="post")


def targets(x: np.ndarray, directions: int, output_words: int) -> tuple[np.ndarray, np.ndarray]:
    """(next/previous word ids, weights), each (rows, steps, directions): direction 0 is the
    next word, direction 1 the previous; a weight is 0 where the input or the target is padding."""
    shifted = [np.zeros_like(x)]
    shifted[0][:, :-1] = x[:, 1:]
    if directions == 2:
        shifted.append(np.zeros_like(x))
        shifted[1][:, 1:] = x[:, :-1]
    y = np.stack(shifted, axis=2)
    weights = ((y != PAD_ID) & (x[:, :, None] != PAD_ID)).astype("float32")
    return np.where(y >= output_words, np.int32(OOV_ID), y), weights


def _dataset(x: np.ndarray, directions: int, output_words: int, seed: int):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    lengths = batches.review_lengths(x)

    def epoch():
        for rows in batches.training_order(lengths, BATCH_SIZE, rng):
            xb = x[rows, : batches.batch_length(lengths[rows], LENGTH_STEP, x.shape[1])]
            yield (xb, *targets(xb, directions, output_words))

    signature = (
        tf.TensorSpec((None, None), tf.int32),
        tf.TensorSpec((None, None, directions), tf.int32),
        tf.TensorSpec((None, None, directions), tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(epoch, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(math.ceil(len(x) / BATCH_SIZE))).prefetch(2)


def build(cfg: Config, output_words: int):
    """The classifier's Embedding and LSTM (same layer names and shapes) under a word softmax."""
    import keras
    from keras import layers, ops

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    vectors = layers.Embedding(cfg.data.num_words, cfg.model.embedding_dim, mask_zero=True, name="embedding")(tokens)
    lstm = layers.LSTM(cfg.model.units, return_sequences=True, name="lstm")
    if cfg.model.bidirectional:
        states = layers.Bidirectional(lstm, merge_mode=None, name="bidirectional_lstm")(vectors)
    else:
        states = [lstm(vectors)]
    word = layers.Dense(output_words, name="word")  # one softmax for both directions
    logits = ops.stack([word(s) for s in states], axis=2)
    return keras.Model(tokens, logits, name="language_model")


def pretrain(cfg: Config, sequences: list[np.ndarray], log=print) -> tuple[list[np.ndarray], np.ndarray, dict]:
    """Train the language model on `sequences` (token ids below data.num_words) for
    pretrain.lm_epochs; return (the LSTM layer's weights, the Embedding's, per-epoch figures)."""
    import keras

    p = cfg.pretrain
    keras.utils.set_random_seed(p.seed)
    x = windows(sequences, p.lm_window)
    output_words = min(p.lm_output_words, cfg.data.num_words)
    directions = 2 if cfg.model.bidirectional else 1
    model = build(cfg, output_words)
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE, global_clipnorm=CLIPNORM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = {"loss": [], "epoch_seconds": []}

    class EpochLine(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self._started
            history["loss"].append(float(logs["loss"]))
            history["epoch_seconds"].append(seconds)
            log(f"language model epoch {epoch + 1}/{p.lm_epochs}: loss {logs['loss']:.4f} in {seconds:.0f} s")

    model.fit(
        _dataset(x, directions, output_words, p.seed),
        epochs=p.lm_epochs,
        callbacks=[EpochLine()],
        verbose=0,
        shuffle=False,
    )  # the dataset shuffles, seeded
    lstm_name = "bidirectional_lstm" if cfg.model.bidirectional else "lstm"
    return (
        model.get_layer(lstm_name).get_weights(),
        model.get_layer("embedding").get_weights()[0],
        {"windows": len(x), "output_words": output_words} | history,
    )

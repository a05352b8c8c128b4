"""The classifier: Embedding -> LSTM (optionally bidirectional) -> Dense(1, sigmoid)."""

from __future__ import annotations

import keras
from keras import layers

from src.config import ModelConfig


def build_model(cfg: ModelConfig, num_words: int) -> keras.Model:
    # Sequence length is left open so one model serves any maxlen (and prediction on raw text).
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # mask_zero: the LSTM skips padding ids, so a review's prediction does not depend on how
    # much padding its batch carries (what makes length-bucketed batches exact).
    vectors = layers.Embedding(num_words, cfg.embedding_dim, mask_zero=cfg.mask_padding,
                               name="embedding")(tokens)
    # Input dropout only: recurrent_dropout would take the layer off the cuDNN path on a GPU.
    lstm = layers.LSTM(cfg.units, dropout=cfg.dropout, name="lstm")
    if cfg.bidirectional:
        lstm = layers.Bidirectional(lstm, name="bidirectional_lstm")
    positive = layers.Dense(1, activation="sigmoid", name="positive")(lstm(vectors))
    return keras.Model(tokens, positive, name="imdb_lstm")


def load_model(path, jit_compile: bool = False) -> keras.Model:
    """A saved .keras model, ready to predict. safe_mode refuses files that carry code (Lambda layers)."""
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    model.compile(jit_compile=jit_compile)  # no optimizer or loss: prediction only
    return model

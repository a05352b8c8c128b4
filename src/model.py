"""The classifier: Embedding -> LSTM (optionally bidirectional) -> Dense(1, sigmoid)."""

from __future__ import annotations

import keras
from keras import layers

from src.config import ModelConfig


def build_model(cfg: ModelConfig, num_words: int) -> keras.Model:
    # Sequence length is left open so one model serves any maxlen (and prediction on raw text).
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    vectors = layers.Embedding(num_words, cfg.embedding_dim, name="embedding")(tokens)
    # Input dropout only: recurrent_dropout would take the layer off the cuDNN path on a GPU.
    lstm = layers.LSTM(cfg.units, dropout=cfg.dropout, name="lstm")
    if cfg.bidirectional:
        lstm = layers.Bidirectional(lstm, name="bidirectional_lstm")
    positive = layers.Dense(1, activation="sigmoid", name="positive")(lstm(vectors))
    return keras.Model(tokens, positive, name="imdb_lstm")

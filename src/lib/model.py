"""The classifier: Embedding -> LSTM (optionally bidirectional, optionally mean- or max-pooled) -> Dense(1, sigmoid)."""

from __future__ import annotations

import keras
from keras import layers, ops

from src.lib.config import ModelConfig


@keras.saving.register_keras_serializable(package="imdb_lstm")  # so safe_mode loading knows it
class MaskedMean(layers.Layer):
    """The mean over a review's words (unmasked steps). Keras' GlobalAveragePooling1D divides
    by the word count, which is 0 for an empty review (a valid input): NaN. Here that is 0."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.mean(inputs, axis=1)
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        return ops.sum(inputs * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_mask(self, inputs, mask=None):
        return None  # one vector per review: nothing left to mask

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="imdb_lstm")
class MaskedMax(MaskedMean):
    """The largest value of each feature over a review's words: the strongest signal anywhere in
    the review, however long. Padding steps never win; an empty review gives 0, not -inf."""

    def call(self, inputs, mask=None):
        if mask is None:
            return ops.max(inputs, axis=1)
        present = ops.expand_dims(mask, -1)
        largest = ops.max(ops.where(present, inputs, float("-inf")), axis=1)
        return ops.where(ops.any(present, axis=1), largest, 0.0)


def build_model(cfg: ModelConfig, num_words: int, name: str = "imdb_lstm") -> keras.Model:
    # Sequence length is left open so one model serves any maxlen (and prediction on raw text).
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # mask_zero: the LSTM skips padding ids, so a review's prediction does not depend on how
    # much padding its batch carries (what makes length-bucketed batches exact).
    vectors = layers.Embedding(num_words, cfg.embedding_dim, mask_zero=cfg.mask_padding, name="embedding")(tokens)
    # Input dropout only: recurrent_dropout would take the layer off the cuDNN path on a GPU.
    # pooling=mean|max: the LSTM's state after every word, averaged over the review's words or
    # its largest value per feature (the mask keeps padding out), instead of only its state
    # after the last word.
    lstm = layers.LSTM(cfg.units, dropout=cfg.dropout, return_sequences=cfg.pooling != "last", name="lstm")
    if cfg.bidirectional:
        lstm = layers.Bidirectional(lstm, name="bidirectional_lstm")
    summary = lstm(vectors)
    if cfg.pooling == "mean":
        summary = MaskedMean(name="mean_over_words")(summary)
    elif cfg.pooling == "max":
        summary = MaskedMax(name="max_over_words")(summary)
    positive = layers.Dense(1, activation="sigmoid", name="positive")(summary)
    return keras.Model(tokens, positive, name=name)


def average_models(members: list[keras.Model]) -> keras.Model:
    """One model whose output is the mean of the members' probabilities: one .keras file, so
    evaluation, prediction and serving load an ensemble as they load a single model."""
    if len(members) == 1:
        return members[0]
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    positive = layers.Average(name="positive")([member(tokens) for member in members])
    return keras.Model(tokens, positive, name="imdb_lstm_ensemble")


def load_model(path, jit_compile: bool = False) -> keras.Model:
    """A saved .keras model, ready to predict. safe_mode refuses files that carry code (Lambda layers)."""
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    model.compile(jit_compile=jit_compile)  # no optimizer or loss: prediction only
    return model


def classify_vectors(model: keras.Model, vectors, mask, training: bool = False):
    """The model's output computed from its Embedding's output instead of from token ids: the
    layers after the Embedding (build_model makes a chain of them) applied in order, the
    Embedding's padding mask passed along. Adversarial training perturbs `vectors`
    (src.lib.adversarial); with them unperturbed this is model(tokens)."""
    after = model.layers[model.layers.index(model.get_layer("embedding")) + 1 :]
    x = vectors
    for layer in after:
        masked = {} if mask is None else {"mask": mask}  # a summary of the review (pooling, Dense) has none
        x, mask = layer(x, training=training, **masked), layer.compute_mask(x, mask)
    return x

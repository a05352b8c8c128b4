"""The classifier: Embedding -> LSTM (optionally bidirectional) -> Dense(1, sigmoid)."""

from __future__ import annotations

import keras
from keras import layers, ops
from keras.src.backend import rnn as rnn_loop  # the time loop keras.layers.RNN itself runs (no public alias)

from src.config import ModelConfig


@keras.saving.register_keras_serializable(package="imdb_lstm")
class HoistedLSTM(layers.LSTM):
    """keras.layers.LSTM, with the input projection hoisted out of the time loop on a CPU.

    Same weights, same gate equations, same input dropout (one mask per review, as Keras'
    cuDNN path applies it). Keras' CPU loop multiplies each timestep's input by the kernel
    inside the recurrence; here all timesteps go through one large matrix multiply first and
    the loop only does the recurrent product. On a GPU it is the parent's cuDNN path unchanged.
    """

    def inner_loop(self, sequences, initial_state, mask, training=False):
        import tensorflow as tf

        if tf.config.list_logical_devices("GPU") or self.recurrent_dropout or self.unroll:
            return super().inner_loop(sequences, initial_state, mask, training=training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        cell = self.cell
        if training and cell.dropout:
            dropout_mask = cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dropout_mask, axis=1)
        projected = ops.matmul(sequences, cell.kernel) + cell.bias  # (batch, time, 4 * units)

        def step(z_inputs, states):
            h_prev, c_prev = states
            z = z_inputs + ops.matmul(h_prev, cell.recurrent_kernel)
            z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
            c = cell.recurrent_activation(z_f) * c_prev + cell.recurrent_activation(z_i) * cell.activation(z_c)
            h = cell.recurrent_activation(z_o) * cell.activation(c)
            return h, [h, c]

        return rnn_loop(
            step, projected, list(initial_state), go_backwards=self.go_backwards, mask=mask,
            zero_output_for_mask=self.zero_output_for_mask, return_all_outputs=self.return_sequences)


def build_model(cfg: ModelConfig, num_words: int) -> keras.Model:
    # Sequence length is left open so one model serves any maxlen (and prediction on raw text).
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # mask_zero: the LSTM skips padding ids, so a review's prediction does not depend on how
    # much padding its batch carries (what makes length-bucketed batches exact).
    vectors = layers.Embedding(num_words, cfg.embedding_dim, mask_zero=cfg.mask_padding,
                               name="embedding")(tokens)
    # Input dropout only: recurrent_dropout would take the layer off the cuDNN path on a GPU.
    lstm_class = HoistedLSTM if cfg.hoist_input_projection else layers.LSTM
    lstm = lstm_class(cfg.units, dropout=cfg.dropout, name="lstm")
    if cfg.bidirectional:
        lstm = layers.Bidirectional(lstm, name="bidirectional_lstm")
    positive = layers.Dense(1, activation="sigmoid", name="positive")(lstm(vectors))
    return keras.Model(tokens, positive, name="imdb_lstm")


def load_model(path, jit_compile: bool = False) -> keras.Model:
    """A saved .keras model, ready to predict. safe_mode refuses files that carry code (Lambda
    layers); HoistedLSTM loads because this module registered it."""
    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    model.compile(jit_compile=jit_compile)  # no optimizer or loss: prediction only
    return model

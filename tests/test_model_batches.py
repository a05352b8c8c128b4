"""The speed levers leave the computation unchanged: the hoisted LSTM is Keras' LSTM, and a
masked model scores a review the same in any batch, so length bucketing is exact."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest
import tensorflow as tf

from src import batches, config
from src.model import HoistedLSTM, build_model, load_model
from src.text import pad


def random_reviews(n: int, maxlen: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, maxlen + 1, size=n)  # includes empty reviews
    return pad([rng.integers(2, 50, size=k).tolist() for k in lengths], maxlen=maxlen, padding="post", truncating="pre")


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("mask_padding", [False, True])
def test_hoisted_lstm_matches_keras_lstm(bidirectional, mask_padding):
    model_cfg = config.compose(["model.units=6", "model.embedding_dim=5", f"model.bidirectional={bidirectional}",
                                f"model.mask_padding={mask_padding}", "model.dropout=0.3",
                                f"data.padding={'post' if mask_padding else 'pre'}", f"train.bucket_by_length={mask_padding}"]).model
    hoisted = build_model(model_cfg, num_words=50)
    keras_lstm = build_model(replace(model_cfg, hoist_input_projection=False), num_words=50)
    assert any(isinstance(layer, HoistedLSTM) or isinstance(getattr(layer, "forward_layer", None), HoistedLSTM)
               for layer in hoisted.layers)
    keras_lstm.set_weights(hoisted.get_weights())
    x = random_reviews(16, 20)
    np.testing.assert_allclose(hoisted.predict(x, verbose=0), keras_lstm.predict(x, verbose=0), atol=1e-5)

    # Gradients too (dropout off, so both see the same inputs).
    y = np.arange(16) % 2
    grads = []
    for model in (hoisted, keras_lstm):
        with tf.GradientTape() as tape:
            loss = keras.losses.binary_crossentropy(y[:, None], model(x, training=False))
        grads.append([tf.convert_to_tensor(g).numpy() for g in tape.gradient(loss, model.trainable_weights)])
    for g_hoisted, g_keras in zip(*grads):
        np.testing.assert_allclose(g_hoisted, g_keras, atol=1e-5)


def test_masked_model_scores_a_review_the_same_in_any_batch(tmp_path):
    cfg = config.compose(["model.units=6", "model.embedding_dim=5", "train.eval_batch_size=7", "train.length_step=4"])
    model = build_model(cfg.model, num_words=50)
    model.save(tmp_path / "m.keras")
    model = load_model(tmp_path / "m.keras", jit_compile=False)  # the registered class survives safe_mode
    x = random_reviews(40, 30, seed=1)
    full_width = model.predict(x, batch_size=40, verbose=0).ravel()
    bucketed = batches.predict(model, x, cfg.train)
    assert bucketed.shape == (40,)
    np.testing.assert_allclose(bucketed, full_width, atol=1e-5)


def test_bucketed_batches_cover_every_review_once_and_cut_padding():
    cfg = config.compose(["train.batch_size=8", "train.length_step=4"]).train
    x = random_reviews(100, 30, seed=2)
    y = (np.arange(100) % 2).astype("int8")
    seen, widths = [], []
    for xb, yb in batches.training_dataset(x, y, cfg).as_numpy_iterator():
        lengths = batches.review_lengths(xb)
        assert xb.shape[1] % 4 == 0 or xb.shape[1] == 30
        assert lengths.max() <= xb.shape[1] < lengths.max() + 4 or lengths.max() == 0
        widths.append(xb.shape[1])
        seen += [tuple(row[row != 0]) for row in xb]
    assert sorted(seen) == sorted(tuple(row[row != 0]) for row in x)
    assert np.mean(widths) < 30, "bucketing should cut most batches below the full width"


def test_epochs_are_reshuffled_but_reproducible_for_a_seed():
    lengths = np.arange(64)
    order = lambda seed: [b.tolist() for b in batches.training_order(lengths, 8, np.random.default_rng(seed))]  # noqa: E731
    rng = np.random.default_rng(3)
    first, second = batches.training_order(lengths, 8, rng), batches.training_order(lengths, 8, rng)
    assert [b.tolist() for b in first] != [b.tolist() for b in second]
    assert order(3) == order(3) and order(3) != order(4)

"""Length bucketing leaves the computation unchanged: a masked model scores a review the same
in any batch, and every review is trained on once per epoch."""

from __future__ import annotations

import numpy as np
import pytest

from src.lib import batches, config
from src.lib.model import build_model, load_model
from src.lib.text import OOV_ID, pad


def random_reviews(n: int, maxlen: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, maxlen + 1, size=n)  # includes empty reviews: pad makes each one unknown word
    return pad([rng.integers(2, 50, size=k).tolist() for k in lengths], maxlen=maxlen, padding="post", truncating="pre")


@pytest.mark.parametrize("bidirectional, pooling", [(False, "last"), (True, "last"), (True, "mean"), (True, "max")])
def test_masked_model_scores_a_review_the_same_in_any_batch(tmp_path, bidirectional, pooling):
    cfg = config.compose(
        [
            "model.units=6",
            "model.embedding_dim=5",
            f"model.bidirectional={bidirectional}",
            f"model.pooling={pooling}",
            "train.eval_batch_size=7",
            "train.length_step=4",
        ]
    )
    model = build_model(cfg.model, num_words=50)
    model.save(tmp_path / "m.keras")
    model = load_model(tmp_path / "m.keras", jit_compile=False)  # saved and reloaded as the stages do
    x = random_reviews(40, 30, seed=1)
    x[0] = pad([[]], maxlen=30, padding="post", truncating="pre")  # an empty review, as the pad stage feeds it
    assert list(x[0, :2]) == [OOV_ID, 0]  # one unknown word: a row of padding only is what cuDNN refuses
    full_width = model.predict(x, batch_size=40, verbose=0).ravel()
    bucketed = batches.predict(model, x, cfg.train)
    assert bucketed.shape == (40,) and np.isfinite(bucketed).all()  # the empty review included
    np.testing.assert_allclose(bucketed, full_width, atol=1e-5)


def test_bucketed_batches_cover_every_review_once_and_cut_padding():
    cfg = config.compose(["train.batch_size=8", "train.length_step=4"]).train
    x = random_reviews(100, 30, seed=2)
    y = (np.arange(100) % 2).astype("int8")
    seen, widths = [], []
    for xb, _ in batches.training_dataset(x, y, cfg).as_numpy_iterator():
        lengths = batches.review_lengths(xb)
        assert xb.shape[1] % 4 == 0 or xb.shape[1] == 30
        assert lengths.max() <= xb.shape[1] < lengths.max() + 4 and lengths.min() >= 1
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


def test_word_dropout_replaces_words_not_padding():
    x = random_reviews(200, 30, seed=5)
    dropped = batches.drop_words(x, 0.3, np.random.default_rng(0))
    words = x != 0
    assert np.array_equal(dropped == 0, ~words), "padding stays padding and no word becomes padding"
    changed = dropped != x
    assert np.all(dropped[changed] == 1), "a dropped word becomes the unknown-word id"
    assert 0.25 < changed[words].mean() < 0.35
    assert np.array_equal(batches.drop_words(x, 0.0, np.random.default_rng(0)), x)


def test_a_cosine_schedule_decays_the_learning_rate_to_zero_over_the_epoch_cap():
    from src.lib.training import _compiled_model

    cfg = config.compose(
        [
            "model.units=4",
            "model.embedding_dim=3",
            "data.num_words=20",
            "train.learning_rate=0.01",
            "train.lr_schedule=cosine",
        ]
    )
    _, trainee = _compiled_model(cfg, "m", steps=100)  # what fits the model holds the optimizer
    assert float(trainee.optimizer.learning_rate) == pytest.approx(0.01)
    trainee.optimizer.iterations.assign(50)
    assert float(trainee.optimizer.learning_rate) == pytest.approx(0.005, rel=1e-3)
    trainee.optimizer.iterations.assign(100)
    assert float(trainee.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9)
    _, constant = _compiled_model(
        config.compose(["model.units=4", "model.embedding_dim=3", "data.num_words=20"]), "m", steps=100
    )
    constant.optimizer.iterations.assign(100)
    assert float(constant.optimizer.learning_rate) == pytest.approx(0.001)

"""The pretrain stage: word2vec vectors or a language model from the training and unlabeled
reviews (never validation or test), one row per vocabulary id, the same every run, and the
Embedding (and LSTM) the classifier starts from."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from src.lib import config, data, embeddings, language_model, training
from src.lib.errors import UserError
from src.lib.text import FIRST_WORD_ID, VOCAB_FILE, Vocabulary
from src.stages import pretrain


def with_word2vec(cfg: config.Config, **changes) -> config.Config:
    return replace(cfg, pretrain=replace(cfg.pretrain, method="word2vec", min_count=1, epochs=2, **changes))


def test_word2vec_vectors_come_from_training_and_unlabeled_reviews_only(prepared_cfg, tmp_path):
    cfg = with_word2vec(prepared_cfg)
    meta = pretrain.pretrain(cfg)
    splits, _ = data.split_reviews(cfg)
    assert meta["labeled_reviews"] == len(splits["train"]) == 24 and meta["unlabeled_reviews"] == 8
    vectors = np.load(Path(cfg.paths.pretrained) / embeddings.VECTORS_FILE)["vectors"]
    vocabulary = Vocabulary.load(Path(cfg.paths.tokens) / VOCAB_FILE)
    assert vectors.shape == (max(FIRST_WORD_ID + len(vocabulary.words), cfg.data.num_words), cfg.model.embedding_dim)
    # Seeded, one thread, a stable hash: another process would give these same vectors.
    again = replace(cfg, paths=replace(cfg.paths, pretrained=str(tmp_path / "again")))
    pretrain.pretrain(again)
    np.testing.assert_array_equal(np.load(tmp_path / "again" / embeddings.VECTORS_FILE)["vectors"], vectors)
    assert json.loads((Path(cfg.paths.pretrained) / embeddings.META_FILE).read_text())["method"] == "word2vec"
    without_unlabeled = replace(
        with_word2vec(prepared_cfg, unlabeled=False),
        paths=replace(cfg.paths, pretrained=str(tmp_path / "labeled-only")),
    )
    assert pretrain.pretrain(without_unlabeled)["unlabeled_reviews"] == 0


def test_the_classifier_starts_from_the_pretrained_vectors(prepared_cfg):
    cfg = with_word2vec(prepared_cfg)
    pretrain.pretrain(cfg)
    start = embeddings.load(cfg)
    assert start.lstm is None
    model, _ = training._compiled_model(cfg, "imdb_lstm", steps=10, start=start)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], start.vectors)
    # A pretrained width that is not the model's is one line, not a Keras shape error.
    narrower = replace(cfg, model=replace(cfg.model, embedding_dim=cfg.model.embedding_dim // 2))
    with pytest.raises(UserError, match="run the pretrain stage"):
        embeddings.load(narrower)


def test_method_none_trains_the_embedding_from_random(prepared_cfg):
    assert pretrain.pretrain(prepared_cfg) == {"method": "none"}
    assert embeddings.load(prepared_cfg) is None


def test_language_model_targets_are_the_next_and_previous_words_never_padding():
    x = np.array([[5, 6, 7, 0], [8, 9, 0, 0]], dtype=np.int32)
    y, weights = language_model.targets(x, directions=2, output_words=8)
    np.testing.assert_array_equal(y[..., 0], [[6, 7, 0, 0], [1, 0, 0, 0]])  # 9 is past the softmax: unknown
    np.testing.assert_array_equal(y[..., 1], [[0, 5, 6, 7], [0, 1, 1, 0]])
    np.testing.assert_array_equal(weights[..., 0], [[1, 1, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(weights[..., 1], [[0, 1, 1, 0], [0, 1, 0, 0]])
    # Pieces of one word predict nothing: dropped.
    np.testing.assert_array_equal(language_model.windows([np.arange(2, 9), np.array([3])], 3), [[2, 3, 4], [5, 6, 7]])


@pytest.mark.cpu_only("a second pretraining gives the same weights, bit for bit: GPU kernels add in any order")
def test_a_language_model_learns_and_starts_the_classifiers_embedding_and_lstm(prepared_cfg, tmp_path):
    cfg = replace(
        prepared_cfg,
        pretrain=replace(prepared_cfg.pretrain, method="lm", lm_epochs=4, lm_window=8),
        model=replace(prepared_cfg.model, bidirectional=True),
    )
    meta = pretrain.pretrain(cfg)
    assert meta["labeled_reviews"] == 24 and meta["unlabeled_reviews"] == 8  # never validation or test
    assert meta["loss"][-1] < meta["loss"][0]  # it learns to predict the words
    start = embeddings.load(cfg)
    model, _ = training._compiled_model(cfg, "imdb_lstm", steps=10, start=start)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], start.vectors)
    for got, pretrained in zip(model.get_layer("bidirectional_lstm").get_weights(), start.lstm, strict=True):
        np.testing.assert_array_equal(got, pretrained)
    # The same every run (seeded), and a model of other units is one line, not a Keras shape error.
    again = replace(cfg, paths=replace(cfg.paths, pretrained=str(tmp_path / "again")))
    pretrain.pretrain(again)
    np.testing.assert_array_equal(embeddings.load(again).lstm[0], start.lstm[0])
    wider = replace(cfg, model=replace(cfg.model, units=cfg.model.units * 2))
    with pytest.raises(UserError, match="model.units=.*run the pretrain stage"):
        embeddings.load(wider)

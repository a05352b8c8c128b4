"""The pretrain stage: word2vec vectors from the training and unlabeled reviews (never
validation or test), one row per vocabulary id, the same every run, and the Embedding the
classifier starts from."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from src.lib import config, data, embeddings, training
from src.lib.errors import UserError
from src.lib.text import FIRST_WORD_ID, VOCAB_FILE, Vocabulary
from src.stages import download, pad, pretrain, tokenize


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
    without_unlabeled = replace(with_word2vec(prepared_cfg, unlabeled=False),
                                paths=replace(cfg.paths, pretrained=str(tmp_path / "labeled-only")))
    assert pretrain.pretrain(without_unlabeled)["unlabeled_reviews"] == 0


def test_the_classifier_starts_from_the_pretrained_vectors(prepared_cfg):
    cfg = with_word2vec(prepared_cfg)
    pretrain.pretrain(cfg)
    vectors = embeddings.load(cfg)
    model = training._compiled_model(cfg, "imdb_lstm", vectors)
    np.testing.assert_array_equal(model.get_layer("embedding").get_weights()[0], vectors)
    # A pretrained width that is not the model's is one line, not a Keras shape error.
    narrower = replace(cfg, model=replace(cfg.model, embedding_dim=cfg.model.embedding_dim // 2))
    with pytest.raises(UserError, match="run the pretrain stage"):
        embeddings.load(narrower)


def test_method_none_trains_the_embedding_from_random(prepared_cfg):
    assert pretrain.pretrain(prepared_cfg) == {"method": "none"}
    assert embeddings.load(prepared_cfg) is None

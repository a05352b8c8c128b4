"""tokenize and pad: one tokenizer, vocabulary from training reviews only, plain int arrays."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from src.lib import data, model_folder
from src.lib.data import load_ragged
from src.lib.errors import UserError
from src.lib.text import OOV_ID, Vocabulary, standardize
from src.lib.text import pad as pad_sequences
from src.stages import download, pad, tokenize
from tests.conftest import movie_files, review_files, with_archive, write_archive


def test_standardize_lowercases_and_drops_markup_and_punctuation():
    assert standardize("Great<br /><br />film! Don't MISS it... 10/10") == [
        "great",
        "film",
        "don't",
        "miss",
        "it",
        "10",
        "10",
    ]
    assert standardize("") == []


def test_vocabulary_ranks_by_frequency_then_alphabet_and_reserves_padding_and_unknown():
    vocab = Vocabulary.build(["b a a", "c b a"], num_words=4)
    assert vocab.words == ["a", "b"]
    assert vocab.encode("a b c zzz") == [2, 3, OOV_ID, OOV_ID]
    assert vocab.size == 4


def build_tokens(tmp_path, cfg, extra: dict[str, bytes] = None, movies: bool = True):
    """Tokenize an archive of the tiny reviews (with the official archive's movie files unless
    `movies` is false) and `extra` members."""
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, review_files() | (movie_files() if movies else {}) | (extra or {}))
    download.download(with_archive(cfg, archive))
    return tokenize.tokenize(cfg)


def test_split_is_stratified_seeded_and_disjoint(tmp_path, tiny_cfg):
    stats = build_tokens(tmp_path, tiny_cfg)
    assert (stats["train"]["reviews"], stats["val"]["reviews"], stats["test"]["reviews"]) == (24, 8, 32)
    tokens = Path(tiny_cfg.paths.tokens)
    _, val_labels = load_ragged(tokens / "val.npz")
    assert np.bincount(val_labels).tolist() == [4, 4]
    labels = [0] * 10 + [1] * 10
    first = data.stratified_split(labels, 0.3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, data.stratified_split(labels, 0.3, seed=7)))
    assert not np.array_equal(first[1], data.stratified_split(labels, 0.3, seed=8)[1])
    assert set(first[0]).isdisjoint(first[1]) and len(first[0]) + len(first[1]) == 20


def test_contiguous_split_holds_out_consecutive_ids_per_label():
    # Two labels, ids shuffled in file order (file names sort as text: 10 before 2).
    ids = [10, 2, 7, 0, 5, 1, 9, 3, 8, 4, 6, 11] * 2
    labels = [0] * 12 + [1] * 12
    train_idx, val_idx = data.contiguous_split(labels, ids, 0.25, seed=3)
    assert set(train_idx).isdisjoint(val_idx) and len(train_idx) + len(val_idx) == 24
    for label in (0, 1):
        held_out = sorted(ids[i] for i in val_idx if labels[i] == label)
        assert len(held_out) == 3 and held_out == list(range(held_out[0], held_out[0] + 3))
    windows = {tuple(data.contiguous_split(labels, ids, 0.25, seed=s)[1]) for s in range(10)}
    assert len(windows) > 1  # the seed moves the window
    with pytest.raises(UserError, match="empty train or validation"):
        data.contiguous_split(labels, ids, 0.01, seed=0)


def test_movie_split_holds_out_whole_movies_stratified_and_seeded():
    # 40 movies of 1-9 reviews each, both labels mixed within movies, as in aclImdb.
    rng = np.random.default_rng(0)
    movies = [f"tt{m}" for m in range(40) for _ in range(rng.integers(1, 10))]
    labels = rng.integers(0, 2, len(movies)).tolist()
    train_idx, val_idx = data.movie_split(labels, movies, 0.2, seed=5)
    assert set(train_idx).isdisjoint(val_idx) and len(train_idx) + len(val_idx) == len(movies)
    assert {movies[i] for i in train_idx}.isdisjoint({movies[i] for i in val_idx}), "a movie on both sides"
    for label in (0, 1):
        share = np.mean([labels[i] == label for i in val_idx]) if val_idx.size else 0
        overall = labels.count(label) / len(labels)
        assert abs(share - overall) < 0.1  # stratified: each label about as common as overall
        held = sum(labels[i] == label for i in val_idx)
        assert 0.15 * labels.count(label) <= held <= 0.2 * labels.count(label) + 0.5
    assert np.array_equal(val_idx, data.movie_split(labels, movies, 0.2, seed=5)[1])
    assert not np.array_equal(val_idx, data.movie_split(labels, movies, 0.2, seed=6)[1])


def test_the_tokenize_stage_splits_by_movie_from_the_archives_urls_files(tmp_path, tiny_cfg):
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, val_split="movie"))
    stats = build_tokens(tmp_path, cfg)
    assert stats["movies"]["shared"] == 0 and stats["movies"]["val"] >= 1
    assert stats["val"]["reviews"] == 8 and stats["train"]["reviews"] == 24
    # Without the urls files (the labeled-only copy of the archive) the split is refused in one line.
    with pytest.raises(UserError, match="needs the archive's movie files"):
        (tmp_path / "labeled").mkdir()
        build_tokens(
            tmp_path / "labeled",
            movies=False,
            cfg=replace(
                cfg,
                paths=replace(cfg.paths, raw=str(tmp_path / "labeled-raw"), tokens=str(tmp_path / "labeled-tokens")),
            ),
        )


def test_vocabulary_comes_from_training_reviews_only(tmp_path, tiny_cfg):
    # Every training review gets a word of its own, and the vocabulary is large enough for
    # all words: those of the reviews carved out for validation must still be absent.
    cfg = replace(tiny_cfg, data=replace(tiny_cfg.data, num_words=1000))
    files = {
        name: data + (b" marker%d" % i if "/train/" in name else b"")
        for i, (name, data) in enumerate(review_files().items())
    } | movie_files()
    files |= {f"aclImdb/test/pos/{100 + i}_8.txt": b"zyzzyva " * 50 for i in range(3)}
    archive = tmp_path / "a.tar.gz"
    write_archive(archive, files)
    download.download(with_archive(cfg, archive))
    tokenize.tokenize(cfg)
    words = set(Vocabulary.load(Path(cfg.paths.tokens) / "vocab.txt").words)
    assert "zyzzyva" not in words and "wonderful" in words
    texts, labels, ids = data.read_reviews(Path(cfg.paths.raw) / "aclImdb" / "train")
    movies = data.read_movies(Path(cfg.paths.raw) / "aclImdb" / "train", labels, ids)
    train_idx, val_idx = data.validation_split(cfg.data, labels, ids, movies)
    marker = lambda i: standardize(texts[i])[-1]  # noqa: E731
    assert {marker(i) for i in train_idx} <= words
    assert {marker(i) for i in val_idx}.isdisjoint(words)


def test_empty_and_non_utf8_reviews(tmp_path, tiny_cfg):
    extra = {"aclImdb/test/neg/200_1.txt": b"", "aclImdb/test/pos/201_9.txt": b"caf\xe9 great \xff\xfe film"}
    stats = build_tokens(tmp_path, tiny_cfg, extra)
    assert stats["test"]["empty"] == 1
    sequences, labels = load_ragged(Path(tiny_cfg.paths.tokens) / "test.npz")
    assert len(sequences) == 34 and min(len(s) for s in sequences) == 0
    # Padded, the empty review is one unknown word: a GPU's cuDNN LSTM refuses a fully masked row.
    pad.pad_splits(tiny_cfg)
    x, _ = data.load_split(tiny_cfg, "test")
    assert x.shape[0] == 34 and np.count_nonzero(x, axis=1).min() == 1
    vocab = Vocabulary.load(Path(tiny_cfg.paths.tokens) / "vocab.txt")
    assert any(list(s) == vocab.encode("caf\ufffd great \ufffd\ufffd film") for s in sequences)


def test_token_files_load_without_pickle(tmp_path, tiny_cfg):
    build_tokens(tmp_path, tiny_cfg)
    with np.load(Path(tiny_cfg.paths.tokens) / "train.npz", allow_pickle=False) as data:
        assert {data[k].dtype.kind for k in data.files} == {"i"}


# The empty review (third) is one unknown word (id 1), never a row of padding only.
@pytest.mark.parametrize(
    "padding, truncating, expected",
    [
        ("pre", "pre", [[0, 0, 1, 2], [3, 4, 5, 6], [0, 0, 0, 1]]),
        ("post", "post", [[1, 2, 0, 0], [1, 2, 3, 4], [1, 0, 0, 0]]),
        ("post", "pre", [[1, 2, 0, 0], [3, 4, 5, 6], [1, 0, 0, 0]]),
    ],
)
def test_pad_sides(padding, truncating, expected):
    sequences = [np.array([1, 2]), np.array([1, 2, 3, 4, 5, 6]), np.array([], dtype=np.int32)]
    out = pad_sequences(sequences, 4, padding, truncating)
    assert out.dtype == np.int32 and out.tolist() == expected


def test_pad_stage_and_repadding_for_another_maxlen(tmp_path, tiny_cfg):
    build_tokens(tmp_path, tiny_cfg)
    pad.pad_splits(tiny_cfg)
    padded = Path(tiny_cfg.paths.padded)
    assert json.loads((padded / data.META_FILE).read_text())["maxlen"] == 12
    x, y = data.load_split(tiny_cfg, "val")
    assert x.shape == (8, 12) and len(y) == 8
    longer = replace(tiny_cfg, data=replace(tiny_cfg.data, maxlen=30))
    x30, y30 = data.load_split(longer, "val")
    assert x30.shape == (8, 30) and np.array_equal(y30, y)
    # Both keep each review's ending ('pre' truncation); the 12-token rows are its last 12 ids.
    for short, long in zip(x, x30):
        assert list(short[short != 0]) == list(long[long != 0][-12:])


def test_a_smaller_num_words_at_load_time_equals_tokenizing_with_it(tmp_path, tiny_cfg):
    build_tokens(tmp_path, tiny_cfg)  # num_words=40
    pad.pad_splits(tiny_cfg)
    small = replace(
        tiny_cfg,
        data=replace(tiny_cfg.data, num_words=12),
        paths=replace(tiny_cfg.paths, tokens=str(tmp_path / "tokens12"), padded=str(tmp_path / "padded12")),
    )
    tokenize.tokenize(small)
    cut = replace(tiny_cfg, data=small.data)  # the 40-word tokens read with num_words=12
    for split in ("train", "val", "test"):
        x40, _ = data.load_split(tiny_cfg, split)
        x_cut, y_cut = data.load_split(cut, split)
        x12, y12 = data.load_split(small, split)
        assert x40.max() >= 12 and x_cut.max() < 12
        assert np.array_equal(x_cut, x12) and np.array_equal(y_cut, y12)
    # A model trained on the cut ids ships the vocabulary they came from.
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model_folder.write_companions(model_dir, cut, Vocabulary.load(Path(tiny_cfg.paths.tokens) / "vocab.txt"))
    assert (model_dir / "vocab.txt").read_text() == (Path(small.paths.tokens) / "vocab.txt").read_text()

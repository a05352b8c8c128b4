"""DVC stage `tokenize`: reviews -> vocabulary and unpadded token ids per split.

The validation split is carved from the training reviews (seeded, stratified by label;
`data.val_split` says how) before the vocabulary is counted, so neither validation nor test
text shapes the vocabulary.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from src import config
from src.artifacts import atomic_path
from src.errors import UserError, command
from src.splits import save_ragged
from src.text import VOCAB_FILE, Vocabulary

LABELS = {"neg": 0, "pos": 1}


def read_reviews(folder: Path) -> tuple[list[str], list[int], list[int]]:
    """(texts, labels, review ids) of all reviews under folder/{neg,pos}, in a stable order.
    Undecodable bytes become U+FFFD. The id is the number a file name starts with (`123_8.txt`)."""
    texts, labels, ids = [], [], []
    for name, label in LABELS.items():
        files = sorted((folder / name).glob("*.txt"))
        if not files:
            raise UserError(f"no reviews in {folder / name}: run the download stage (`dvc repro download`)")
        for path in files:
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
            labels.append(label)
            number = path.name.split("_", 1)[0]
            ids.append(int(number) if number.isdigit() else -1)
    return texts, labels, ids


def stratified_split(labels: list[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val): val_fraction of each label, chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(idx) * val_fraction))
        if n_val == 0 or n_val == len(idx):
            raise UserError(f"data.val_fraction={val_fraction} leaves an empty train or validation split "
                            f"for label {label} ({len(idx)} reviews)")
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def contiguous_split(labels: list[int], ids: list[int], val_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val): per label, a seeded window of val_fraction of the reviews with
    consecutive ids. aclImdb numbers a movie's reviews consecutively, so the window holds whole
    movies (but for the two at its edges): validation then asks, as the test split does, about
    movies training never saw, instead of rewarding a model for knowing their names."""
    rng = np.random.default_rng(seed)
    labels, ids = np.asarray(labels), np.asarray(ids)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[np.argsort(ids[idx], kind="stable")]
        n_val = int(round(len(idx) * val_fraction))
        if n_val == 0 or n_val == len(idx):
            raise UserError(f"data.val_fraction={val_fraction} leaves an empty train or validation split "
                            f"for label {label} ({len(idx)} reviews)")
        start = int(rng.integers(0, len(idx) - n_val + 1))
        val_idx.append(idx[start:start + n_val])
        train_idx.append(np.concatenate([idx[:start], idx[start + n_val:]]))
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def validation_split(data: config.DataConfig, labels: list[int], ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into the training reviews, as data.val_split says."""
    if data.val_split == "contiguous":
        return contiguous_split(labels, ids, data.val_fraction, data.split_seed)
    return stratified_split(labels, data.val_fraction, data.split_seed)


def tokenize(cfg: config.Config) -> dict:
    raw = Path(cfg.paths.raw) / "aclImdb"
    train_texts, train_labels, train_ids = read_reviews(raw / "train")
    test_texts, test_labels, test_ids = read_reviews(raw / "test")
    train_idx, val_idx = validation_split(cfg.data, train_labels, train_ids)

    vocab = Vocabulary.build((train_texts[i] for i in train_idx), cfg.data.num_words)
    splits = {
        "train": [(train_texts[i], train_labels[i], train_ids[i]) for i in train_idx],
        "val": [(train_texts[i], train_labels[i], train_ids[i]) for i in val_idx],
        "test": list(zip(test_texts, test_labels, test_ids)),
    }
    stats = {"vocab_size": vocab.size}
    with atomic_path(cfg.paths.tokens, directory=True) as tmp:
        vocab.save(tmp / VOCAB_FILE)
        for name, rows in splits.items():
            sequences = [vocab.encode(text) for text, _, _ in rows]
            save_ragged(tmp / f"{name}.npz", sequences, [label for _, label, _ in rows], [i for _, _, i in rows])
            lengths = np.array([len(s) for s in sequences])
            stats[name] = {"reviews": len(rows), "median_tokens": float(np.median(lengths)),
                           "empty": int((lengths == 0).sum())}
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    return stats


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv)
    stats = tokenize(cfg)
    print(f"vocabulary of {stats['vocab_size']} ids; "
          + ", ".join(f"{s} {stats[s]['reviews']} reviews" for s in ("train", "val", "test")))


if __name__ == "__main__":
    main()

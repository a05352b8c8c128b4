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

from src.lib import config
from src.lib.artifacts import atomic_path
from src.lib.errors import UserError, command
from src.lib.data import save_ragged, validation_split
from src.lib.text import VOCAB_FILE, Vocabulary

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


def read_movies(folder: Path, labels: list[int], ids: list[int]) -> list[str] | None:
    """The movie (its IMDB page) of each review, from folder/urls_{neg,pos}.txt, whose line i
    is the movie of review i; None when the archive had no such files."""
    files = {label: folder / f"urls_{name}.txt" for name, label in LABELS.items()}
    if not all(path.is_file() for path in files.values()):
        return None
    urls = {label: path.read_text(encoding="utf-8").splitlines() for label, path in files.items()}
    if any(not 0 <= i < len(urls[label]) for label, i in zip(labels, ids)):
        raise UserError(f"{folder}: a review's number is not a line of its urls file: not the IMDB layout")
    return [urls[label][i] for label, i in zip(labels, ids)]


def tokenize(cfg: config.Config) -> dict:
    raw = Path(cfg.paths.raw) / "aclImdb"
    train_texts, train_labels, train_ids = read_reviews(raw / "train")
    test_texts, test_labels, test_ids = read_reviews(raw / "test")
    movies = read_movies(raw / "train", train_labels, train_ids)
    train_idx, val_idx = validation_split(cfg.data, train_labels, train_ids, movies)

    vocab = Vocabulary.build((train_texts[i] for i in train_idx), cfg.data.num_words)
    splits = {
        "train": [(train_texts[i], train_labels[i], train_ids[i]) for i in train_idx],
        "val": [(train_texts[i], train_labels[i], train_ids[i]) for i in val_idx],
        "test": list(zip(test_texts, test_labels, test_ids)),
    }
    stats = {"vocab_size": vocab.size, "val_split": cfg.data.val_split}
    if movies is not None:  # how many movies each side has, and how many both (0 for the movie split)
        train_movies, val_movies = {movies[i] for i in train_idx}, {movies[i] for i in val_idx}
        stats["movies"] = {"train": len(train_movies), "val": len(val_movies), "shared": len(train_movies & val_movies)}
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

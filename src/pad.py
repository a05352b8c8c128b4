"""DVC stage `pad`: unpadded token ids -> fixed-length int32 arrays (data.maxlen, padding, truncating)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from src import config
from src.artifacts import atomic_path
from src.errors import command
from src.splits import SPLITS, load_padded, load_ragged, load_review_ids, read_json, save_padded
from src.text import OOV_ID, pad

META_FILE = "meta.json"  # the padding settings the arrays were made with


def padding_settings(cfg: config.Config) -> dict:
    return {"maxlen": cfg.data.maxlen, "padding": cfg.data.padding, "truncating": cfg.data.truncating}


def pad_splits(cfg: config.Config) -> None:
    settings = padding_settings(cfg)
    with atomic_path(cfg.paths.padded, directory=True) as tmp:
        for split in SPLITS:
            tokens = Path(cfg.paths.tokens) / f"{split}.npz"
            sequences, labels = load_ragged(tokens)
            save_padded(tmp / f"{split}.npz", pad(sequences, **settings), labels, load_review_ids(tokens))
        (tmp / META_FILE).write_text(json.dumps(settings, indent=2) + "\n")


def load_split(cfg: config.Config, split: str):
    """(x, y) of a split padded and cut to the vocabulary as cfg says: the pad stage's arrays
    when they match cfg, else padded now from the token ids (a sweep trial or a command-line
    maxlen override)."""
    padded = Path(cfg.paths.padded)
    if _padded_as_configured(cfg):
        x, y = load_padded(padded / f"{split}.npz")
    else:
        sequences, y = load_ragged(Path(cfg.paths.tokens) / f"{split}.npz")
        x = pad(sequences, **padding_settings(cfg))
    return cut_vocabulary(x, cfg.data.num_words), y


def _padded_as_configured(cfg: config.Config) -> bool:
    meta = Path(cfg.paths.padded) / META_FILE
    return meta.is_file() and read_json(meta) == padding_settings(cfg)


def review_ids(cfg: config.Config, split: str) -> np.ndarray:
    """The review ids of load_split's rows, from the file load_split reads."""
    folder = cfg.paths.padded if _padded_as_configured(cfg) else cfg.paths.tokens
    return load_review_ids(Path(folder) / f"{split}.npz")


def cut_vocabulary(x: np.ndarray, num_words: int) -> np.ndarray:
    """Ids from num_words on become the unknown-word id. The tokenize stage numbers words by
    training-set frequency, so this is exactly what re-tokenizing with the smaller vocabulary
    would give: a sweep trial or a command line can lower data.num_words without it."""
    if x.size == 0 or x.max() < num_words:
        return x
    return np.where(x >= num_words, np.int32(OOV_ID), x)


@command
def main(argv: list[str] | None = None) -> None:
    cfg = config.from_argv(sys.argv[1:] if argv is None else argv)
    pad_splits(cfg)
    print(f"padded {', '.join(SPLITS)} to {cfg.data.maxlen} tokens ({cfg.data.padding} padding, "
          f"{cfg.data.truncating} truncation) in {cfg.paths.padded}")


if __name__ == "__main__":
    main()

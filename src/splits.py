"""On-disk form of the token splits: plain integer arrays in .npz files, never pickles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from src.artifacts import atomic_path
from src.errors import UserError

SPLITS = ("train", "val", "test")


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object stops numpy from appending ".npz" to tmp
            np.savez(f, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it (`dvc repro`)")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def save_ragged(path: Path, sequences: list[list[int]], labels: list[int], review_ids: list[int]) -> None:
    """Variable-length sequences as one flat id array plus row offsets, with each row's label
    and review id (the number its file name starts with)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(offsets[-1]))
    save_npz(path, ids=ids, offsets=offsets, labels=np.asarray(labels, dtype=np.int8),
             review_ids=np.asarray(review_ids, dtype=np.int32))


def load_ragged(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    data = load_npz(path)
    ids, offsets = data["ids"], data["offsets"]
    sequences = [ids[start:end] for start, end in zip(offsets[:-1], offsets[1:])]
    return sequences, data["labels"]


def save_padded(path: Path, x: np.ndarray, y: np.ndarray, review_ids: np.ndarray) -> None:
    save_npz(path, x=x, y=y, review_ids=review_ids)


def load_review_ids(path: Path) -> np.ndarray:
    """The review ids of a token or padded split file, row by row."""
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it (`dvc repro`)")
    with np.load(path, allow_pickle=False) as data:  # members load lazily: only this one is read
        if "review_ids" not in data.files:
            raise UserError(f"{path} was written by an older version, without review ids: re-run `dvc repro`")
        return data["review_ids"]


def load_padded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = load_npz(path)
    return data["x"], data["y"]


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it (`dvc repro`)")
    return json.loads(path.read_text(encoding="utf-8"))

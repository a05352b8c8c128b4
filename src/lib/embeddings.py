"""Pretrained word vectors: the pretrain stage's output, one row per vocabulary id, and how the
classifier's Embedding starts from them (src.lib.training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from src.lib import config
from src.lib.data import load_npz, read_json, save_npz
from src.lib.errors import UserError

VECTORS_FILE = "vectors.npz"   # `vectors`: (vocabulary ids, model.embedding_dim) float32
META_FILE = "meta.json"        # the method and what it learned from


def save(folder: Path, vectors: np.ndarray | None, meta: dict) -> None:
    """The vectors (None for pretrain.method=none: the folder then holds only its meta.json)."""
    if vectors is not None:
        save_npz(folder / VECTORS_FILE, vectors=vectors.astype(np.float32))
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def load(cfg: config.Config) -> np.ndarray | None:
    """The rows for ids below data.num_words, or None when cfg trains its Embedding from random."""
    if cfg.pretrain.method == "none":
        return None
    folder = Path(cfg.paths.pretrained)
    meta = read_json(folder / META_FILE)
    if meta.get("method") != cfg.pretrain.method:
        raise UserError(f"{folder} holds {meta.get('method')!r} vectors, not pretrain.method={cfg.pretrain.method}: "
                        "run the pretrain stage (`dvc repro pretrain`)")
    vectors = load_npz(folder / VECTORS_FILE)["vectors"]
    if vectors.shape[1] != cfg.model.embedding_dim or vectors.shape[0] < cfg.data.num_words:
        raise UserError(f"{folder}: the vectors are {vectors.shape[0]} ids x {vectors.shape[1]} wide, the model needs "
                        f"{cfg.data.num_words} x {cfg.model.embedding_dim}: run the pretrain stage (`dvc repro pretrain`)")
    return vectors[: cfg.data.num_words]

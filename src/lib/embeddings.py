"""What the pretrain stage hands the classifier: word vectors (one row per vocabulary id) and,
from a language model, the LSTM's weights; how the classifier starts from them is
src.lib.training's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.lib import config
from src.lib.data import load_npz, read_json, save_npz
from src.lib.errors import UserError

VECTORS_FILE = "vectors.npz"  # `vectors`: (vocabulary ids, model.embedding_dim) float32
LSTM_FILE = "lstm.npz"  # lm only: the LSTM layer's weights, `w0`, `w1`, ... in Keras' order
META_FILE = "meta.json"  # the method and what it learned from
# The config keys whose values shape each method's weights: fixed once the pretrain stage ran.
SHAPED_BY = {
    "none": (),
    "word2vec": ("model.embedding_dim",),
    "lm": ("model.embedding_dim", "model.units", "model.bidirectional"),
}


@dataclass
class Pretrained:
    vectors: np.ndarray  # the Embedding's rows, data.num_words of them
    lstm: list[np.ndarray] | None  # the LSTM layer's weights (lm), else None


def save(folder: Path, vectors: np.ndarray | None, meta: dict, lstm: list[np.ndarray] | None = None) -> None:
    """The vectors (None for pretrain.method=none: the folder then holds only its meta.json)."""
    if vectors is not None:
        save_npz(folder / VECTORS_FILE, vectors=vectors.astype(np.float32))
    if lstm is not None:
        save_npz(folder / LSTM_FILE, **{f"w{i}": w.astype(np.float32) for i, w in enumerate(lstm)})
    (folder / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def _lstm_shapes(model: config.ModelConfig) -> list[tuple[int, ...]]:
    """A Keras LSTM layer's weights (kernel, recurrent kernel, bias), twice when bidirectional."""
    one = [(model.embedding_dim, 4 * model.units), (model.units, 4 * model.units), (4 * model.units,)]
    return one * (2 if model.bidirectional else 1)


def load(cfg: config.Config) -> Pretrained | None:
    """What cfg's classifier starts from, or None when it starts random (pretrain.method=none)."""
    if cfg.pretrain.method == "none":
        return None
    folder = Path(cfg.paths.pretrained)
    meta = read_json(folder / META_FILE)
    rerun = "run the pretrain stage (`dvc repro pretrain`)"
    if meta.get("method") != cfg.pretrain.method:
        raise UserError(
            f"{folder} holds {meta.get('method')!r} weights, not pretrain.method={cfg.pretrain.method}: {rerun}"
        )
    vectors = load_npz(folder / VECTORS_FILE)["vectors"]
    if vectors.shape[1] != cfg.model.embedding_dim or vectors.shape[0] < cfg.data.num_words:
        raise UserError(
            f"{folder}: the vectors are {vectors.shape[0]} ids x {vectors.shape[1]} wide, the model needs "
            f"{cfg.data.num_words} x {cfg.model.embedding_dim}: {rerun}"
        )
    lstm = None
    if cfg.pretrain.method == "lm":
        stored = load_npz(folder / LSTM_FILE)
        lstm = [stored[f"w{i}"] for i in range(len(stored))]
        if [w.shape for w in lstm] != _lstm_shapes(cfg.model):
            raise UserError(
                f"{folder}: the language model's LSTM is not model.units={cfg.model.units}, "
                f"model.bidirectional={cfg.model.bidirectional}: {rerun}"
            )
    return Pretrained(vectors[: cfg.data.num_words], lstm)

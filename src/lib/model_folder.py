"""The trained-model folder: its file names, writing it and loading it as a `ReviewClassifier`.

A folder holds the Keras model, the vocabulary it was trained with and `settings.json`: only
what turning raw text into the model's input needs (maxlen, padding, truncation, batching),
with a format version. The train stage writes it, the evaluate stage and `src.predict` read
it, and the MLflow model (src/lib/review_model.py) carries the same three files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from src.lib import batches, config
from src.lib.data import padding_settings, read_json
from src.lib.errors import UserError
from src.lib.text import FIRST_WORD_ID, VOCAB_FILE, Vocabulary, pad

MODEL_FILE = "model.keras"
SETTINGS_FILE = "settings.json"  # how the model's input is padded and batched
RUN_FILE = "run.json"  # the MLflow run that trained the model, its logged model's URI, val accuracy
FORMAT = 2  # settings.json's format; an older one (or none) is refused: re-run training


def settings(cfg: config.Config) -> dict:
    return {"format": FORMAT, "padding": padding_settings(cfg), "batching": asdict(batches.Batching.of(cfg.train))}


def files(folder: Path) -> dict[str, Path]:
    """The files that make a classifier, by role (the MLflow model's artifact names)."""
    return {"model": folder / MODEL_FILE, "vocabulary": folder / VOCAB_FILE, "settings": folder / SETTINGS_FILE}


def write(folder: Path, cfg: config.Config, model, vocabulary: Vocabulary) -> dict[str, Path]:
    """Save the model with the vocabulary it saw and its input settings; return files(folder)."""
    model.save(folder / MODEL_FILE)
    write_companions(folder, cfg, vocabulary)
    return files(folder)


def write_companions(folder: Path, cfg: config.Config, vocabulary: Vocabulary) -> None:
    """The vocabulary and settings beside the model. The model saw ids below data.num_words
    only (src.lib.data.cut_vocabulary): the vocabulary kept is those words."""
    Vocabulary(vocabulary.words[: cfg.data.num_words - FIRST_WORD_ID]).save(folder / VOCAB_FILE)
    (folder / SETTINGS_FILE).write_text(json.dumps(settings(cfg), indent=2) + "\n")


def read_run(folder: Path) -> dict:
    """run.json: the training run's id, its logged model's URI and best validation accuracy."""
    trained = read_json(folder / RUN_FILE)
    if not {"run_id", "model_uri", "best_val_accuracy"} <= trained.keys():
        raise UserError(
            f"{folder / RUN_FILE} lacks run_id, model_uri or best_val_accuracy: re-run training (`dvc repro -f train`)"
        )
    return trained


def _check_format(stored: dict) -> None:
    """Settings of this FORMAT load; older ones (no "format" key was the first) and newer ones do not."""
    written = stored.get("format")
    if written is None or written < FORMAT:
        raise UserError(
            f"the model's settings are format {written or 1}, written by an older version of this code "
            f"(it reads format {FORMAT}): re-run training (`dvc repro -f train`)"
        )
    if written > FORMAT:
        raise UserError(f"the model's settings are format {written}; this code reads up to {FORMAT}: update the code")


class ReviewClassifier:
    """Raw review strings -> positive-class probability, exactly as training saw reviews."""

    def __init__(self, model, vocabulary: Vocabulary, stored_settings: dict):
        _check_format(stored_settings)
        self.model = model
        self.vocabulary = vocabulary
        self.padding = stored_settings["padding"]  # maxlen, padding, truncating
        kept = stored_settings["batching"]
        self.batching = batches.Batching(**{f.name: kept[f.name] for f in fields(batches.Batching)})

    @classmethod
    def from_files(cls, model: str | Path, vocabulary: str | Path, settings: str | Path) -> ReviewClassifier:
        for path in (model, vocabulary, settings):
            if not Path(path).is_file():
                raise UserError(f"{path} not found: train a model first (`dvc repro`) or pass --model")
        from src.lib.model import load_model  # imports TensorFlow: after the checks, which need none

        return cls(load_model(model), Vocabulary.load(vocabulary), json.loads(Path(settings).read_text()))

    @classmethod
    def from_folder(cls, folder: str | Path) -> ReviewClassifier:
        return cls.from_files(**files(Path(folder)))

    def predict_proba(self, reviews: list[str]) -> np.ndarray:
        sequences = [np.asarray(self.vocabulary.encode(review), dtype=np.int32) for review in reviews]
        if not sequences:
            return np.empty(0, dtype="float32")
        return batches.predict(self.model, pad(sequences, **self.padding), self.batching)

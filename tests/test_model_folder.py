"""The trained-model folder (src.lib.model_folder): what settings.json holds, and that a folder
written by the previous format (all of train.* in settings.json) still loads and predicts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from src.lib import batches, model_folder
from src.lib.errors import UserError
from src.lib.text import Vocabulary, pad

FORMAT1 = Path(__file__).resolve().parent / "fixtures" / "model-format1"  # written by the code before format 2
REVIEWS = ["a good film", "the acting was bad and dull", "words it never saw", ""]


def test_settings_hold_only_what_prediction_needs(tmp_path, tiny_cfg):
    model_folder.write_companions(tmp_path, tiny_cfg, Vocabulary(["good", "bad"]))
    stored = json.loads((tmp_path / model_folder.SETTINGS_FILE).read_text())
    assert stored == {
        "format": model_folder.FORMAT,
        "padding": {
            "maxlen": tiny_cfg.data.maxlen,
            "padding": tiny_cfg.data.padding,
            "truncating": tiny_cfg.data.truncating,
        },
        "batching": {
            "eval_batch_size": tiny_cfg.train.eval_batch_size,
            "bucket_by_length": tiny_cfg.train.bucket_by_length,
            "length_step": tiny_cfg.train.length_step,
        },
    }
    # What training alone reads (epochs, seed, learning rate...) is not the folder's business.
    longer = replace(tiny_cfg, train=replace(tiny_cfg.train, epochs=99, seed=7))
    model_folder.write_companions(tmp_path, longer, Vocabulary(["good", "bad"]))
    assert json.loads((tmp_path / model_folder.SETTINGS_FILE).read_text()) == stored


def test_a_folder_of_the_previous_format_still_loads_and_predicts():
    from src.lib.model import load_model

    old = json.loads((FORMAT1 / model_folder.SETTINGS_FILE).read_text())
    assert "format" not in old and "epochs" in old["train"]  # the premise: format 1, all of train.*
    classifier = model_folder.ReviewClassifier.from_folder(FORMAT1)
    assert classifier.batching == batches.Batching(eval_batch_size=512, bucket_by_length=True, length_step=16)
    vocabulary = Vocabulary.load(FORMAT1 / "vocab.txt")
    x = pad([np.asarray(vocabulary.encode(r), dtype=np.int32) for r in REVIEWS], **old["padding"])
    expected = load_model(FORMAT1 / model_folder.MODEL_FILE).predict(x, verbose=0).ravel()
    np.testing.assert_allclose(classifier.predict_proba(REVIEWS), expected, atol=1e-6)


def test_a_folder_of_a_newer_format_is_refused_in_one_line(tmp_path):
    for name in ("model.keras", "vocab.txt"):
        (tmp_path / name).write_bytes((FORMAT1 / name).read_bytes())
    (tmp_path / model_folder.SETTINGS_FILE).write_text(json.dumps({"format": model_folder.FORMAT + 1}))
    with pytest.raises(UserError, match=f"format {model_folder.FORMAT + 1}; this code reads up to"):
        model_folder.ReviewClassifier.from_folder(tmp_path)

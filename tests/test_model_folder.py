"""The trained-model folder (src.lib.model_folder): what settings.json holds, and that a folder
of another format (an older one, all of train.* in settings.json, or a newer one) is refused in one line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from src.lib import model_folder
from src.lib.errors import UserError
from src.lib.text import Vocabulary

FORMAT1 = Path(__file__).resolve().parent / "fixtures" / "model-format1"  # written by the code before format 2


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


def test_a_folder_of_the_previous_format_is_refused_in_one_line():
    old = json.loads((FORMAT1 / model_folder.SETTINGS_FILE).read_text())
    assert "format" not in old and "epochs" in old["train"]  # the premise: format 1, all of train.*
    with pytest.raises(UserError) as refused:
        model_folder.ReviewClassifier.from_folder(FORMAT1)
    assert str(refused.value).splitlines() == [
        f"the model's settings are format 1, written by an older version of this code "
        f"(it reads format {model_folder.FORMAT}): re-run training (`dvc repro -f train`)"
    ]


def test_a_folder_of_a_newer_format_is_refused_in_one_line(tmp_path):
    for name in ("model.keras", "vocab.txt"):
        (tmp_path / name).write_bytes((FORMAT1 / name).read_bytes())
    (tmp_path / model_folder.SETTINGS_FILE).write_text(json.dumps({"format": model_folder.FORMAT + 1}))
    with pytest.raises(UserError, match=f"format {model_folder.FORMAT + 1}; this code reads up to"):
        model_folder.ReviewClassifier.from_folder(tmp_path)

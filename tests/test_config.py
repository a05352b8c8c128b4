"""Config: conf/ is the single source of truth, params.yaml its composition, errors are one line."""

from __future__ import annotations

import pytest
import yaml

from src import config
from src.errors import UserError
from tests.conftest import PROJECT, run_module


def flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def test_params_yaml_is_the_composition_of_conf():
    committed = yaml.safe_load((PROJECT / "params.yaml").read_text())
    assert committed == config.compose().to_dict(), "params.yaml is stale: run `python -m src.config`"


def test_lecture12_is_the_lectures_recipe():
    cfg = config.compose(["experiment=lecture12"])
    assert (cfg.data.num_words, cfg.data.maxlen, cfg.data.padding, cfg.data.truncating) == (10000, 200, "pre", "pre")
    assert (cfg.model.embedding_dim, cfg.model.units, cfg.model.dropout, cfg.model.bidirectional) == (128, 128, 0.0, False)
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.learning_rate) == (64, 3, 0.001)
    assert (cfg.train.patience, cfg.train.clipnorm) == (0, None), "the lecture neither stops early nor clips"
    assert cfg.train.ensemble == 1, "the lecture trains one model"


@pytest.mark.parametrize("preset", sorted(p.stem for p in (PROJECT / "experiments").glob("*.yaml")))
def test_presets_hold_only_what_differs_from_the_defaults(preset):
    defaults = flatten(config.compose().to_dict())
    text = (PROJECT / "experiments" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_"), "presets override from the config root"
    for key, value in flatten(yaml.safe_load(text) or {}).items():
        assert key in defaults, f"{preset} sets unknown key {key}"
        assert defaults[key] != value, f"{preset} repeats the default {key}={value}"


def test_overrides_reach_the_config():
    cfg = config.compose(["model.units=64", "data.maxlen=300", "model.bidirectional=true"])
    assert (cfg.model.units, cfg.data.maxlen, cfg.model.bidirectional) == (64, 300, True)


@pytest.mark.parametrize("override, message", [
    ("model.units=0", "model.units must be > 0"),
    ("model.dropout=1.0", "model.dropout must be in [0, 1)"),
    ("model.dropout=-0.1", "model.dropout must be in [0, 1)"),
    ("data.maxlen=0", "data.maxlen must be > 0"),
    ("data.num_words=2", "data.num_words must be >= 3"),
    ("data.val_fraction=0", "data.val_fraction must be in (0, 1)"),
    ("data.val_fraction=1.0", "data.val_fraction must be in (0, 1)"),
    ("data.padding=middle", "data.padding must be 'pre' or 'post'"),
    ("data.sha256=abc", "data.sha256 must be 64 hex digits"),
    ("train.epochs=0", "train.epochs must be > 0"),
    ("train.batch_size=-1", "train.batch_size must be > 0"),
    ("train.learning_rate=0", "train.learning_rate must be > 0"),
    ("train.clipnorm=0", "train.clipnorm must be > 0 or null"),
    ("model.units=many", "model.units"),
    ("model.unitz=3", "Could not override 'model.unitz'"),
    ("+model.unitz=3", "unitz"),
    ("experiment=nope", "experiment/nope"),
])
def test_invalid_config_is_one_clear_error(override, message):
    with pytest.raises(UserError, match=None) as err:
        config.compose([override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_train_command_stops_on_bad_config_with_one_line_before_any_work(tmp_path):
    result = run_module("src.train", "model.units=0", f"paths.model={tmp_path / 'models'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: invalid config: model.units must be > 0, got 0"]
    assert not (tmp_path / "models").exists()


def test_params_file_with_unknown_key_is_refused(tmp_path):
    params = config.compose().to_dict()
    params["model"]["layers"] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = run_module("src.pad", "--params", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid config: model.layers: Key 'layers' not in 'ModelConfig'"]


def test_missing_params_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="not found: run `python -m src.config`"):
        config.load(tmp_path / "absent.yaml")

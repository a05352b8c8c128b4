"""Config: conf/ is the single source of truth, params.yaml its composition, errors are one line."""

from __future__ import annotations

import pytest
import yaml

from src.lib import config
from src.lib.errors import UserError
from tests.conftest import PROJECT, run_main, run_module


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
    assert (cfg.model.embedding_dim, cfg.model.units, cfg.model.dropout, cfg.model.bidirectional) == (
        128,
        128,
        0.0,
        False,
    )
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.learning_rate) == (64, 3, 0.001)
    assert (cfg.train.patience, cfg.train.clipnorm) == (0, None), "the lecture neither stops early nor clips"
    assert (cfg.train.ensemble, cfg.train.adversarial) == (1, "none"), "the lecture trains one model, plainly"
    assert (cfg.model.pooling, cfg.pretrain.method) == ("last", "none"), "the last state, a random Embedding"


@pytest.mark.parametrize("preset", sorted(p.stem for p in (PROJECT / "experiments").glob("*.yaml")))
def test_presets_hold_only_what_differs_from_the_defaults(preset):
    defaults = flatten(config.compose().to_dict())
    text = (PROJECT / "experiments" / f"{preset}.yaml").read_text()
    assert text.startswith("# @package _global_"), "presets override from the config root"
    for key, value in flatten(yaml.safe_load(text) or {}).items():
        assert key in defaults, f"{preset} sets unknown key {key}"
        assert defaults[key] != value, f"{preset} repeats the default {key}={value}"


def test_overrides_reach_the_config():
    defaults = config.compose()
    cfg = config.compose(["model.units=48", "data.maxlen=300", "model.bidirectional=false"])
    assert (defaults.model.units, defaults.data.maxlen, defaults.model.bidirectional) != (48, 300, False)
    for value in ((cfg.model.units, 48), (cfg.data.maxlen, 300), (cfg.model.bidirectional, False)):
        assert value[0] == value[1]
    assert (defaults.model.units, defaults.data.maxlen, defaults.model.bidirectional) == (64, 500, True), (
        "each override above must change a default"
    )


@pytest.mark.parametrize(
    "override, message",
    [
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
    ],
)
def test_invalid_config_is_one_clear_error(override, message):
    with pytest.raises(UserError, match=None) as err:
        config.compose([override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def with_settings(settings: str) -> dict:
    """The default composition as a plain dict, with `key=value` settings ('; '-separated,
    values in YAML) replacing whole values, as a params.yaml or a preset can."""
    raw = config.compose().to_dict()
    for setting in settings.split("; "):
        key, value = setting.split("=", 1)
        *parents, name = key.split(".")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[name] = yaml.safe_load(value)
    return raw


@pytest.mark.parametrize(
    "settings, message",
    [
        ("model.embedding_dim=0", "model.embedding_dim must be > 0"),
        ("model.pooling=sum", "model.pooling must be 'last', 'mean' or 'max'"),
        ("data.truncating=middle", "data.truncating must be 'pre' or 'post'"),
        ("data.val_split=alphabetical", "data.val_split must be"),
        ("train.word_dropout=1.0", "train.word_dropout must be in [0, 1)"),
        ("train.lr_schedule=linear", "train.lr_schedule must be 'constant' or 'cosine'"),
        ("pretrain.lm_window=1", "pretrain.lm_window >= 2"),
        ("pretrain.method=elmo", "pretrain.method must be one of none, word2vec, lm"),
        ("train.patience=-1", "train.patience must be >= 0"),
        ("train.ensemble=0", "train.ensemble must be >= 1"),
        ("train.eval_batch_size=0", "train.eval_batch_size must be > 0"),
        ("train.length_step=0", "train.length_step must be > 0"),
        ("tracking.experiment=''", "tracking.experiment must be a non-empty name"),
        # Rules across fields: each names the setting it needs, whatever the defaults are.
        (
            "model.pooling=max; model.mask_padding=false; train.bucket_by_length=false",
            "model.pooling=max needs model.mask_padding=true",
        ),
        ("model.mask_padding=true; data.padding=pre", "model.mask_padding needs data.padding=post"),
        (
            "train.bucket_by_length=true; model.mask_padding=false; model.pooling=last",
            "train.bucket_by_length needs model.mask_padding=true",
        ),
        # The sweep's settings.
        ("sweep.n_trials=0", "sweep.n_trials must be > 0"),
        ("sweep.worker=-1", "sweep.worker must be >= 0"),
        ("sweep.pruner=sometimes", "sweep.pruner must be one of median, hyperband, halving, none"),
        ("sweep.train_fraction=0", "sweep.train_fraction must be in (0, 1]"),
        ("sweep.train_fraction=1.5", "sweep.train_fraction must be in (0, 1]"),
        ("sweep.epochs=0", "sweep.epochs must be > 0"),
        ("sweep.stale_trial_seconds=2", "sweep.stale_trial_seconds must be >= 3"),
        ("sweep.study_name=''", "sweep.study_name must be a non-empty name"),
        ("sweep.space={}", "sweep.space must name at least one dimension"),
    ],
)
def test_every_config_rule_is_one_clear_error(settings, message):
    with pytest.raises(UserError) as err:
        config.validate(with_settings(settings))
    assert str(err.value).startswith("invalid config: ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_settings_that_break_no_rule_pass():
    # The helper itself breaks nothing: each case above fails for its own setting.
    assert (
        config.validate(with_settings("model.units=48; sweep.space.model.units={low: 8, high: 16}")).model.units == 48
    )


def test_train_command_stops_on_bad_config_with_one_line_before_any_work(tmp_path):
    result = run_module("src.stages.train", "model.units=0", f"paths.model={tmp_path / 'models'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: invalid config: model.units must be > 0, got 0"]
    assert not (tmp_path / "models").exists()


def test_params_file_with_unknown_key_is_refused(tmp_path):
    params = config.compose().to_dict()
    params["model"]["layers"] = 2
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = run_module("src.stages.pad", "--params", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid config: model.layers: Key 'layers' not in 'ModelConfig'"
    ]


def test_missing_params_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="not found: run `python -m src.config`"):
        config.load(tmp_path / "absent.yaml")


COMPOSED_COMMANDS = [
    "src.stages.download",
    "src.stages.tokenize",
    "src.stages.pad",
    "src.stages.pretrain",
    "src.stages.train",
    "src.stages.evaluate",
    "src.stages.baseline",
    "src.stages.blend",
    "src.sweep",
    "src.config",
]


@pytest.mark.parametrize("module", COMPOSED_COMMANDS)
def test_every_command_on_conf_answers_help_and_cfg_job(module):
    import importlib

    shown = run_main(module, "--help")
    first_line = importlib.import_module(module).__doc__.strip().splitlines()[0]
    assert shown.returncode == 0 and shown.stdout.startswith(first_line), shown.stdout
    assert "config groups: baseline, blend, data, model, pretrain, sweep, tracking, train" in shown.stdout
    assert "example:" in shown.stdout
    printed = run_main(module, "--cfg", "job", "experiment=lecture12", "model.units=7")
    assert printed.returncode == 0
    assert yaml.safe_load(printed.stdout) == config.compose(["experiment=lecture12", "model.units=7"]).to_dict()


@pytest.mark.parametrize("argv", [["model.units=32,64"], ["-m", "model.units=32"]])
def test_a_multirun_value_is_refused_in_one_line_pointing_at_the_sweep(argv):
    refused = run_main("src.stages.train", *argv)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "python -m src.sweep" in refused.stderr and "dvc exp run --queue" in refused.stderr

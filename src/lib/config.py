"""The one place that composes and validates configuration.

Two sources, one validated `Config` out:
  * `compose(overrides)` composes conf/ (+ an experiment preset + Hydra overrides);
  * `load(path)` reads params.yaml, the composed config DVC tracks (`dvc exp run -S ...`
    rewrites it), checked against conf/ for a DVC stage (`load_for_stage`).
Every command reaches them one way, `from_argv` (`--params FILE` or overrides, `--help`,
`--cfg job`); a command with options of its own parses them with argparse (`add_arguments`)
and hands them to `from_argv` through `from_args`.

The dataclasses below are the schema: types only. Defaults live in conf/, once each.
`python -m src.config [overrides]` (src/config.py) writes params.yaml from conf/ and records
the overrides in it; `load_for_stage` refuses a params.yaml that conf/ as it stands no longer composes to,
since DVC itself never re-reads conf/ on `dvc repro`.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from src.lib.errors import UserError, first_line

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
PARAMS_FILE = "params.yaml"


@dataclass
class DataConfig:
    url: str
    sha256: str
    num_words: int
    val_fraction: float
    val_split: str
    split_seed: int
    maxlen: int
    padding: str
    truncating: str


@dataclass
class ModelConfig:
    embedding_dim: int
    units: int
    dropout: float
    bidirectional: bool
    mask_padding: bool
    pooling: str


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    learning_rate: float
    lr_schedule: str
    clipnorm: float | None
    word_dropout: float
    seed: int
    patience: int
    refit: bool
    ensemble: int
    eval_batch_size: int
    bucket_by_length: bool
    length_step: int
    jit_compile: bool
    deterministic: bool
    adversarial: str
    adversarial_epsilon: float
    vat_xi: float
    vat_unlabeled_ratio: float
    teacher: str  # none | blend (src.lib.distillation)
    teacher_folds: int
    teacher_epochs: int
    teacher_weight: float
    teacher_unlabeled: float
    teacher_temperature: float
    teacher_start: bool


@dataclass
class TrackingConfig:
    experiment: str
    run_name: str | None
    registered_model: str | None
    system_metrics: bool


@dataclass
class SweepConfig:
    n_trials: int
    study_name: str
    storage: str | None
    worker: int
    pruner: str
    sampler_seed: int
    train_fraction: float
    epochs: int
    preset: str | None
    stale_trial_seconds: int
    baseline: bool
    space: dict[str, dict[str, Any]]  # section -> key -> Dimension fields: src.lib.search_space checks them


@dataclass
class PretrainConfig:
    method: str  # none | word2vec
    unlabeled: bool
    epochs: int
    window: int
    min_count: int
    seed: int
    lm_epochs: int
    lm_window: int
    lm_output_words: int


@dataclass
class BaselineConfig:
    method: str  # nblr | tfidf
    ngram_max: int
    min_df: int
    sublinear_tf: bool
    nb_alpha: float
    C: float


@dataclass
class BlendConfig:
    weight_step: float


@dataclass
class PathsConfig:
    raw: str
    tokens: str
    padded: str
    pretrained: str
    model: str
    reports: str


@dataclass
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    tracking: TrackingConfig
    sweep: SweepConfig
    pretrain: PretrainConfig
    baseline: BaselineConfig
    blend: BlendConfig
    paths: PathsConfig

    def to_dict(self) -> dict:
        return asdict(self)


def _checks(cfg: Config) -> list[tuple[bool, str]]:
    """(is_valid, message) for every value constraint the code relies on."""
    d, m, t, sw = cfg.data, cfg.model, cfg.train, cfg.sweep
    return [
        (d.num_words >= 3, f"data.num_words must be >= 3 (padding, unknown, and at least one word), got {d.num_words}"),
        (0 < d.val_fraction < 1, f"data.val_fraction must be in (0, 1), got {d.val_fraction}"),
        (
            d.val_split in ("random", "contiguous", "movie"),
            f"data.val_split must be 'random', 'contiguous' or 'movie', got {d.val_split!r}",
        ),
        (d.maxlen > 0, f"data.maxlen must be > 0, got {d.maxlen}"),
        (d.padding in ("pre", "post"), f"data.padding must be 'pre' or 'post', got {d.padding!r}"),
        (d.truncating in ("pre", "post"), f"data.truncating must be 'pre' or 'post', got {d.truncating!r}"),
        (
            len(d.sha256) == 64 and all(c in "0123456789abcdef" for c in d.sha256.lower()),
            f"data.sha256 must be 64 hex digits, got {d.sha256!r}",
        ),
        (m.embedding_dim > 0, f"model.embedding_dim must be > 0, got {m.embedding_dim}"),
        (m.units > 0, f"model.units must be > 0, got {m.units}"),
        (0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}"),
        (m.pooling in ("last", "mean", "max"), f"model.pooling must be 'last', 'mean' or 'max', got {m.pooling!r}"),
        (
            m.pooling == "last" or m.mask_padding,
            f"model.pooling={m.pooling} needs model.mask_padding=true (else padding steps enter the pooling)",
        ),
        (t.epochs > 0, f"train.epochs must be > 0, got {t.epochs}"),
        (t.batch_size > 0, f"train.batch_size must be > 0, got {t.batch_size}"),
        (t.learning_rate > 0, f"train.learning_rate must be > 0, got {t.learning_rate}"),
        (
            t.lr_schedule in ("constant", "cosine"),
            f"train.lr_schedule must be 'constant' or 'cosine', got {t.lr_schedule!r}",
        ),
        (t.clipnorm is None or t.clipnorm > 0, f"train.clipnorm must be > 0 or null (no clipping), got {t.clipnorm}"),
        (0 <= t.word_dropout < 1, f"train.word_dropout must be in [0, 1), got {t.word_dropout}"),
        (t.patience >= 0, f"train.patience must be >= 0 (0 turns early stopping off), got {t.patience}"),
        (t.ensemble >= 1, f"train.ensemble must be >= 1 (the number of models averaged), got {t.ensemble}"),
        (t.eval_batch_size > 0, f"train.eval_batch_size must be > 0, got {t.eval_batch_size}"),
        (
            not m.mask_padding or d.padding == "post",
            "model.mask_padding needs data.padding=post (a masked LSTM runs on cuDNN only with right padding)",
        ),
        (
            not t.bucket_by_length or m.mask_padding,
            "train.bucket_by_length needs model.mask_padding=true (else a review's score depends on its batch)",
        ),
        (
            t.adversarial in ADVERSARIAL,
            f"train.adversarial must be one of {', '.join(ADVERSARIAL)}, got {t.adversarial!r}",
        ),
        (t.adversarial_epsilon > 0, f"train.adversarial_epsilon must be > 0, got {t.adversarial_epsilon}"),
        (t.vat_xi > 0, f"train.vat_xi must be > 0, got {t.vat_xi}"),
        (t.vat_unlabeled_ratio > 0, f"train.vat_unlabeled_ratio must be > 0, got {t.vat_unlabeled_ratio}"),
        (
            t.adversarial != "vat" or m.mask_padding,
            "train.adversarial=vat needs model.mask_padding=true (a batch joins reviews of other lengths)",
        ),
        (t.length_step > 0, f"train.length_step must be > 0, got {t.length_step}"),
        (t.teacher in TEACHERS, f"train.teacher must be one of {', '.join(TEACHERS)}, got {t.teacher!r}"),
        (t.teacher_folds >= 1, f"train.teacher_folds must be >= 1, got {t.teacher_folds}"),
        (t.teacher_epochs > 0, f"train.teacher_epochs must be > 0, got {t.teacher_epochs}"),
        (0 <= t.teacher_weight <= 1, f"train.teacher_weight must be in [0, 1], got {t.teacher_weight}"),
        (0 <= t.teacher_unlabeled <= 1, f"train.teacher_unlabeled must be in [0, 1], got {t.teacher_unlabeled}"),
        (t.teacher_temperature > 0, f"train.teacher_temperature must be > 0, got {t.teacher_temperature}"),
        (
            t.teacher == "none" or t.teacher_weight == 0 or t.teacher_folds >= 2,
            "train.teacher_weight > 0 needs train.teacher_folds >= 2: a teacher's probability on a labeled "
            "review must come from a model that did not train on it",
        ),
        (
            t.teacher == "none" or t.teacher_weight > 0 or t.teacher_unlabeled > 0,
            "train.teacher=blend with train.teacher_weight=0 and train.teacher_unlabeled=0 teaches nothing",
        ),
        (
            not t.teacher_start or (t.teacher != "none" and t.teacher_folds == 1),
            "train.teacher_start needs train.teacher=blend and train.teacher_folds=1: the student starts "
            "from the one teacher LSTM, trained on every training review",
        ),
        (
            t.teacher == "none" or t.adversarial != "vat",
            "train.teacher and train.adversarial=vat both read the unlabeled reviews: use train.adversarial=at",
        ),
        (bool(cfg.tracking.experiment), "tracking.experiment must be a non-empty name"),
        (sw.n_trials > 0, f"sweep.n_trials must be > 0, got {sw.n_trials}"),
        (sw.worker >= 0, f"sweep.worker must be >= 0, got {sw.worker}"),
        (sw.pruner in PRUNERS, f"sweep.pruner must be one of {', '.join(PRUNERS)}, got {sw.pruner!r}"),
        (0 < sw.train_fraction <= 1, f"sweep.train_fraction must be in (0, 1], got {sw.train_fraction}"),
        (sw.epochs > 0, f"sweep.epochs must be > 0, got {sw.epochs}"),
        (sw.stale_trial_seconds >= 3, f"sweep.stale_trial_seconds must be >= 3, got {sw.stale_trial_seconds}"),
        (bool(sw.study_name), "sweep.study_name must be a non-empty name"),
        (bool(sw.space), "sweep.space must name at least one dimension"),
        (
            cfg.pretrain.method in PRETRAIN_METHODS,
            f"pretrain.method must be one of {', '.join(PRETRAIN_METHODS)}, got {cfg.pretrain.method!r}",
        ),
        (
            cfg.pretrain.epochs > 0 and cfg.pretrain.window > 0 and cfg.pretrain.min_count > 0,
            "pretrain.epochs, pretrain.window and pretrain.min_count must be > 0",
        ),
        (
            cfg.pretrain.lm_epochs > 0 and cfg.pretrain.lm_window >= 2 and cfg.pretrain.lm_output_words >= 3,
            "pretrain.lm_epochs must be > 0, pretrain.lm_window >= 2 and pretrain.lm_output_words >= 3",
        ),
        (cfg.baseline.ngram_max >= 1, f"baseline.ngram_max must be >= 1, got {cfg.baseline.ngram_max}"),
        (cfg.baseline.min_df >= 1, f"baseline.min_df must be >= 1, got {cfg.baseline.min_df}"),
        (cfg.baseline.C > 0, f"baseline.C must be > 0, got {cfg.baseline.C}"),
        (
            cfg.baseline.method in BASELINE_METHODS,
            f"baseline.method must be one of {', '.join(BASELINE_METHODS)}, got {cfg.baseline.method!r}",
        ),
        (0 < cfg.blend.weight_step <= 1, f"blend.weight_step must be in (0, 1], got {cfg.blend.weight_step}"),
        (cfg.baseline.nb_alpha > 0, f"baseline.nb_alpha must be > 0, got {cfg.baseline.nb_alpha}"),
        (
            cfg.baseline.method != "nblr" or not cfg.baseline.sublinear_tf,
            "baseline.sublinear_tf is TF-IDF's: baseline.method=nblr uses binary n-grams (set it false)",
        ),
    ]


PRUNERS = ("median", "hyperband", "halving", "none")
PRETRAIN_METHODS = ("none", "word2vec", "lm")
BASELINE_METHODS = ("nblr", "tfidf")
ADVERSARIAL = ("none", "at", "vat")
TEACHERS = ("none", "blend")


def validate(raw: dict) -> Config:
    """Check a plain dict against the schema; raise UserError naming the first problem."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        merged = OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(raw))
        cfg = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        where = f"{exc.full_key}: " if getattr(exc, "full_key", None) else ""
        raise UserError(f"invalid config: {where}{first_line(exc)}") from None
    for ok, message in _checks(cfg):
        if not ok:
            raise UserError(f"invalid config: {message}")
    return cfg


def compose(overrides: list[str] = ()) -> Config:
    """Compose conf/ with Hydra overrides (e.g. ["experiment=lecture12", "model.units=64"])."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            composed = hydra_compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as exc:
        message = first_line(exc)
        if message.startswith("Could not override"):
            message += " No such key in conf/."
        raise UserError(f"invalid override: {message}") from None
    return validate(OmegaConf.to_container(composed, resolve=True))


def load(path: str | Path = PARAMS_FILE) -> Config:
    """Read and validate the composed config DVC tracks."""
    return _parse_params(path, _read_params(path))


def _read_params(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run `python -m src.config` to compose it from conf/")
    return path.read_text(encoding="utf-8")


def _parse_params(path: str | Path, text: str) -> Config:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {first_line(exc)}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a mapping of config sections")
    return validate(raw)


OVERRIDES_PREFIX = "# overrides: "  # a line of params.yaml: the overrides it was composed with, as JSON
EXPERIMENT_ENV = "DVC_EXP_NAME"  # set by `dvc exp run`, which composes params.yaml from conf/ first


def recorded_overrides(text: str) -> list[str] | None:
    """The overrides a params.yaml written by `python -m src.config` records; None if it records none."""
    for line in text.splitlines():
        if line.startswith(OVERRIDES_PREFIX):
            try:
                overrides = json.loads(line[len(OVERRIDES_PREFIX) :])
            except json.JSONDecodeError:
                return None
            return overrides if isinstance(overrides, list) and all(isinstance(o, str) for o in overrides) else None
    return None


def _first_difference(a: dict, b: dict, prefix: str = "") -> str | None:
    for key in [*a, *(k for k in b if k not in a)]:
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            found = _first_difference(x, y, f"{prefix}{key}.")
            if found:
                return found
        elif x != y:
            return f"{prefix}{key}"
    return None


def load_for_stage(path: str | Path = PARAMS_FILE) -> Config:
    """params.yaml for a DVC stage: read, validated, and checked to be what conf/ as it stands
    composes to with the overrides recorded in it, so that what DVC records as the stage's
    params is the configuration researchers see in conf/. Under `dvc exp run` DVC has just
    composed it from conf/ (writing no record), so it is taken as it is."""
    text = _read_params(path)
    cfg = _parse_params(path, text)
    overrides = recorded_overrides(text)
    if overrides is None:
        if os.environ.get(EXPERIMENT_ENV):
            return cfg
        raise UserError(
            f"{path} does not record the overrides it was composed with (edited by hand, or left by "
            "`dvc exp run`): regenerate it with `python -m src.config [overrides]`, or use `dvc exp run`"
        )
    current = compose(overrides)
    if current != cfg:
        key = _first_difference(cfg.to_dict(), current.to_dict())
        command_line = shlex.join(["python", "-m", "src.config", *overrides])
        raise UserError(
            f"{path} is stale: conf/ composed with its overrides {overrides} now gives a different {key} "
            f"(conf/ edited since, or {path} by hand): regenerate it with `{command_line}`"
        )
    return cfg


def from_argv(argv: list[str], usage: str = "", stage: bool = True) -> Config:
    """Config for a command line: `--params FILE` or Hydra overrides of conf/. A DVC stage's
    params file is checked against conf/ (load_for_stage); another command's is read as it is.

    It answers what a Hydra command line does: `--help` prints `usage` (the command's
    docstring), the config groups and presets and an example; `--cfg job` prints the composed
    config; both exit 0. A multirun value (`model.units=32,64`, `-m`) is refused in one line:
    sweeps are `python -m src.sweep`'s, or one queued DVC experiment per value."""
    if {"-h", "--help"} & set(argv):
        print(help_text(usage))
        raise SystemExit(0)
    if argv[:2] == ["--cfg", "job"]:
        print(yaml.safe_dump(from_argv(argv[2:], stage=stage).to_dict(), sort_keys=False), end="")
        raise SystemExit(0)
    if argv[:1] == ["--params"]:
        if len(argv) != 2:
            raise UserError("usage: --params FILE (no overrides: edit conf/ or use `dvc exp run -S`)")
        return load_for_stage(argv[1]) if stage else load(argv[1])
    _refuse_multirun(argv)
    return compose(argv)


def add_arguments(parser, overrides: bool = False) -> None:
    """A command's config options on its argparse parser: `--params FILE`, and with `overrides`
    Hydra overrides of conf/ and `--cfg job`; `from_args` turns them into the config."""
    parser.add_argument(
        "--params",
        metavar="FILE",
        help="a composed params.yaml to read"
        + (" instead of composing conf/" if overrides else f" (default: {PARAMS_FILE})"),
    )
    if overrides:
        parser.add_argument("--cfg", choices=["job"], help="print the composed config and exit")
        parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/, e.g. model.units=64")


def from_args(args) -> Config:
    """The config of a command's parsed arguments (add_arguments), read the one way: from_argv."""
    overrides = getattr(args, "overrides", None)
    if args.params and overrides:
        raise UserError("give --params FILE or overrides, not both (edit conf/ or use `dvc exp run -S`)")
    argv = (
        ["--params", args.params] if args.params else overrides if overrides is not None else ["--params", PARAMS_FILE]
    )
    return from_argv((["--cfg", "job"] if getattr(args, "cfg", None) else []) + argv, stage=False)


def _refuse_multirun(argv: list[str]) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if {"-m", "--multirun"} & set(argv):
        raise UserError(
            "-m/--multirun is not run here: sweep values with `python -m src.sweep`, or queue one DVC "
            "experiment per value (`dvc exp run --queue -S key=value`, then `dvc queue start`)"
        )
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
    except HydraException:
        return  # compose reports a malformed override in its own words
    for override in overrides:
        if override.is_sweep_override():
            raise UserError(
                f"{override.input_line} asks for several runs: sweep them with `python -m src.sweep` "
                f"(sweep.space.{override.key_or_group}), or queue one DVC experiment per value "
                f"(`dvc exp run --queue -S {override.key_or_group}=<value>`, then `dvc queue start`)"
            )


def help_text(usage: str) -> str:
    """`usage` and what every command line composed from conf/ takes."""
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "experiment")
    presets = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
    return "\n".join(
        [
            usage.strip(),
            "",
            "Overrides (Hydra syntax) of the config in conf/, one default per key:",
            f"  config groups: {', '.join(groups)} (conf/<group>/*.yaml; e.g. model.units=64)",
            f"  presets: experiment={{{','.join(presets)}}} (experiments/*.yaml)",
            "  --params FILE   read a composed params.yaml instead (what dvc.yaml runs)",
            "  --cfg job       print the composed config and exit",
            "example: experiment=lecture12 model.units=64 train.epochs=2",
        ]
    )


def to_yaml(cfg: Config, overrides: list[str] | None = None) -> str:
    """params.yaml's text; with `overrides`, it records them (what load_for_stage checks against)."""
    header = "# Generated from conf/ by `python -m src.config` (or `dvc exp run`). Do not edit by hand.\n"
    if overrides is not None:
        header += OVERRIDES_PREFIX + json.dumps(list(overrides)) + "\n"
    return header + yaml.safe_dump(cfg.to_dict(), sort_keys=False)

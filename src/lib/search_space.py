"""The sweep's search space: its dimensions (sweep.space in conf/sweep/), what makes one valid,
a trial's values, and the config as it stands as a point of the space (the baseline trial).

`cfg` is a src.lib.config.Config. The sweep checks its space here (`problems`) before any trial;
config validates everything else and never imports this module, so the data stages do not
depend on the sweep's code.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from src.lib.embeddings import SHAPED_BY


@dataclass
class Dimension:
    """One search dimension of the sweep. Defaults here (not in conf/) because a dimension
    names only what it needs: low/high (+ step, log) for numbers, or choices."""

    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None


def dimensions(cfg) -> dict[str, Dimension]:
    """The sweep's dimensions by dotted config key ("model.units"); `problems` found none wrong."""
    return {
        f"{section}.{key}": Dimension(**dim)
        for section, dimensions in cfg.sweep.space.items()
        for key, dim in (dimensions or {}).items()
    }


TUNABLE_SECTIONS = ("data", "model", "train")


def problems(cfg, vocabulary_size: int | None = None) -> list[str]:
    """What is wrong with the sweep's search space, one message per dimension at most; with the
    tokenize stage's vocabulary size, also a data.num_words range reaching past it, and a varied
    key whose value shapes the pretrained weights (fixed once the pretrain stage ran)."""
    found = [
        f"sweep.space.{key} cannot vary with pretrain.method={cfg.pretrain.method}: the pretrained weights "
        f"have one shape; drop it ('~sweep.space.{key}')"
        for key in SHAPED_BY.get(cfg.pretrain.method, ())
        if key in _named(cfg)
    ]
    for section, dimensions in cfg.sweep.space.items():
        for key, fields_ in (dimensions or {}).items():
            name = f"sweep.space.{section}.{key}"
            try:
                dim = Dimension(**fields_)
            except TypeError:
                found.append(f"{name}: a dimension takes low, high, step, log or choices, got {fields_}")
                continue
            group = getattr(cfg, section, None) if section in TUNABLE_SECTIONS else None
            if group is None or key not in {f.name for f in fields(group)}:
                found.append(f"{name}: unknown parameter {section}.{key} (not a key of conf/{section})")
                continue
            kind = type(getattr(group, key))
            if dim.choices is not None:
                if not dim.choices or dim.low is not None or dim.high is not None:
                    found.append(f"{name}: choices must be a non-empty list, without low/high")
            elif dim.low is None or dim.high is None:
                found.append(f"{name}: give low and high (or choices)")
            elif kind not in (int, float):
                found.append(f"{name}: {section}.{key} is not a number; give choices")
            elif not dim.low < dim.high:
                found.append(f"{name}: empty or inverted range: low {dim.low} must be < high {dim.high}")
            elif kind is int and not all(float(v).is_integer() for v in (dim.low, dim.high, dim.step or 1)):
                found.append(f"{name}: {section}.{key} is an integer; low, high and step must be integers")
            elif dim.log and (dim.low <= 0 or dim.step is not None):
                found.append(f"{name}: a log range needs low > 0 and no step")
            elif dim.step is not None and dim.step <= 0:
                found.append(f"{name}: step must be > 0")
    words = (cfg.sweep.space.get("data") or {}).get("num_words")
    reach = max(words.get("choices") or [words["high"]]) if words and not found else None
    if reach is not None and vocabulary_size is not None and reach > vocabulary_size:
        found.append(
            f"sweep.space.data.num_words reaches {reach} but the tokenize stage's vocabulary has "
            f"{vocabulary_size} ids: re-run that stage with a larger data.num_words"
        )
    return found


def _named(cfg) -> set[str]:
    return {f"{section}.{key}" for section, dimensions in cfg.sweep.space.items() for key in (dimensions or {})}


def baseline_point(cfg) -> tuple[dict, str | None]:
    """The command's config as a point of the search space: (values, None), or ({}, why not)
    when a value lies outside the space (e.g. the default embedding width above a lowered high)."""
    values = {}
    for key, dim in dimensions(cfg).items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if dim.choices is not None:
            fits = value in dim.choices
        else:
            steps = (value - dim.low) / dim.step if dim.step else 0
            fits = dim.low <= value <= dim.high and abs(steps - round(steps)) < 1e-9
        if not fits:
            return {}, f"{key}={value} is outside the search space"
        values[key] = value
    return values, None


def suggest(trial, cfg) -> dict:
    """The trial's value for every dimension, by dotted config key."""
    values = {}
    for key, dim in dimensions(cfg).items():
        section, name = key.split(".")
        kind = type(getattr(getattr(cfg, section), name))
        if dim.choices is not None:
            values[key] = trial.suggest_categorical(key, list(dim.choices))
        elif kind is int:
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), step=int(dim.step or 1), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, step=dim.step, log=dim.log)
    return values

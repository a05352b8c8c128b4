"""The same configuration trained with several seeds: how much of a difference is seed noise?

    python -m src.repeat                         # the default config, 3 seeds
    python -m src.repeat --seeds 5 experiment=lecture12

Each repeat trains and evaluates one model as a child MLflow run under one parent run, repeat k
with train.seed + k * train.ensemble (an ensemble's members take consecutive seeds, so repeats
share none). The parent gets the mean and standard deviation of validation and test accuracy;
the children are registered nowhere and leave the pipeline's models/ and reports/ alone.
The printed run ids are a side of `python -m src.compare A1,A2,A3 B1,B2,B3`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np

from src.lib import config, data, evaluation, tracked, tracking
from src.lib.errors import UserError, command


def repeat(cfg: config.Config, seeds: int, overrides: list[str] = ()) -> dict:
    """Train and evaluate `seeds` repeats under one parent run; return its id, the children's
    ids and their accuracies."""
    children, val, test = [], [], []
    train_split, val_split, test_split = (data.load(cfg, split) for split in data.SPLITS)
    with tracking.parent_run(
        cfg,
        cfg.tracking.run_name or f"repeat-{seeds}-seeds",
        {"repeat.seeds": str(seeds), "repeat.overrides": " ".join(overrides)},
    ) as parent:
        for k in range(seeds):
            seed = cfg.train.seed + k * cfg.train.ensemble  # an ensemble's members take seeds seed..seed+ensemble-1
            repeat_cfg = replace(
                cfg,
                train=replace(cfg.train, seed=seed),
                tracking=replace(cfg.tracking, run_name=f"repeat-{k}-seed-{seed}"),
            )
            with tracked.fit(
                repeat_cfg, train_split, val_split, test_split, parent_run_id=parent, tags={"repeat.index": str(k)}
            ) as (run_id, fitted):
                metrics, _, _ = evaluation.score_test(repeat_cfg, fitted.model, test_split)
            children.append(run_id)
            val.append(fitted.best_val_accuracy)
            test.append(metrics["accuracy"])
            print(f"repeat {k}: seed {seed}, val {val[-1]:.4f}, test {test[-1]:.4f} (run {children[-1]})", flush=True)
        summary = {
            "val_accuracy_mean": float(np.mean(val)),
            "val_accuracy_sd": float(np.std(val, ddof=1)),
            "test_accuracy_mean": float(np.mean(test)),
            "test_accuracy_sd": float(np.std(test, ddof=1)),
        }
        tracking.log_to_run(parent, metrics=summary, tags={"repeat.children": ",".join(children)})
    return {"parent_run_id": parent, "children": children, "val": val, "test": test} | summary


def _parse(argv: list[str]):
    parser = argparse.ArgumentParser(
        prog="python -m src.repeat",
        description=__doc__.splitlines()[0],
        epilog="example: python -m src.repeat --seeds 3 experiment=lecture12",
    )
    parser.add_argument("--seeds", type=int, default=3, help="how many repeats (>= 2), default 3")
    config.add_arguments(parser, overrides=True)
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> None:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.seeds < 2:
        raise UserError(f"--seeds must be >= 2 for a standard deviation, got {args.seeds}")
    cfg = config.from_args(args)
    result = repeat(cfg, args.seeds, args.overrides)
    print(
        f"val accuracy {result['val_accuracy_mean']:.4f} +- {result['val_accuracy_sd']:.4f}, "
        f"test accuracy {result['test_accuracy_mean']:.4f} +- {result['test_accuracy_sd']:.4f} "
        f"over {args.seeds} seeds (parent run {result['parent_run_id']})"
    )
    print(f"runs: {','.join(result['children'])}")


if __name__ == "__main__":
    main()

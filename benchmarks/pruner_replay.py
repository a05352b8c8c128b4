"""Each pruner replayed on the learning curves of an unpruned study: pruning's worth in seconds.

    python benchmarks/pruner_replay.py                        # the latest unpruned study of sweep_pruning.py
    python benchmarks/pruner_replay.py --study none-20261126013505

An unpruned study records every trial's validation accuracy after every epoch. Training is
deterministic (same params, same seed, same curve), so a pruner's decisions on those curves are
the decisions it would take in a real study, as long as the sampler draws the same params: true
for the TPE sampler's random start-up trials (the first 10), an approximation after them (pruned
trials then change what TPE samples). For each of the sweep's pruners (src.sweep.make_pruner)
prints the epochs it would train, their seconds (each epoch costs its trial's mean epoch time
in the unpruned study: a pruned large model saves more than a pruned small one) and the best
validation accuracy it would keep, and writes
benchmarks/results/pruner_replay-<study>.json. Hyperband puts each trial in a bracket by a hash
of the study's name and the trial number, so its outcome depends on the name: every pruner is
replayed under 25 study names and the median and worst case reported. `--variants` adds other
settings of Optuna's pruners (VARIANTS below), to see whether another setting would do better.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import write_results  # noqa: E402
from sweep_pruning import PRUNERS  # noqa: E402
from train_speed import WORK  # noqa: E402

from src.sweep import make_pruner  # noqa: E402

REPLAY_NAMES = 25


def variants(max_epochs: int) -> dict:
    """Pruner settings other than the sweep's own, by name: first judgement after epoch 1 or 2,
    keeping a third, a half, or the better 60-67%."""
    import optuna

    pruners = optuna.pruners
    return {
        "halving min 1, keep 1/3": lambda: pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
        "halving min 2, keep 1/3": lambda: pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=3),
        "halving min 2, keep 1/2": lambda: pruners.SuccessiveHalvingPruner(min_resource=2, reduction_factor=2),
        "hyperband min 2": lambda: pruners.HyperbandPruner(min_resource=2, max_resource=max_epochs),
        "median warm-up 2, 1 start-up": lambda: pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=2),
        "percentile 33 warm-up 2": lambda: pruners.PercentilePruner(33.0, n_startup_trials=2, n_warmup_steps=2),
    }


def replay(curves: list[list[float]], epoch_seconds: list[float], pruner, study_name: str) -> dict:
    import optuna

    study = optuna.create_study(study_name=study_name, direction="maximize", pruner=pruner)  # in memory
    epochs, seconds, best, pruned = 0, 0.0, None, 0
    for curve, per_epoch in zip(curves, epoch_seconds):
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):
            trial.report(value, epoch)
            epochs += 1
            seconds += per_epoch
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned += 1
                break
        else:
            study.tell(trial, max(curve))  # the sweep's objective: the trial's best epoch
            best = max(curve) if best is None else max(best, max(curve))
    return {"epochs_trained": epochs, "seconds": seconds, "pruned": pruned, "best_val_accuracy": round(best, 4)}


def main() -> None:
    import optuna

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=f"sqlite:///{WORK / 'sweep' / 'optuna.db'}")
    parser.add_argument("--study", help="an unpruned study (default: the latest none-* study in --storage)")
    parser.add_argument("--variants", action="store_true", help="also replay the settings in VARIANTS")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)

    names = sorted(n for n in optuna.get_all_study_names(args.storage) if n.startswith("none-"))
    name = args.study or (names[-1] if names else sys.exit(f"no unpruned study in {args.storage}"))
    trials = [
        t
        for t in optuna.load_study(study_name=name, storage=args.storage).get_trials()
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    curves = [[t.intermediate_values[step] for step in sorted(t.intermediate_values)] for t in trials]
    epoch_seconds = [t.duration.total_seconds() / len(curve) for t, curve in zip(trials, curves)]
    max_epochs = max(len(curve) for curve in curves)
    unpruned = {
        "epochs_trained": sum(map(len, curves)),
        "seconds": sum(t.duration.total_seconds() for t in trials),
        "pruned": 0,
        "best_val_accuracy": round(max(max(curve) for curve in curves), 4),
    }
    results = {"none": unpruned}
    pruners = {kind: lambda kind=kind: make_pruner(SimpleNamespace(pruner=kind, epochs=max_epochs)) for kind in PRUNERS}
    if args.variants:
        pruners |= variants(max_epochs)
    for kind, make in pruners.items():
        runs = [replay(curves, epoch_seconds, make(), f"{kind}-replay-{i}") for i in range(REPLAY_NAMES)]
        epochs = sorted(r["epochs_trained"] for r in runs)
        seconds = sorted(r["seconds"] for r in runs)
        bests = sorted(r["best_val_accuracy"] for r in runs)
        results[kind] = {
            "epochs_trained_median": epochs[len(epochs) // 2],
            "epochs_trained_max": epochs[-1],
            "epochs_ratio_median": round(epochs[len(epochs) // 2] / unpruned["epochs_trained"], 2),
            "seconds_ratio_median": round(seconds[len(seconds) // 2] / unpruned["seconds"], 2),
            "seconds_ratio_worst": round(seconds[-1] / unpruned["seconds"], 2),
            "best_val_accuracy_median": bests[len(bests) // 2],
            "best_val_accuracy_worst": bests[0],
            "best_val_accuracy_diff_median": round(bests[len(bests) // 2] - unpruned["best_val_accuracy"], 4),
            "best_val_accuracy_diff_worst": round(bests[0] - unpruned["best_val_accuracy"], 4),
        }

    print(
        f"replayed on study {name}: {len(curves)} trials, at most {max_epochs} epochs each, "
        f"best val accuracy {unpruned['best_val_accuracy']} in {unpruned['epochs_trained']} epochs unpruned; "
        f"median (worst) over {REPLAY_NAMES} study names"
    )
    width = max(map(len, pruners))
    print(
        f"{'pruner':<{width}} {'epochs':>10} {'x none':>6} {'seconds x none':>14} {'best val':>16} {'diff (points)':>15}"
    )
    for kind in pruners:
        r = results[kind]
        print(
            f"{kind:<{width}} {r['epochs_trained_median']:>4} ({r['epochs_trained_max']:>3}) {r['epochs_ratio_median']:>6} "
            f"{r['seconds_ratio_median']:>6} ({r['seconds_ratio_worst']:>4}) "
            f"{r['best_val_accuracy_median']:>7} ({r['best_val_accuracy_worst']}) "
            f"{100 * r['best_val_accuracy_diff_median']:>+6.2f} ({100 * r['best_val_accuracy_diff_worst']:+.2f})"
        )
    out = write_results(
        f"pruner_replay-{name}",
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "study": name,
            "trials": len(curves),
            "max_epochs": max_epochs,
            "results": results,
        },
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Pruning's worth on the real data: the same study with and without a pruner.

    python benchmarks/sweep_pruning.py                                   # 12 trials, 25% of train, 3 epochs
    python benchmarks/sweep_pruning.py --trials 20 --pruners hyperband,halving sweep.train_fraction=0.5
    python benchmarks/sweep_pruning.py --trials 20 --epochs 5 --fraction 0.2 --pruners halving --resume 20261126013505
    python benchmarks/sweep_pruning.py --trials 20 --epochs 5 --fraction 0.2 --pruners halving --unpruned none-20261126013505

Runs `python -m src.sweep` with the same sampler seed and trial budget, first with
`sweep.pruner=none`, then with each chosen pruner, each in its own study (stores in
benchmarks/.work/sweep/), one after the other. Reports, for each: epochs trained, CPU seconds
(the compute: user + system time of the sweep process, less disturbed than wall time by other
work on a shared machine), wall time and the best validation accuracy; writes
benchmarks/results/sweep_pruning-<pruners>.json. Uses the token ids made by
benchmarks/train_speed.py (made here if missing).

--resume STAMP continues the studies `<pruner>-STAMP` of an earlier run up to --trials (the sweep
resumes a study; give the same --epochs, --fraction and --seed). Epochs, trial seconds (the
sum of every trial's duration, kept in the study) and the best value then cover the whole
study; CPU seconds only this run's part. --unpruned STUDY compares the pruners with an
unpruned study already in the store (e.g. one extended by --resume) instead of running one.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, write_results  # noqa: E402
from train_speed import WORK, prepare_tokens  # noqa: E402

from src.lib.config import PRUNERS as SWEEP_PRUNERS  # noqa: E402

PRUNERS = tuple(p for p in SWEEP_PRUNERS if p != "none")  # "none" is the baseline every run has


def run_study(name: str, pruner: str, args, tokens: Path, work: Path, storage: str) -> dict:
    overrides = [
        f"paths.tokens={tokens}",
        f"paths.padded={work / 'padded'}",
        f"paths.model={work / 'models'}",
        f"paths.reports={work / 'reports'}",
        f"sweep.study_name={name}",
        f"sweep.storage={storage}",
        f"sweep.pruner={pruner}",
        f"sweep.n_trials={args.trials}",
        f"sweep.epochs={args.epochs}",
        f"sweep.sampler_seed={args.seed}",
        f"sweep.train_fraction={args.fraction}",
        f"sweep.preset=bench-{name}",
        *args.overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    started, cpu_before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "src.sweep", *overrides], cwd=ROOT, env=env, check=True)
    seconds, cpu_after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    (ROOT / "experiments" / f"bench-{name}.yaml").unlink(missing_ok=True)  # a benchmark leaves no preset
    return {"wall_seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1)} | summarize(name, pruner, storage)


def summarize(name: str, pruner: str, storage: str) -> dict:
    """A study's figures as its store holds them (so they cover every run that added trials)."""
    import optuna

    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    return {
        "study": name,
        "pruner": pruner,
        "trial_seconds": round(sum(t.duration.total_seconds() for t in trials if t.duration), 1),
        "epochs_trained": sum(len(t.intermediate_values) for t in trials),
        "complete": sum(t.state.name == "COMPLETE" for t in trials),
        "pruned": sum(t.state.name == "PRUNED" for t in trials),
        "best_val_accuracy": round(study.best_value, 4),
        "best_params": study.best_params,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for both studies")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruners", default="median", help=f"comma-separated, of: {', '.join(PRUNERS)}")
    parser.add_argument("--resume", metavar="STAMP", help="continue the studies <pruner>-STAMP of an earlier run")
    parser.add_argument(
        "--unpruned",
        metavar="STUDY",
        help="an earlier unpruned study of --trials trials to compare with, instead of running one",
    )
    args = parser.parse_intermixed_args()
    pruners = args.pruners.split(",")
    if unknown := set(pruners) - set(PRUNERS):
        parser.error(f"unknown pruner(s): {', '.join(sorted(unknown))}")

    tokens = prepare_tokens(str(SHARED_ARCHIVE), SHARED_SHA256)
    work = WORK / "sweep"
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'optuna.db'}"
    stamp = args.resume or datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    if args.unpruned:
        results = {"none": summarize(args.unpruned, "none", storage)}
        if (finished := results["none"]["complete"] + results["none"]["pruned"]) != args.trials:
            parser.error(f"--unpruned {args.unpruned} has {finished} finished trials, not --trials {args.trials}")
    else:
        results = {"none": run_study(f"none-{stamp}", "none", args, tokens, work, storage)}
    results |= {kind: run_study(f"{kind}-{stamp}", kind, args, tokens, work, storage) for kind in pruners}
    unpruned = results["none"]
    whole_runs = not (args.resume or args.unpruned)  # else CPU and wall time cover only this run's part
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "trials": args.trials,
        "epochs_per_trial": args.epochs,
        "train_fraction": args.fraction,
        "sampler_seed": args.seed,
        "resumed": bool(args.resume),
        "unpruned_study": args.unpruned,
        "overrides": args.overrides,
        "studies": results,
        "pruned_vs_unpruned": {
            kind: {
                "epochs_ratio": round(results[kind]["epochs_trained"] / unpruned["epochs_trained"], 2),
                "trial_seconds_ratio": round(results[kind]["trial_seconds"] / unpruned["trial_seconds"], 2),
                "best_val_accuracy_diff": round(results[kind]["best_val_accuracy"] - unpruned["best_val_accuracy"], 4),
            }
            | (
                {
                    "cpu_time_ratio": round(results[kind]["cpu_seconds"] / unpruned["cpu_seconds"], 2),
                    "wall_time_ratio": round(results[kind]["wall_seconds"] / unpruned["wall_seconds"], 2),
                }
                if whole_runs
                else {}
            )
            for kind in pruners
        },
    }
    print(
        f"\n{'pruner':<10} {'epochs':>6} {'trial s':>7} {'cpu s':>7} {'wall s':>7} {'complete':>8} {'pruned':>6} "
        f"{'best val':>8}"
    )
    for r in results.values():
        print(
            f"{r['pruner']:<10} {r['epochs_trained']:>6} {r['trial_seconds']:>7} {r.get('cpu_seconds', '-'):>7} "
            f"{r.get('wall_seconds', '-'):>7} "
            f"{r['complete']:>8} {r['pruned']:>6} {r['best_val_accuracy']:>8}"
        )
    for kind, ratios in report["pruned_vs_unpruned"].items():
        print(f"{kind}/none: {ratios}")
    suffix = f"-vs-{args.unpruned}" if args.unpruned else f"-{stamp}" if args.resume else ""
    out = write_results(f"sweep_pruning-{'-'.join(pruners)}{suffix}", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Pruning's worth on the real data: the same study with and without a pruner.

    python benchmarks/sweep_pruning.py                                   # 12 trials, 25% of train, 3 epochs
    python benchmarks/sweep_pruning.py --trials 20 --pruner hyperband sweep.train_fraction=0.5

Runs `python -m src.sweep` twice with the same sampler seed and trial budget, once with
`sweep.pruner=none` and once with the chosen pruner, each in its own study (stores in
benchmarks/.work/sweep/). Reports, for each: epochs trained, wall time and the best validation
accuracy; writes benchmarks/results/sweep_pruning-<pruner>.json. Uses the token ids made by
benchmarks/train_speed.py (made here if missing).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, write_results  # noqa: E402
from train_speed import WORK, prepare_tokens  # noqa: E402


def run_study(name: str, pruner: str, args, tokens: Path, work: Path) -> dict:
    import optuna

    storage = f"sqlite:///{work / 'optuna.db'}"
    overrides = [f"paths.tokens={tokens}", f"paths.padded={work / 'padded'}", f"paths.model={work / 'models'}",
                 f"paths.reports={work / 'reports'}", f"sweep.study_name={name}", f"sweep.storage={storage}",
                 f"sweep.pruner={pruner}", f"sweep.n_trials={args.trials}", f"sweep.epochs={args.epochs}",
                 f"sweep.sampler_seed={args.seed}", f"sweep.train_fraction={args.fraction}",
                 f"sweep.preset=bench-{name}", *args.overrides]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "src.sweep", *overrides], cwd=ROOT, env=env, check=True)
    seconds = time.perf_counter() - started
    (ROOT / "experiments" / f"bench-{name}.yaml").unlink(missing_ok=True)  # a benchmark leaves no preset
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.get_trials(deepcopy=False)
    return {"pruner": pruner, "wall_seconds": round(seconds, 1),
            "epochs_trained": sum(len(t.intermediate_values) for t in trials),
            "complete": sum(t.state.name == "COMPLETE" for t in trials),
            "pruned": sum(t.state.name == "PRUNED" for t in trials),
            "best_val_accuracy": round(study.best_value, 4), "best_params": study.best_params}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides for both studies")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pruner", default="median", choices=["median", "hyperband"])
    args = parser.parse_intermixed_args()

    tokens = prepare_tokens(str(SHARED_ARCHIVE), SHARED_SHA256)
    work = WORK / "sweep"
    work.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    results = {kind: run_study(f"{kind}-{stamp}", kind, args, tokens, work) for kind in ("none", args.pruner)}
    unpruned, pruned = results["none"], results[args.pruner]
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trials": args.trials,
              "epochs_per_trial": args.epochs, "train_fraction": args.fraction, "sampler_seed": args.seed,
              "overrides": args.overrides, "studies": results,
              "pruned_vs_unpruned": {
                  "epochs_ratio": round(pruned["epochs_trained"] / unpruned["epochs_trained"], 2),
                  "wall_time_ratio": round(pruned["wall_seconds"] / unpruned["wall_seconds"], 2),
                  "best_val_accuracy_diff": round(pruned["best_val_accuracy"] - unpruned["best_val_accuracy"], 4)}}
    print(f"\n{'pruner':<10} {'epochs':>6} {'wall s':>7} {'complete':>8} {'pruned':>6} {'best val':>8}")
    for r in results.values():
        print(f"{r['pruner']:<10} {r['epochs_trained']:>6} {r['wall_seconds']:>7} {r['complete']:>8} "
              f"{r['pruned']:>6} {r['best_val_accuracy']:>8}")
    print(f"pruned/unpruned: {report['pruned_vs_unpruned']}")
    out = write_results(f"sweep_pruning-{args.pruner}", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

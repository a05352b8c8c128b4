"""A distilled LSTM against the default at equal epochs and at equal minutes, from their MLflow runs.

    python benchmarks/accuracy.py --seeds 3 at-10          # the default's runs (or src.repeat)
    python -m src.repeat --seeds 1 train.teacher=blend ... # a distilled run, in the same store
    python benchmarks/distill_curves.py <distilled run> [<default run>]   # default: at-10's same seed

Reads both runs' per-epoch metrics (benchmarks/.work/accuracy/mlflow.db unless MLFLOW_TRACKING_URI
says otherwise): the teacher's epochs (`teacher<k>_*`) and seconds, then the student's. Prints, per
student epoch, its validation accuracy and the minutes since the run began (the teacher's
included) beside the default's validation accuracy at that many epochs and at that many minutes
(its best epoch so far: what early stopping would keep), then both runs' test accuracy and the
paired comparison of the two saved models (src.lib.significance.compare). A student epoch passes
over the labeled and the unlabeled reviews, so equal epochs are not equal steps: both are shown.
Writes benchmarks/results/distill_curves.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import DEFAULT_ROW, RESULTS, STORE  # noqa: E402
from pipeline import machine, write_results  # noqa: E402


def curve(client, run_id: str, prefix: str = "") -> list[dict]:
    """Per epoch: validation accuracy and the epoch's seconds, under `prefix`."""
    history = {key: client.get_metric_history(run_id, prefix + key) for key in ("val_accuracy", "epoch_seconds")}
    by_step = {m.step: {"epoch": m.step, "val_accuracy": m.value} for m in history["val_accuracy"]}
    for m in history["epoch_seconds"]:
        by_step[m.step]["epoch_seconds"] = m.value
    return [by_step[step] for step in sorted(by_step)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("distilled", help="the distilled run's id")
    parser.add_argument("default", nargs="?", help=f"the default's run id (else {DEFAULT_ROW}'s run of the same seed)")
    args = parser.parse_args()

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    from src.lib import predictions, significance

    store = os.environ.get("MLFLOW_TRACKING_URI", STORE)
    mlflow.set_tracking_uri(store)
    client = mlflow.MlflowClient(store)
    distilled = client.get_run(args.distilled)
    seed = int(distilled.data.params["train.seed"])
    default_id = args.default or next(
        s["run_id"] for s in json.loads(RESULTS.read_text())["rows"][DEFAULT_ROW]["seeds"] if s["seed"] == seed
    )
    default = client.get_run(default_id)
    metrics = distilled.data.metrics
    folds = int(distilled.data.params.get("train.teacher_folds", 1))
    teachers = [curve(client, args.distilled, f"teacher{k}_") for k in range(folds)]
    teacher_minutes = metrics["teacher_seconds"] / 60
    student, baseline = curve(client, args.distilled), curve(client, default_id)
    print(
        f"seed {seed}; teacher: {folds} LSTM{'s' if folds > 1 else ''} of "
        f"{', '.join(str(len(t)) for t in teachers)} epochs, blend weight {metrics['teacher_blend_weight']:.2f}, "
        f"validation {metrics['teacher_val_accuracy']:.4f}, {metrics['teacher_transfer_reviews']:.0f} unlabeled "
        f"reviews taught, {teacher_minutes:.1f} min"
    )

    def minutes_at(rows: list[dict], start: float) -> list[float]:
        total, out = start, []
        for row in rows:
            total += row["epoch_seconds"] / 60
            out.append(total)
        return out

    default_minutes = minutes_at(baseline, 0.0)
    student_minutes = minutes_at(student, teacher_minutes)
    rows = []
    print(
        f"{'epoch':>5} {'minutes':>8} {'student val':>12} {'default val, same epoch':>24} {'default val, same minutes':>26}"
    )
    for row, minutes in zip(student, student_minutes):
        same_epoch = next((b["val_accuracy"] for b in baseline if b["epoch"] == row["epoch"]), None)
        done = [b["val_accuracy"] for b, m in zip(baseline, default_minutes) if m <= minutes]
        same_minutes = max(done) if done else None
        rows.append(
            {
                "epoch": row["epoch"],
                "minutes": round(minutes, 1),
                "student_val": row["val_accuracy"],
                "default_val_same_epoch": same_epoch,
                "default_best_val_same_minutes": same_minutes,
            }
        )
        print(
            f"{row['epoch']:>5} {minutes:>8.1f} {row['val_accuracy']:>12.4f} "
            f"{'-' if same_epoch is None else f'{same_epoch:.4f}':>24} "
            f"{'-' if same_minutes is None else f'{same_minutes:.4f}':>26}"
        )
    test = {
        name: predictions.from_run(run.info.run_id, "test")
        for name, run in (("default", default), ("distilled", distilled))
    }
    c = significance.compare(test["default"], test["distilled"])
    run_minutes = {
        name: round((run.info.end_time - run.info.start_time) / 60000, 1)
        for name, run in (("default", default), ("distilled", distilled))
    }
    print(
        f"test: default {test['default'].accuracy:.4f} ({run_minutes['default']} min), distilled "
        f"{test['distilled'].accuracy:.4f} ({run_minutes['distilled']} min); distilled - default "
        f"{100 * c.accuracy_difference:+.2f} points, 95% CI [{100 * c.accuracy_ci[0]:+.2f}, {100 * c.accuracy_ci[1]:+.2f}] "
        f"over the reviews (one seed a side: a draw, not a configuration's result)"
    )
    out = write_results(
        "distill_curves",
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "seed": seed,
            "distilled_run": args.distilled,
            "default_run": default_id,
            "teacher": {k: metrics[k] for k in metrics if k.startswith("teacher_")},
            "teacher_epochs": [len(t) for t in teachers],
            "epochs": rows,
            "test": {name: p.accuracy for name, p in test.items()},
            "run_minutes": run_minutes,
            "difference": c.accuracy_difference,
            "ci95": list(c.accuracy_ci),
        },
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Does the blend's weight lean to the LSTM? The LSTM's validation predictions come from the epoch
that scored best on validation and NB-LR's do not, so a weight chosen on all of validation may
favour the LSTM. Measured on the default's seeds (the at-10 row of benchmarks/accuracy.py).

    python benchmarks/accuracy.py --seeds 3 at-10     # first: the seeds' runs and predictions
    python benchmarks/blend_tilt.py                   # then this, on those runs

For each seed, today's rule (the weight chosen on all 5,000 validation reviews, blend.weight_step)
against the weight chosen on a random half of validation, for --halvings seeded halvings: the
weights, their accuracy on the other half, and the test accuracy of the blend each gives. Prints
per seed and the means over seeds; writes benchmarks/results/blend_tilt.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import RESULTS, STORE, WORK  # noqa: E402
from pipeline import machine, write_results  # noqa: E402


def subset(p, rows):
    from src.lib.predictions import Predictions

    return Predictions(p.probability[rows], p.label[rows], p.review_id[rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", default="at-10", help="the row of accuracy.json whose seeds are measured")
    parser.add_argument("--halvings", type=int, default=20)
    args = parser.parse_args()

    import mlflow
    import yaml

    from src.lib import predictions
    from src.lib.blending import blended, choose_weight

    mlflow.set_tracking_uri(STORE)
    row = json.loads(RESULTS.read_text())["rows"][args.row]
    folders = sorted(WORK.glob("prepared-*/prepared.json"))
    step = None
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "row": args.row,
        "halvings": args.halvings,
        "seeds": [],
    }
    for seed in row["seeds"]:
        lstm = {split: predictions.from_run(seed["run_id"], split) for split in ("val", "test")}
        bar = None
        for record in folders:  # the prepared folder whose NB-LR scored these very reviews
            params = yaml.safe_load((record.parent / "params.yaml").read_text())
            folder = record.parent / params["paths"]["reports"] / predictions.DIRECTORY
            candidate = {s: predictions.load(folder / f"baseline-{predictions.file_name(s)}") for s in ("val", "test")}
            if candidate["val"].digest == lstm["val"].digest:
                bar, step = candidate, params["blend"]["weight_step"]
        if bar is None:
            sys.exit(f"no prepared NB-LR predictions of seed {seed['seed']}'s reviews under {WORK}")

        def test_accuracy(weight: float, lstm=lstm, bar=bar) -> float:
            return blended(lstm["test"], bar["test"], weight).accuracy

        today = choose_weight(lstm["val"], bar["val"], step)
        n = len(lstm["val"].label)
        halves = []
        for k in range(args.halvings):
            order = np.random.default_rng(k).permutation(n)
            chosen_on, scored_on = order[: n // 2], order[n // 2 :]
            weight = choose_weight(subset(lstm["val"], chosen_on), subset(bar["val"], chosen_on), step)
            other = subset(lstm["val"], scored_on), subset(bar["val"], scored_on)
            halves.append(
                {
                    "weight": weight,
                    "other_half": blended(*other, weight).accuracy,
                    "other_half_today": blended(*other, today).accuracy,
                    "test": test_accuracy(weight),
                }
            )
        entry = {
            "seed": seed["seed"],
            "run_id": seed["run_id"],
            "weight_today": today,
            "test_today": test_accuracy(today),
            "weight_half_mean": statistics.mean(h["weight"] for h in halves),
            "test_half_mean": statistics.mean(h["test"] for h in halves),
            "other_half_mean": statistics.mean(h["other_half"] for h in halves),
            "other_half_today_mean": statistics.mean(h["other_half_today"] for h in halves),
            "halves": halves,
        }
        report["seeds"].append(entry)
        print(
            f"seed {entry['seed']}: weight today {today:.2f} (test {entry['test_today']:.4f}); chosen on half of "
            f"validation {entry['weight_half_mean']:.3f} on average (test {entry['test_half_mean']:.4f}; on the "
            f"other half {entry['other_half_mean']:.4f} against today's weight's {entry['other_half_today_mean']:.4f})"
        )
    means = {
        key: statistics.mean(s[key] for s in report["seeds"])
        for key in ("weight_today", "test_today", "weight_half_mean", "test_half_mean")
    }
    report["means"] = means
    print(
        f"over {len(report['seeds'])} seeds: weight {means['weight_today']:.3f} today, "
        f"{means['weight_half_mean']:.3f} chosen on half; blend test {means['test_today']:.4f} today, "
        f"{means['test_half_mean']:.4f} with the half's weight ({100 * (means['test_half_mean'] - means['test_today']):+.2f} points)"
    )
    out = write_results("blend_tilt", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

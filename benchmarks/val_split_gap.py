"""How far validation accuracy reads above test for each way of carving the validation split:
random reviews, consecutive review ids (contiguous) and whole movies (movie), side by side.

    python benchmarks/val_split_gap.py                 # the default config, each split
    python benchmarks/val_split_gap.py train.ensemble=1

Runs the whole pipeline once per split (benchmarks/pipeline.py, names split-<kind>), one after
the other on this machine, and writes benchmarks/results/val_split_gap.json: each split's
validation and test accuracy, their gap, how many movies validation shares with training, and
the training minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import machine, write_results  # noqa: E402

SPLITS = ("random", "contiguous", "movie")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides applied to every run")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    args = parser.parse_args()
    rows = []
    for split in args.splits:
        name = f"split-{split}"
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "pipeline.py"),
                "--name",
                name,
                f"data.val_split={split}",
                *args.overrides,
            ],
            check=True,
        )
        run = json.loads((ROOT / "benchmarks" / "results" / f"pipeline-{name}.json").read_text())
        val, test = run["best_val_accuracy"], run["test"]["accuracy"]
        rows.append(
            {
                "split": split,
                "val_accuracy": val,
                "test_accuracy": test,
                "gap_points": round(100 * (val - test), 2),
                "movies": run["tokens"].get("movies"),
                "baseline": run.get("baseline"),
                "train_minutes": round(run["stages"]["train"]["seconds"] / 60, 1),
            }
        )
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "overrides": args.overrides,
        "rows": rows,
    }
    out = write_results("val_split_gap", report)
    print(f"\n{'split':<11} {'val':>7} {'test':>7} {'val - test':>10} {'shared movies':>14} {'train min':>9}")
    for r in rows:
        shared = r["movies"]["shared"] if r["movies"] else "?"
        print(
            f"{r['split']:<11} {r['val_accuracy']:>7.4f} {r['test_accuracy']:>7.4f} {r['gap_points']:>+10.2f} "
            f"{shared!s:>14} {r['train_minutes']:>9}"
        )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

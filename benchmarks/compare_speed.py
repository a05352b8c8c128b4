"""How long the paired comparison takes: src.significance.compare on 25,000 reviews (the IMDB
test split's size) with 10,000 bootstrap resamples, and optionally the whole command.

    python benchmarks/compare_speed.py
    python benchmarks/compare_speed.py --project ../real --runs A B   # also `python -m src.compare A B` there

The comparison's inputs are two synthetic models' probabilities of 25,000 reviews (their
accuracy and AUC do not change the work done). Prints the median of --repeats timings and
writes benchmarks/results/compare_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import machine, write_results  # noqa: E402
from src.lib import significance  # noqa: E402
from src.lib.predictions import Predictions  # noqa: E402


def synthetic_pair(n: int, seed: int = 0) -> tuple[Predictions, Predictions]:
    rng = np.random.default_rng(seed)
    label = np.r_[np.zeros(n // 2), np.ones(n - n // 2)].astype(np.int8)
    a = np.clip(label * 0.30 + rng.random(n) * 0.70, 0, 1).astype(np.float32)
    b = np.clip(label * 0.35 + rng.random(n) * 0.65, 0, 1).astype(np.float32)
    ids = np.arange(n, dtype=np.int32)
    return Predictions(a, label, ids), Predictions(b, label, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=25_000)
    parser.add_argument("--resamples", type=int, default=significance.RESAMPLES)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--project", help="a project folder with evaluated runs, to time the command there too")
    parser.add_argument("--runs", nargs=2, metavar=("A", "B"), help="the command's two references")
    args = parser.parse_args()

    a, b = synthetic_pair(args.reviews)
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        compared = significance.compare(a, b, resamples=args.resamples)
        seconds.append(time.perf_counter() - started)
    report = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": machine(),
              "reviews": args.reviews, "resamples": args.resamples,
              "compare_seconds": [round(s, 2) for s in seconds], "compare_median_seconds": round(statistics.median(seconds), 2),
              "example": compared.to_dict()}
    print(f"significance.compare, {args.reviews} reviews x {args.resamples} resamples: "
          f"median {report['compare_median_seconds']:.2f} s of {args.repeats} ({', '.join(f'{s:.2f}' for s in seconds)})")

    if args.project and args.runs:
        command = [sys.executable, "-m", "src.compare", *args.runs, "--resamples", str(args.resamples)]
        timings = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            subprocess.run(command, cwd=args.project, check=True, stdout=subprocess.DEVNULL)
            timings.append(time.perf_counter() - started)
        report["command"] = " ".join(command[1:])
        report["command_seconds"] = [round(s, 2) for s in timings]
        report["command_median_seconds"] = round(statistics.median(timings), 2)
        print(f"python -m src.compare {' '.join(args.runs)} (test and validation, process start included): "
              f"median {report['command_median_seconds']:.2f} s")
    out = write_results("compare_speed", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""How long a comparison takes: `python -m src.compare` on runs whose predictions are logged to
MLflow as the pipeline logs them (25,000 test and 5,000 validation reviews, 10,000 bootstrap
resamples), one run against one and three runs against three, and the bootstrap alone in this
process.

    python benchmarks/compare_speed.py               # 3 repeats of each
    python benchmarks/compare_speed.py --repeats 5

The runs are synthetic (their accuracy and AUC do not change the work done) and live in a store
of their own, benchmarks/.work/compare_speed/mlflow.db, made on the first use. Prints the median
of --repeats timings of each and writes benchmarks/results/compare_speed.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import machine, write_results  # noqa: E402

from src.lib import significance  # noqa: E402
from src.lib.predictions import Predictions  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "compare_speed"
STORE = f"sqlite:///{WORK / 'mlflow.db'}"
SPLITS = {"test": 25_000, "val": 5_000}
RUNS = 6  # three a side


def synthetic(n: int, seed: int) -> Predictions:
    """A model of about 90% accuracy on n reviews, half of them positive."""
    rng = np.random.default_rng(seed)
    label = np.r_[np.zeros(n // 2), np.ones(n - n // 2)].astype(np.int8)
    probability = np.clip(label * 0.4 + rng.random(n) * 0.6 + rng.normal(0, 0.1, n), 0, 1).astype(np.float32)
    return Predictions(probability, label, np.arange(n, dtype=np.int32))


def logged_runs() -> list[str]:
    """The ids of RUNS runs with test and validation predictions in STORE (made once)."""
    from src.lib import config, predictions, tracking

    ids = WORK / "runs.txt"
    if ids.is_file():
        return ids.read_text().split()
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = STORE
    cfg = config.compose([])
    made = []
    for k in range(RUNS):
        with tracking.run(cfg) as active:
            for split, n in SPLITS.items():
                predictions.log_to_active_run(split, synthetic(n, seed=10 * k + len(split)))
        made.append(active.info.run_id)
    (WORK / "params.yaml").write_text(config.to_yaml(cfg))  # what the command reads its store's settings from
    ids.write_text("\n".join(made) + "\n")
    return made


def timed(function, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(round(time.perf_counter() - started, 2))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    runs = logged_runs()
    env = {**os.environ, "MLFLOW_TRACKING_URI": STORE, "PYTHONPATH": str(ROOT)}
    cases = {"1 run against 1": (runs[0], runs[3]), "3 runs against 3": (",".join(runs[:3]), ",".join(runs[3:]))}
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "reviews": SPLITS,
        "resamples": significance.RESAMPLES,
        "command": {},
        "bootstrap": {},
    }
    for name, (a, b) in cases.items():
        command = [sys.executable, "-m", "src.compare", a, b]
        seconds = timed(
            lambda command=command: subprocess.run(command, cwd=WORK, env=env, check=True, stdout=subprocess.DEVNULL),
            args.repeats,
        )
        report["command"][name] = {"seconds": seconds, "median_seconds": statistics.median(seconds)}
        print(
            f"python -m src.compare, {name} (test and validation, process start included): "
            f"median {statistics.median(seconds):.2f} s of {args.repeats} ({', '.join(map(str, seconds))})",
            flush=True,
        )
    test = [synthetic(SPLITS["test"], seed=10 * k + 4) for k in range(RUNS)]
    for name, function in (
        ("1 run against 1", lambda: significance.compare(test[0], test[3])),
        ("3 runs against 3", lambda: significance.compare_groups(test[:3], test[3:])),
    ):
        seconds = timed(function, args.repeats)
        report["bootstrap"][name] = {"seconds": seconds, "median_seconds": statistics.median(seconds)}
        print(
            f"the bootstrap alone, {name}, {SPLITS['test']} reviews: median {statistics.median(seconds):.2f} s "
            f"({', '.join(map(str, seconds))})",
            flush=True,
        )
    out = write_results("compare_speed", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

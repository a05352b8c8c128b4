"""How far validation accuracy reads from test accuracy across split seeds, for each way of
carving the validation split (random, contiguous, movie), measured with the TF-IDF + logistic
regression baseline stage (a minute per fit, where the LSTM takes twenty).

    python benchmarks/split_seed_gap.py                  # seeds 1-5 of each split
    python benchmarks/split_seed_gap.py --seeds 1 2 3 --splits movie random

One seed's gap is one draw: validation holds 5,000 reviews, so its accuracy alone has a standard
error near 0.4 points. The mean over seeds says whether a split reads above test (reviews of
the same movie on both sides of it) or not; the spread says how far one seed's gap can fall
from that mean. Runs the baseline stage, as its own process, once per (split, seed) in
benchmarks/.work/split_seed_gap/ on the archive extracted there once, and writes
benchmarks/results/split_seed_gap.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, archive_overrides, machine, run_stage, write_results  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "split_seed_gap"
SPLITS = ("random", "contiguous", "movie")


def stage(name: str, folder: Path, overrides: list[str], env: dict) -> float:
    """Compose params.yaml in `folder` with the project's config command, then run stage `name`."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "src.config", *overrides], cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL
    )
    return run_stage([sys.executable, "-m", f"src.stages.{name}", "--params", "params.yaml"], folder, env)[0]


def swapped(raw: Path, seeds: list[int]) -> dict:
    """The baseline fitted on the test reviews but a movie split of them, for each seed: its
    accuracy on those held-out test movies and on every training review."""
    import numpy as np

    from src.lib import config, data
    from src.lib.ngrams import fitted

    cfg = config.compose([])
    texts, labels, ids = data.read_reviews(raw / "test")
    movies = data.read_movies(raw / "test", labels, ids)
    other_texts, other_labels, _ = data.read_reviews(raw / "train")
    labels, other_labels = np.asarray(labels), np.asarray(other_labels)
    runs = []
    for seed in seeds:
        fit_idx, held_idx = data.movie_split(labels, movies, cfg.data.val_fraction, seed)
        vectorizer, model = fitted(cfg.baseline, [texts[i] for i in fit_idx], labels[fit_idx])
        held = float((model.predict(vectorizer.transform([texts[i] for i in held_idx])) == labels[held_idx]).mean())
        other = float((model.predict(vectorizer.transform(other_texts)) == other_labels).mean())
        runs.append(
            {
                "seed": seed,
                "held_out_test_movies": held,
                "train_reviews": other,
                "gap_points": round(100 * (held - other), 2),
            }
        )
        print(
            f"swapped    seed {seed}: held-out test movies {held:.4f}  training reviews {other:.4f}  "
            f"held-out - other half {100 * (held - other):+.2f} points",
            flush=True,
        )
    gaps = [r["gap_points"] for r in runs]
    print(f"swapped    over {len(gaps)} seeds: mean {statistics.mean(gaps):+.2f} points")
    return {"mean_gap_points": round(statistics.mean(gaps), 2), "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--swapped", action="store_true", help="also fit on the test half (see above)")
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{WORK / 'mlflow.db'}"}
    archive = archive_overrides(args.archive, args.sha256)
    raw = WORK / "download" / "data" / "raw"
    if not raw.exists():  # the download stage writes it whole or not at all
        shutil.rmtree(WORK, ignore_errors=True)
        stage("download", WORK / "download", archive, env)
    runs = []
    for split in args.splits:
        for seed in args.seeds:
            folder = WORK / f"{split}-{seed}"
            seconds = stage(
                "baseline",
                folder,
                [*archive, f"paths.raw={raw}", f"data.val_split={split}", f"data.split_seed={seed}"],
                env,
            )
            metrics = json.loads((folder / "reports" / "baseline.json").read_text())
            gap = 100 * (metrics["val_accuracy"] - metrics["accuracy"])
            runs.append(
                {
                    "split": split,
                    "seed": seed,
                    "val_accuracy": metrics["val_accuracy"],
                    "test_accuracy": metrics["accuracy"],
                    "gap_points": round(gap, 2),
                    "seconds": round(seconds, 1),
                }
            )
            print(
                f"{split:<10} seed {seed}: val {metrics['val_accuracy']:.4f}  test {metrics['accuracy']:.4f}  "
                f"val - test {gap:+.2f} points",
                flush=True,
            )
    summary = {}
    for split in args.splits:
        gaps = [r["gap_points"] for r in runs if r["split"] == split]
        summary[split] = {
            "mean_gap_points": round(statistics.mean(gaps), 2),
            "sd_gap_points": round(statistics.stdev(gaps), 2) if len(gaps) > 1 else None,
            "min": min(gaps),
            "max": max(gaps),
            "seeds": len(gaps),
        }
        print(
            f"{split:<10} val - test over {len(gaps)} seeds: mean {summary[split]['mean_gap_points']:+.2f}, "
            f"sd {summary[split]['sd_gap_points']}, range [{min(gaps):+.2f}, {max(gaps):+.2f}] points"
        )
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "model": "baseline (TF-IDF + logistic regression)",
        "summary": summary,
        "runs": runs,
    }
    if args.swapped:
        report["swapped"] = swapped(raw / "aclImdb", args.seeds)
    out = write_results("split_seed_gap", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""`src.predict` on the real data: accuracy and reviews/s over the 25,000 test reviews, and
accuracy on reviews written for this project (benchmarks/data/handwritten-reviews.tsv).

    python benchmarks/pipeline.py --name default-registry     # first: a real-data model
    python benchmarks/predict.py --work benchmarks/.work/default-registry

Uses the model, vocabulary and raw test reviews of a benchmarks/pipeline.py work folder. Times
`python -m src.predict --file` end to end (process start, TensorFlow import, model load,
tokenizing, batching) and, in this process, `ReviewClassifier.predict_proba` alone (median of
--repeats). Writes benchmarks/results/predict-<work name>.json.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
HANDWRITTEN = ROOT / "benchmarks" / "data" / "handwritten-reviews.tsv"

from pipeline import write_results  # noqa: E402


def test_reviews(raw: Path) -> tuple[list[str], np.ndarray]:
    texts, labels = [], []
    for label, folder in ((1, "pos"), (0, "neg")):
        for path in sorted((raw / "aclImdb" / "test" / folder).glob("*.txt")):
            # One review per line for --file: a review's own line breaks become spaces.
            texts.append(" ".join(path.read_bytes().decode("utf-8", errors="replace").split()))
            labels.append(label)
    return texts, np.array(labels)


def command_scores(params: Path, reviews: list[str]) -> tuple[np.ndarray, float]:
    """Positive probabilities from `python -m src.predict --file`, and its wall seconds."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
        f.write("\n".join(reviews) + "\n")
        f.flush()
        started = time.perf_counter()
        # Run from the work folder (its params.yaml holds relative paths), with src importable.
        out = subprocess.run(
            [sys.executable, "-m", "src.predict", "--params", str(params), "--file", f.name],
            cwd=params.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        seconds = time.perf_counter() - started
    return np.array([float(line.split("\t")[1]) for line in out.splitlines()]), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work",
        type=Path,
        default=ROOT / "benchmarks" / ".work" / "default-registry",
        help="a benchmarks/pipeline.py work folder (params.yaml, data/raw, models/)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from src.lib import config
    from src.lib.evaluation import THRESHOLD
    from src.predict import pipeline_classifier

    work = args.work.resolve()
    params = work / "params.yaml"
    cfg = config.load(params)
    os.chdir(work)  # the work folder's params.yaml holds paths relative to it
    texts, labels = test_reviews(Path(cfg.paths.raw))
    scores, command_seconds = command_scores(params, texts)
    assert len(scores) == len(texts), "every test review gets a line"
    classifier = pipeline_classifier(cfg)
    classifier.predict_proba(texts[:512])  # warm-up: graph tracing is not throughput
    timings = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        in_process = classifier.predict_proba(texts)
        timings.append(time.perf_counter() - started)
    assert np.allclose(in_process, scores, atol=1e-4), "the command and the class agree"

    with open(HANDWRITTEN, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    hand = classifier.predict_proba([r["review"] for r in rows])
    hand_labels = np.array([r["label"] == "pos" for r in rows])
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "work": work.name,
        "test_reviews": len(texts),
        "test_accuracy": round(float(np.mean((scores >= THRESHOLD) == labels)), 5),
        "command_seconds": round(command_seconds, 1),
        "command_reviews_per_s": round(len(texts) / command_seconds),
        "predict_proba_seconds_median": round(statistics.median(timings), 2),
        "predict_proba_reviews_per_s": round(len(texts) / statistics.median(timings)),
        "handwritten_reviews": len(rows),
        "handwritten_accuracy": round(float(np.mean((hand >= THRESHOLD) == hand_labels)), 4),
        "handwritten_misclassified": [
            r["review"][:70] for r, p, y in zip(rows, hand, hand_labels) if (p >= THRESHOLD) != y
        ],
    }
    for key, value in report.items():
        print(f"{key:>30}: {value}")
    out = write_results(f"predict-{work.name}", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

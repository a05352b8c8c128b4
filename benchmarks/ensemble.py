"""Several finished pipeline runs' predictions averaged (an ensemble), beside each run alone.

    python benchmarks/ensemble.py default-epyc default-seed1 default-seed2

Each name is a run of `python benchmarks/pipeline.py --name <name>` (its scratch copy in
benchmarks/.work/<name>/ holds the model and the padded reviews). Each model scores its own
run's validation and test reviews (the same reviews in the same order for every run: the
tokenize stage reads them in a fixed order and splits by data.split_seed; checked); an
ensemble's probability is the mean of its models'. Prints validation and test accuracy (and
test ROC AUC) of each run and of every group of two or more, and writes
benchmarks/results/ensemble-<names>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import write_results  # noqa: E402
from train_speed import WORK  # noqa: E402


def split_scores(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{split: (labels, positive probabilities)} of one run's model, validation and test."""
    from src.lib import config
    from src.lib.batches import predict
    from src.lib.data import load_split
    from src.lib.model import load_model

    # The run's overrides on today's conf/ (a run's own params.yaml may predate a newer key);
    # paths are relative to its scratch copy.
    overrides = json.loads((ROOT / "benchmarks" / "results" / f"pipeline-{name}.json").read_text())["overrides"]
    os.chdir(WORK / name)
    cfg = config.compose(overrides)
    model = load_model(Path(cfg.paths.model) / "model.keras")
    scores = {}
    for split in ("val", "test"):
        x, y = load_split(cfg, split)
        scores[split] = y, predict(model, x, cfg.train)
    return scores


def main() -> None:
    from src.lib.evaluation import score

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="names of finished benchmarks/pipeline.py runs")
    args = parser.parse_args()
    members = {name: split_scores(name) for name in args.names}
    labels = members[args.names[0]]
    for name, scores in members.items():
        if any(not np.array_equal(scores[split][0], labels[split][0]) for split in scores):
            sys.exit(f"{name}: its reviews are not those of {args.names[0]}, in the same order")
    groups = [(name,) for name in members]
    # Every group of two or more: whether averaging helps whichever runs are averaged.
    groups += [g for size in range(2, len(members) + 1) for g in itertools.combinations(members, size)]
    rows = {}
    for group in groups:
        rows[" + ".join(group)] = {
            split: score(labels[split][0], np.mean([members[name][split][1] for name in group], axis=0))[0]
            for split in ("val", "test")
        }
    width = max(map(len, rows))
    print(f"{'':<{width}}  {'val acc':>7}  {'test acc':>8}  {'test AUC':>8}")
    for name, m in rows.items():
        print(
            f"{name:<{width}}  {m['val']['accuracy']:>7.4f}  {m['test']['accuracy']:>8.4f}  {m['test']['roc_auc']:>8.4f}"
        )
    out = write_results(
        "ensemble-" + "+".join(args.names),
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "runs": args.names,
            "scores": {
                name: {split: {k: m[split][k] for k in ("accuracy", "roc_auc", "f1", "loss")} for split in m}
                for name, m in rows.items()
            },
        },
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

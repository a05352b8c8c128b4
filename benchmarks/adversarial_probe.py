"""A quick probe of a training variant: one epoch on a quarter of the training reviews, validation
accuracy on 40% of validation, each variant after the other in one process on one machine.

    python benchmarks/adversarial_probe.py <prepared folder> plain train.adversarial=at \
        train.adversarial=at,train.adversarial_epsilon=1

The prepared folder holds the data stages' outputs (benchmarks/accuracy.py's prepared-<digest>/).
Each argument is `plain` or comma-separated overrides. A probe ranks variants that differ
grossly (one that learns against one that does not); it is no accuracy claim. Prints a line per
variant and writes benchmarks/results/adversarial_probe.json.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import machine, write_results  # noqa: E402


def main() -> None:
    import mlflow

    from src.lib import config, data, training

    folder, variants = Path(sys.argv[1]).resolve(), sys.argv[2:]
    paths = [f"paths.{key}={folder / 'data' / key}" for key in ("raw", "tokens", "padded", "pretrained")]
    mlflow.set_tracking_uri(f"sqlite:///{folder / 'probe.db'}")
    rows = []
    for variant in variants:
        cfg = config.compose(
            [
                *paths,
                "train.ensemble=1",
                "train.epochs=1",
                "train.patience=0",
                *([] if variant == "plain" else variant.split(",")),
            ]
        )
        train, val = data.load(cfg, "train").subset(0.25, 0), data.load(cfg, "val").subset(0.4, 0)
        started = time.perf_counter()
        with mlflow.start_run(run_name=f"probe {variant}"):
            fitted = training.fit(cfg, train, val, verbose=0)
        rows.append(
            {
                "variant": variant,
                "val_accuracy": fitted.best_val_accuracy,
                "loss": fitted.histories[0][-1]["loss"],
                "seconds": round(time.perf_counter() - started),
            }
        )
        print(
            f"{variant:<50} val {rows[-1]['val_accuracy']:.4f}  loss {rows[-1]['loss']:.3f}  {rows[-1]['seconds']} s",
            flush=True,
        )
    print(f"wrote {write_results('adversarial_probe', {'machine': machine(), 'rows': rows}).relative_to(ROOT)}")


if __name__ == "__main__":
    main()

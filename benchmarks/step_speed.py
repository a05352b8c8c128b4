"""The default model's training step (adversarial training, length buckets) under TensorFlow's
CPU kernels and the epoch logger's hooks, side by side in one run on one machine.

    python benchmarks/step_speed.py                 # 3 rounds of every variant
    python benchmarks/step_speed.py --rounds 5 --steps 30

Each variant is a fresh process (TensorFlow reads its kernel settings once, at start-up) that
trains the default config on the same --steps batches of 64 training reviews (a seeded sample of
the real archive, prepared as benchmarks/accuracy.py prepares it) for three epochs; its figure
is the median seconds per step of epochs 2 and 3 (epoch 1 traces the step). Variants run
interleaved, round by round, so whatever else the machine does falls on all of them alike:
- oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`: TensorFlow's Eigen kernels, its default on CPUs without
  AVX-512 VNNI, BF16 or AMX), oneDNN on (`=1`: what the pipeline sets), and on a CPU with
  AVX-512 also oneDNN capped to AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`, as a CPU without AVX-512 runs it);
- oneDNN on with a per-batch callback hook, as the epoch logger had: Keras then fetches every
  step's logs (no asynchronous dispatch).
Prints each variant's median and its ratio to oneDNN on; writes benchmarks/results/step_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, archive_overrides, machine, write_results  # noqa: E402

BATCH = 64
EPOCHS = 3


def variants(avx512: bool) -> dict[str, dict]:
    found = {
        "oneDNN off": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
        "oneDNN on": {"env": {"TF_ENABLE_ONEDNN_OPTS": "1"}},
    }
    if avx512:
        found["oneDNN on, AVX2 kernels"] = {"env": {"TF_ENABLE_ONEDNN_OPTS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2"}}
    found["oneDNN on, per-batch hook"] = {"env": {"TF_ENABLE_ONEDNN_OPTS": "1"}, "batch_hook": True}
    return found


def child(folder: Path, steps: int, batch_hook: bool) -> None:
    """In the variant's process: the seconds per step of epochs 2.. as JSON on stdout."""
    import keras
    import numpy as np
    from accuracy import prepared_config

    from src.lib import batches, data, hardware, training

    cfg = prepared_config(folder)
    split = data.load(cfg, "train")
    rows = np.random.default_rng(0).choice(len(split.x), steps * BATCH, replace=False)
    seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append((time.perf_counter() - self._started) / steps)

    class BatchHook(keras.callbacks.Callback):
        """What the epoch logger did: a clock read after every batch."""

        def on_train_batch_end(self, batch, logs=None):
            self._last = time.perf_counter()

    _, trainee = training._compiled_model(cfg, "imdb_lstm", steps=EPOCHS * steps)
    trainee.fit(
        batches.training_dataset(split.x[rows], split.y[rows], cfg.train),
        epochs=EPOCHS,
        verbose=0,
        shuffle=False,
        callbacks=[EpochTimer(), *([BatchHook()] if batch_hook else [])],
    )
    print(json.dumps({"step_seconds": seconds[1:], "onednn": hardware.onednn_enabled()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20, help="batches of 64 reviews per epoch")
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    parser.add_argument("--child", nargs=3, metavar=("FOLDER", "STEPS", "BATCH_HOOK"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), args.child[2] == "1")
        return

    from accuracy import prepared

    folder, _ = prepared(archive_overrides(args.archive, args.sha256))
    where = machine()
    kinds = variants(where["avx512"])
    figures = {name: [] for name in kinds}
    onednn = {}
    for round_ in range(args.rounds):
        for name, variant in kinds.items():
            env = {k: v for k, v in os.environ.items() if k not in ("TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")}
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(folder),
                    str(args.steps),
                    "1" if variant.get("batch_hook") else "0",
                ],
                env=env | variant["env"],
                cwd=ROOT,
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            )
            result = json.loads(done.stdout.strip().splitlines()[-1])
            figures[name] += result["step_seconds"]
            onednn[name] = result["onednn"]
            print(
                f"round {round_ + 1}, {name}: {', '.join(f'{s:.3f}' for s in result['step_seconds'])} s a step",
                flush=True,
            )
    medians = {name: statistics.median(values) for name, values in figures.items()}
    print(
        f"\nthe default's adversarial training step, {args.steps} batches of {BATCH} reviews, "
        f"{where['cpu']} ({'AVX-512' if where['avx512'] else 'no AVX-512'}), {args.rounds} rounds:"
    )
    for name, median in medians.items():
        print(
            f"  {name:<28} median {median:.3f} s a step   {median / medians['oneDNN on']:.2f}x oneDNN on's time"
            f"   (oneDNN {'on' if onednn[name] else 'off'} in the process)"
        )
    out = write_results(
        "step_speed",
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": where,
            "steps": args.steps,
            "batch": BATCH,
            "rounds": args.rounds,
            "step_seconds": figures,
            "median_step_seconds": medians,
            "onednn": onednn,
        },
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

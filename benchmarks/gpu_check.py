"""For a person with an NVIDIA GPU: does the pipeline run there on cuDNN, and how fast?

    pip install -e '.[gpu]' && python benchmarks/gpu_check.py
    python benchmarks/gpu_check.py --reviews 5000 --epochs 2

Prints the device TensorFlow trains on, runs tests/test_gpu.py (the default's LSTMs forced onto
cuDNN, adversarial training on length buckets up to 500 words, a bucketed prediction, the device
recorded on the run), then trains the default model with its LSTMs forced onto cuDNN on the
first --reviews training reviews of the real archive (prepared as benchmarks/accuracy.py
prepares it) and prints seconds per epoch and the accuracy on as many test reviews. Writes
benchmarks/results/gpu_check.json. Where TensorFlow sees no GPU it says why and exits 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from accuracy import prepared, prepared_config  # noqa: E402
from pipeline import SHARED_ARCHIVE, SHARED_SHA256, archive_overrides, machine, write_results  # noqa: E402

from src.lib import batches, data, hardware, training  # noqa: E402  (before TensorFlow: src sets it up)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviews", type=int, default=5000, help="training (and test) reviews in the slice")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    args = parser.parse_args()

    import keras

    from tests.test_gpu import forced_onto_cudnn

    visible = hardware.gpus()
    if not visible:
        print(
            hardware.gpu_warning([])
            or "TensorFlow sees no GPU here: nothing to check (`pip install -e '.[gpu]'` "
            "on a machine with an NVIDIA driver)"
        )
        sys.exit(1)
    tags = hardware.describe()
    print(
        f"device: {tags['device']}; TensorFlow {tags['tensorflow.version']}, Keras {tags['keras.version']}", flush=True
    )
    tests = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "-n", "0", "-q", "-rs"], cwd=ROOT)

    folder, _ = prepared(archive_overrides(args.archive, args.sha256))
    cfg = prepared_config(folder)
    train_split, val_split, test_split = (data.load(cfg, split) for split in data.SPLITS)
    x, y = train_split.x[: args.reviews], train_split.y[: args.reviews]
    model, trainee = training._compiled_model(cfg, "imdb_lstm", steps=args.epochs * -(-len(x) // cfg.train.batch_size))
    forced_onto_cudnn(model)  # Keras raises rather than fall back to its loop: the epochs below are cuDNN's

    seconds = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(round(time.perf_counter() - self._started, 2))
            print(f"epoch {epoch + 1}: {seconds[-1]:.1f} s on {len(x)} reviews (cuDNN)", flush=True)

    trainee.fit(
        batches.training_dataset(x, y, cfg.train),
        epochs=args.epochs,
        callbacks=[EpochTimer()],
        verbose=0,
        shuffle=False,
    )
    accuracy = float(
        np.mean(
            (batches.predict(model, test_split.x[: args.reviews], cfg.train) >= 0.5) == test_split.y[: args.reviews]
        )
    )
    print(
        f"kernel: cuDNN (forced); {np.median(seconds):.1f} s per epoch of {len(x)} reviews; "
        f"test accuracy on {min(args.reviews, len(test_split.y))} reviews after {args.epochs} epochs: {accuracy:.4f}"
    )
    out = write_results(
        "gpu_check",
        {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "tags": tags,
            "tests_passed": tests.returncode == 0,
            "reviews": len(x),
            "epoch_seconds": seconds,
            "test_accuracy": accuracy,
            "train": asdict(cfg.train),
        },
    )
    print(f"wrote {out.relative_to(ROOT)}")
    sys.exit(tests.returncode)


if __name__ == "__main__":
    main()

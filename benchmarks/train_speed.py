"""Training and evaluation speed: the pipeline against the lecture's script, on the same data.

    python benchmarks/train_speed.py                                 # full data, 3 epochs
    python benchmarks/train_speed.py --fraction 0.2 --epochs 2       # a quick check
    python benchmarks/train_speed.py train.jit_compile=true          # one lever changed (Hydra overrides)
    python benchmarks/train_speed.py --skip-reference --name xla train.jit_compile=true
    python benchmarks/train_speed.py --levers --fraction 0.25 --epochs 2   # each speed lever, side by side

Both sides get the same token ids (the tokenize stage's output on the real archive, made once
in benchmarks/.work/speed-data/) and run in their own process, one after the other, so peak
memory is each side's own. The reference is benchmarks/seed_reference.py (the lecture's model
and calls); the pipeline side is the train stage (`src.stages.train.train`) on the same model and hyperparameters (the
lecture12 preset: maxlen 200, 128 units, batch 64) with the pipeline's speed settings on, plus
any overrides, then `src.batches.predict` on the test split. Prints per-epoch seconds,
training and evaluation reviews/s, validation accuracy per epoch, peak memory and the
pipeline/reference ratios (of medians over epochs); writes benchmarks/results/train_speed-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, archive_overrides, write_results  # noqa: E402

WORK = ROOT / "benchmarks" / ".work"
# The pipeline side: the lecture's model and hyperparameters (the lecture12 preset) with the
# pipeline's speed settings, which lecture12 turns off: masked padding at the end, length buckets.
SPEED_DEFAULTS = ["experiment=lecture12", "data.padding=post", "model.mask_padding=true", "train.bucket_by_length=true"]


def prepare_tokens(archive: str, sha256: str) -> Path:
    """The tokenize stage's output on the real archive (made once, then reused)."""
    data = WORK / "speed-data"
    tokens = data / "data" / "tokens"
    if not (tokens / "test.npz").is_file():
        data.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for stage in ("config", "download", "tokenize"):
            arguments = archive_overrides(archive, sha256) if stage == "config" else ["--params", "params.yaml"]
            subprocess.run([sys.executable, "-m", f"src.{stage}", *arguments], cwd=data, env=env, check=True)
    return tokens


def subset_tokens(tokens: Path, fraction: float, out: Path) -> Path:
    """The first `fraction` of each split after a seeded shuffle (per class, so balance holds)."""
    from src.lib.data import load_ragged, load_review_ids, save_ragged

    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.txt").write_bytes((tokens / "vocab.txt").read_bytes())
    for split in ("train", "val", "test"):
        sequences, labels = load_ragged(tokens / f"{split}.npz")
        rng = np.random.default_rng(0)
        keep = np.concatenate(
            [rng.permutation(np.flatnonzero(labels == c))[: round(fraction * np.sum(labels == c))] for c in (0, 1)]
        )
        keep.sort()
        save_ragged(
            out / f"{split}.npz",
            [sequences[i] for i in keep],
            labels[keep],
            load_review_ids(tokens / f"{split}.npz")[keep],
        )
    return out


class Timer:
    """Keras callback: per epoch, seconds until the last training batch and validation accuracy."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs = []

            def on_epoch_begin(self, epoch, logs=None):
                self.started = self.last = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                self.last = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.epochs.append(
                    {
                        "epoch": epoch + 1,
                        "train_seconds": self.last - self.started,
                        "epoch_seconds": time.perf_counter() - self.started,
                        "val_accuracy": float(logs["val_accuracy"]),
                    }
                )

        return _Timer()


def run_reference(tokens: Path, epochs: int) -> dict:
    import seed_reference as ref

    from src.lib.data import load_ragged

    (train_ids, y_train), (val_ids, y_val) = (load_ragged(tokens / f"{s}.npz") for s in ("train", "val"))
    test_ids, y_test = load_ragged(tokens / "test.npz")
    x_train = ref.pad(train_ids + val_ids)
    y_train = np.concatenate([y_train, y_val]).astype("float32")
    x_test = ref.pad(test_ids)
    timer = Timer()
    model = ref.build_model()
    ref.fit(model, x_train, y_train, epochs=epochs, callbacks=[timer])
    started = time.perf_counter()
    _, test_accuracy = ref.evaluate(model, x_test, y_test.astype("float32"))
    return {
        "epochs": timer.epochs,
        "n_train": len(train_ids),
        "n_test": len(test_ids),
        "eval_seconds": time.perf_counter() - started,
        "test_accuracy": float(test_accuracy),
    }


def run_pipeline(tokens: Path, epochs: int, overrides: list[str], work: Path) -> dict:
    from src.lib import batches, config
    from src.lib.data import load_split
    from src.lib.model import load_model
    from src.lib.model_folder import MODEL_FILE
    from src.stages.train import HISTORY_FILE, train

    cfg = config.compose(
        [
            *SPEED_DEFAULTS,
            f"train.epochs={epochs}",
            *overrides,
            f"paths.tokens={tokens}",
            f"paths.padded={work / 'padded'}",
            f"paths.model={work / 'models'}",
            f"paths.reports={work / 'reports'}",
        ]
    )
    train(cfg)
    rows = [line.split(",") for line in (work / "reports" / HISTORY_FILE).read_text().splitlines()]
    history = [dict(zip(rows[0], map(float, row))) for row in rows[1:]]
    x_test, y_test = load_split(cfg, "test")
    started = time.perf_counter()
    model = load_model(work / "models" / MODEL_FILE, jit_compile=cfg.train.jit_compile)
    p_positive = batches.predict(model, x_test, cfg.train)
    eval_seconds = time.perf_counter() - started
    return {
        "epochs": [
            {
                "epoch": int(h["epoch"]),
                "train_seconds": h["train_seconds"],
                "epoch_seconds": h["epoch_seconds"],
                "val_accuracy": h["val_accuracy"],
            }
            for h in history
        ],
        "n_train": int(len(load_split(cfg, "train")[1])),
        "n_test": len(y_test),
        "eval_seconds": eval_seconds,
        "test_accuracy": float(np.mean((p_positive >= 0.5) == y_test)),
        "config": cfg.to_dict(),
    }


# --levers: the pipeline with one speed setting changed at a time, in the same invocation, so
# each lever's effect is a side-by-side ratio. "lecture computation" is the reference's
# arithmetic (zeros in front, no mask, every padded step) through the pipeline's code.
LEVERS = {
    "no bucketing": ["train.bucket_by_length=false"],
    "lecture computation": ["data.padding=pre", "model.mask_padding=false", "train.bucket_by_length=false"],
    "XLA": ["train.jit_compile=true"],
    "batch 256, lr x2": ["train.batch_size=256", "train.learning_rate=0.002"],
    "eval batch 64": ["train.eval_batch_size=64"],
}


def side_in_subprocess(side: str, args, tokens: Path, work: Path, overrides: list[str] = ()) -> dict:
    """Run one side in a fresh process; returns its figures plus its peak RSS."""
    out = work / f"{side.replace(' ', '_').replace(',', '')}.json"
    kind = "reference" if side == "reference" else "pipeline"
    command = [
        sys.executable,
        __file__,
        "--side",
        kind,
        "--tokens",
        str(tokens),
        "--epochs",
        str(args.epochs),
        "--out",
        str(out),
        *args.overrides,
        *overrides,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}"}
    proc = subprocess.Popen(command, env=env, cwd=work)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"the {side} side failed")
    result = json.loads(out.read_text())
    result["peak_rss_mib"] = round(usage.ru_maxrss / 1024)
    return result


def summarize(result: dict) -> dict:
    train_seconds = statistics.median(e["train_seconds"] for e in result["epochs"])
    return {
        "median_train_seconds": round(train_seconds, 1),
        "median_epoch_seconds": round(statistics.median(e["epoch_seconds"] for e in result["epochs"]), 1),
        "train_reviews_per_s": round(result["n_train"] / train_seconds, 1),
        "eval_reviews_per_s": round(result["n_test"] / result["eval_seconds"], 1),
        "best_val_accuracy": round(max(e["val_accuracy"] for e in result["epochs"]), 4),
        "test_accuracy": round(result["test_accuracy"], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the pipeline side")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fraction", type=float, default=1.0, help="share of each split to use")
    parser.add_argument("--skip-reference", action="store_true", help="pipeline side only (no ratios)")
    parser.add_argument("--levers", action="store_true", help="also the pipeline with each speed lever changed")
    parser.add_argument("--name", help="results name (default: from the options)")
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    parser.add_argument("--side", choices=["reference", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_intermixed_args()  # options may come after the overrides

    if args.side:  # a child process: one side, figures to --out
        result = (
            run_reference(args.tokens, args.epochs)
            if args.side == "reference"
            else run_pipeline(args.tokens, args.epochs, args.overrides, Path.cwd())
        )
        args.out.write_text(json.dumps(result))
        return

    name = args.name or "-".join(
        [f"e{args.epochs}", f"f{args.fraction:g}", *args.overrides] + (["levers"] if args.levers else [])
    ).replace("=", "_")
    work = WORK / f"speed-{name}"
    work.mkdir(parents=True, exist_ok=True)
    tokens = prepare_tokens(args.archive, args.sha256)
    if args.fraction < 1:
        tokens = subset_tokens(tokens, args.fraction, work / "tokens")

    sides = {"pipeline": side_in_subprocess("pipeline", args, tokens, work)}
    if not args.skip_reference:
        sides["reference"] = side_in_subprocess("reference", args, tokens, work)
    for lever, overrides in LEVERS.items() if args.levers else ():
        sides[lever] = side_in_subprocess(lever, args, tokens, work, overrides)
    report = {
        "name": name,
        "epochs": args.epochs,
        "fraction": args.fraction,
        "overrides": args.overrides,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sides": {
            side: {
                "summary": summarize(r),
                "peak_rss_mib": r["peak_rss_mib"],
                "epochs": r["epochs"],
                "eval_seconds": round(r["eval_seconds"], 1),
                "n_train": r["n_train"],
                "n_test": r["n_test"],
            }
            for side, r in sides.items()
        },
    }

    print(f"\n{'side':<20} {'epoch':>5} {'train s':>8} {'epoch s':>8} {'val acc':>8}")
    for side, r in sides.items():
        for e in r["epochs"]:
            print(
                f"{side:<20} {e['epoch']:>5} {e['train_seconds']:>8.1f} {e['epoch_seconds']:>8.1f} {e['val_accuracy']:>8.4f}"
            )
    print(
        f"\n{'side':<20} {'train rev/s':>11} {'eval rev/s':>10} {'best val':>8} {'test acc':>8} {'peak MiB':>8}"
        + ("  train x  eval x  (vs reference)" if "reference" in sides else "")
    )
    for side, r in report["sides"].items():
        s = r["summary"]
        line = (
            f"{side:<20} {s['train_reviews_per_s']:>11} {s['eval_reviews_per_s']:>10} "
            f"{s['best_val_accuracy']:>8} {s['test_accuracy']:>8} {r['peak_rss_mib']:>8}"
        )
        if "reference" in sides and side != "reference":
            ref = report["sides"]["reference"]["summary"]
            r["vs_reference"] = {
                "train_throughput": round(s["train_reviews_per_s"] / ref["train_reviews_per_s"], 2),
                "eval_throughput": round(s["eval_reviews_per_s"] / ref["eval_reviews_per_s"], 2),
                "best_val_accuracy_diff": round(s["best_val_accuracy"] - ref["best_val_accuracy"], 4),
            }
            line += f"  {r['vs_reference']['train_throughput']:>7} {r['vs_reference']['eval_throughput']:>7}"
        print(line)
    if "reference" in sides:
        report["ratios"] = report["sides"]["pipeline"]["vs_reference"]
        print(
            f"\npipeline/reference: training throughput x{report['ratios']['train_throughput']}, "
            f"evaluation throughput x{report['ratios']['eval_throughput']}, "
            f"best val accuracy {report['ratios']['best_val_accuracy_diff']:+.4f}"
        )
    out = write_results(f"train_speed-{name}", report)
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

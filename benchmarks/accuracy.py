"""The accuracy table: each configuration's test and validation accuracy and training minutes on
this machine, with the TF-IDF + logistic regression baseline of the same split beside it.

    python benchmarks/accuracy.py                    # every configuration not yet in the results file
    python benchmarks/accuracy.py w2v-max w2v        # these rows (measured again if already there)
    python benchmarks/accuracy.py --list             # the configurations and their overrides

Each configuration is a list of Hydra overrides on the default config (CONFIGURATIONS below).
The stages that do not depend on the model (download, tokenize, pad, pretrain, baseline) run once
per distinct data + pretrain config in benchmarks/.work/accuracy/prepared-<digest>/, and every
configuration sharing them runs train and evaluate in its own directory, reading the prepared
data by absolute path; each stage is its own process, as in benchmarks/pipeline.py. Rows are
added to benchmarks/results/accuracy.json as they finish, each with its machine: a table whose
rows ran on different CPU kinds says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, archive_overrides, machine, run_stage  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "accuracy"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
W2V = ["pretrain.method=word2vec"]
WIDE_3 = ["experiment=wide-ensemble"]  # the preset, so its settings live in one place
# name -> overrides of the default config. The default itself is "default".
CONFIGURATIONS = {
    "default": [],
    "default-seed45": ["train.seed=45"],
    "default-seed48": ["train.seed=48"],
    "random-last": ["pretrain.method=none", "model.pooling=last"],
    "w2v-last": [*W2V, "model.pooling=last"],
    "w2v-mean": [*W2V, "model.pooling=mean"],
    "w2v-max": [*W2V, "model.pooling=max"],
    "w2v-max-20k": [*W2V, "model.pooling=max", "data.num_words=20000"],
    "w2v-max-units128": [*W2V, "model.pooling=max", "model.units=128"],
    "w2v-max-word-dropout": [*W2V, "model.pooling=max", "train.word_dropout=0.1"],
    "w2v-max-single": [*W2V, "model.pooling=max", "train.ensemble=1"],
    "lm-max": ["pretrain.method=lm", "model.pooling=max"],
    "w2v-max-cosine": [*W2V, "model.pooling=max", "train.lr_schedule=cosine"],
    "w2v-max-cosine-12": [*W2V, "model.pooling=max", "train.lr_schedule=cosine", "train.epochs=12"],
    "w2v-max-wide-3": WIDE_3,
    "w2v-max-wide-3-30k": [*WIDE_3, "data.num_words=30000"],
    "w2v-max-wide-3-seed45": [*WIDE_3, "train.seed=45"],
}
PREPARED_STAGES = ("download", "tokenize", "pad", "pretrain", "baseline")
MODEL_STAGES = ("train", "evaluate")


def compose(folder: Path, overrides: list[str], env: dict) -> dict:
    """params.yaml for `overrides` in `folder`, through the project's own config command."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "src.config", *overrides], cwd=folder, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return yaml.safe_load((folder / "params.yaml").read_text())


def stage_commands() -> dict[str, list[str]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: [sys.executable if word == "python" else word for word in spec["cmd"].split()]
            for name, spec in stages.items()}


def prepared(name: str, overrides: list[str], env: dict) -> tuple[Path, dict]:
    """The folder holding the model-independent stages' outputs for these overrides, run if new,
    and its record (stage seconds, the baseline's metrics)."""
    params = compose(WORK / f"scratch-{name}", overrides, env)
    # What the prepared stages read: the data, the pretraining and the vectors' width.
    key = {"data": params["data"], "pretrain": params["pretrain"],
           "embedding_dim": params["model"]["embedding_dim"] if params["pretrain"]["method"] != "none" else None}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    folder = WORK / f"prepared-{digest}"
    record = folder / "prepared.json"
    if record.is_file():
        return folder, json.loads(record.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    compose(folder, overrides, env)
    commands = stage_commands()
    seconds = {}
    for stage in PREPARED_STAGES:
        print(f"--- {folder.name} {stage}", flush=True)
        seconds[stage] = round(run_stage(commands[stage], folder, env)[0], 1)
    result = {"key": key, "seconds": seconds,
              "baseline": json.loads((folder / params["paths"]["reports"] / "baseline.json").read_text())}
    record.write_text(json.dumps(result, indent=2) + "\n")
    return folder, result


def measure(name: str, overrides: list[str], env: dict) -> dict:
    folder, prep = prepared(name, overrides, env)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    shared_paths = [f"paths.{key}={folder / params['paths'][key]}" for key in ("raw", "tokens", "padded", "pretrained")]
    run = WORK / name
    shutil.rmtree(run, ignore_errors=True)
    params = compose(run, [*overrides, *shared_paths], env)
    commands = stage_commands()
    seconds = {}
    for stage in MODEL_STAGES:
        print(f"--- {name} {stage}", flush=True)
        seconds[stage] = round(run_stage(commands[stage], run, env)[0], 1)
    reports, model = run / params["paths"]["reports"], run / params["paths"]["model"]
    metrics = json.loads((reports / "metrics.json").read_text())
    trained = json.loads((model / "run.json").read_text())
    history = (reports / "history.csv").read_text().splitlines()
    epochs = [dict(zip(history[0].split(","), row.split(","))) for row in history[1:]]
    return {
        "overrides": overrides,
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "test_accuracy": metrics["accuracy"],
        "test_roc_auc": metrics["roc_auc"],
        "val_accuracy": trained["best_val_accuracy"],
        "train_minutes": round(seconds["train"] / 60, 1),
        # The stages a fresh `dvc repro` of this configuration runs too.
        "pipeline_minutes": round((sum(prep["seconds"].values()) + sum(seconds.values())) / 60, 1),
        "prepared_seconds": prep["seconds"],
        "epochs_run": len(epochs),
        "config": {"model": params["model"], "num_words": params["data"]["num_words"],
                   "maxlen": params["data"]["maxlen"], "pretrain": params["pretrain"]["method"],
                   "epochs": params["train"]["epochs"], "ensemble": params["train"]["ensemble"]},
        "baseline_test_accuracy": prep["baseline"]["accuracy"],
        "baseline_val_accuracy": prep["baseline"]["val_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="configurations to (re)measure; default: those not yet measured")
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    args = parser.parse_args()
    if args.list:
        for name, overrides in CONFIGURATIONS.items():
            print(f"{name:<22} {' '.join(overrides) or '(the default config)'}")
        return
    unknown = [name for name in args.names if name not in CONFIGURATIONS]
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}; see --list")
    table = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": {}}
    names = args.names or [name for name in CONFIGURATIONS if name not in table["rows"]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the stages run in scratch folders, not the project root
    for name in names:
        overrides = [*archive_overrides(args.archive, args.sha256), *CONFIGURATIONS[name]]
        # A store per configuration: two invocations of this script may run side by side.
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{WORK / f'mlflow-{name}.db'}"
        row = measure(name, overrides, env)
        row["overrides"] = CONFIGURATIONS[name]
        table = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": {}}  # another run's rows too
        table["rows"][name] = row
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(table, indent=2) + "\n")  # after each row: a long run keeps what finished
        print(f"{name}: test {row['test_accuracy']:.4f}  val {row['val_accuracy']:.4f}  "
              f"train {row['train_minutes']} min  baseline {row['baseline_test_accuracy']:.4f}", flush=True)
    print_table(table)


def print_table(table: dict) -> None:
    print(f"\n{'configuration':<22} {'test':>7} {'val':>7} {'train min':>9} {'pipeline min':>12} {'baseline':>8}  cpu")
    for name, r in table["rows"].items():
        cpu = "avx512" if r["machine"]["avx512"] else "no-avx512"
        print(f"{name:<22} {r['test_accuracy']:>7.4f} {r['val_accuracy']:>7.4f} {r['train_minutes']:>9} "
              f"{r['pipeline_minutes']:>12} {r['baseline_test_accuracy']:>8.4f}  {cpu}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

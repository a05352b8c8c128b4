"""The accuracy table: each configuration's test and validation accuracy as a mean over training
seeds, its training minutes on the machine each seed records, and the bars beside it (NB-weighted logistic
regression, TF-IDF + logistic regression, and the blend of each seed's LSTM with NB-LR).

    python benchmarks/accuracy.py --seeds 3 at plain-2    # measure these rows, each over 3 seeds
    python benchmarks/accuracy.py                          # the table and the picture from the results file
    python benchmarks/accuracy.py --list                   # the configurations and their overrides
    python benchmarks/accuracy.py distill-5 --runs R1,R2,R3  # record these runs as the row's seeds

Each configuration is a list of Hydra overrides on the default config (CONFIGURATIONS below). The
stages that do not depend on the model (download, tokenize, pad, pretrain, baseline, and the
baseline again with baseline=tfidf) run once per distinct data + pretrain config, through the
stages' own functions, into benchmarks/.work/accuracy/prepared-<digest>/. A row is `python -m src.repeat --seeds N` on that
data: repeat k trains and evaluates with train.seed + k * train.ensemble, one child MLflow run
each, all in one store (benchmarks/.work/accuracy/mlflow.db) with the baseline's run, so
`python -m src.compare <baseline run> <r1>,<r2>,<r3>` compares a row with the bar. A row too long
for one session is trained in parts on its prepared data (`python -m src.repeat` from another
train.seed, or the train and evaluate stages for one seed) and recorded with --runs, which checks
that each run's params are the row's but for the seed. Each seed's
LSTM is blended with NB-LR as the blend stage does (weight from validation). Seeds are added to
benchmarks/results/accuracy.json as rows finish, each with its machine; the picture is
docs/accuracy.png (test accuracy against training minutes, the bars as horizontal lines).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from pipeline import SHARED_ARCHIVE, SHARED_SHA256, archive_overrides  # noqa: E402

WORK = ROOT / "benchmarks" / ".work" / "accuracy"
RESULTS = ROOT / "benchmarks" / "results" / "accuracy.json"
PICTURE = ROOT / "docs" / "accuracy.png"
STORE = f"sqlite:///{WORK / 'mlflow.db'}"
# name -> overrides of the default config, each naming what makes the row (so a row stays itself when the default moves).
CONFIGURATIONS = {
    "at": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=8",
    ],  # one model with adversarial training, the cap before at-10
    "plain-2": [
        "train.adversarial=none",
        "train.ensemble=2",
        "train.epochs=8",
    ],  # two averaged plain models: the default before AT
    "at-cosine": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=8",
        "train.lr_schedule=cosine",
    ],  # the step decays to 0 at the cap
    "at-10": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=10",
    ],  # the default: validation still rose at the 8-epoch cap
    "at-10-30k": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=10",
        "data.num_words=30000",
    ],  # a larger vocabulary under AT (plain training overfit it)
    "at-10-20k": ["train.adversarial=at", "train.ensemble=1", "train.epochs=10", "data.num_words=20000"],
    # two of the default's three seeds kept their last (tenth) epoch
    "at-15": ["train.adversarial=at", "train.ensemble=1", "train.epochs=15"],
    # the default, then retrained on train + validation for the epochs validation chose
    "at-10-refit": ["train.adversarial=at", "train.ensemble=1", "train.epochs=10", "train.refit=true"],
    # distillation: the blend of the default LSTM and NB-LR (each on all training reviews) labels the
    # unlabeled reviews; the default's model learns from those and the labeled ones, 7 passes
    "distill-7": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=7",
        "train.teacher=blend",
        "train.teacher_folds=1",
        "train.teacher_epochs=10",
        "train.teacher_unlabeled=1.0",
    ],
    "distill-5": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=5",
        "train.teacher=blend",
        "train.teacher_folds=1",
        "train.teacher_epochs=10",
        "train.teacher_unlabeled=1.0",
    ],  # distill-7 for 5 passes: about 70 minutes, teacher included
    # distill-5's teacher, the student starting from the teacher LSTM's weights: 3 passes
    "distill-start-3": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=3",
        "train.teacher=blend",
        "train.teacher_folds=1",
        "train.teacher_epochs=10",
        "train.teacher_unlabeled=1.0",
        "train.teacher_start=true",
    ],
    # the same with two folds: each labeled review also learns half from the pair that did not see it
    "distill-7-folds-2": [
        "train.adversarial=at",
        "train.ensemble=1",
        "train.epochs=7",
        "train.teacher=blend",
        "train.teacher_folds=2",
        "train.teacher_epochs=10",
        "train.teacher_weight=0.5",
        "train.teacher_unlabeled=1.0",
    ],
    "at-2": ["train.adversarial=at", "train.ensemble=2"],  # two AT models averaged: twice the default's cost
    "vat": ["train.adversarial=vat", "train.ensemble=1"],  # virtual adversarial training, with the unlabeled reviews
    "wide-ensemble": ["experiment=wide-ensemble"],
    "w2v-max-cosine": ["train.adversarial=none", "train.ensemble=2", "train.lr_schedule=cosine"],
    "w2v-max-wide-3-30k": ["experiment=wide-ensemble", "data.num_words=30000"],
}


def prepared(overrides: list[str]) -> tuple[Path, dict]:
    """The folder holding the outputs of the stages that do not depend on the model (download,
    tokenize, pad, pretrain, the baseline with NB-LR and with TF-IDF) for these overrides, made
    by the stages' own functions if new, and its record (stage seconds, both baselines' metrics)."""
    import time
    from dataclasses import replace

    from src.lib import config
    from src.stages import baseline, download, pad, pretrain, tokenize

    cfg = config.compose(overrides)
    # What those stages read: the data, the pretraining, the baseline and the vectors' width.
    key = {
        "data": asdict(cfg.data),
        "pretrain": asdict(cfg.pretrain),
        "baseline": asdict(cfg.baseline),
        "embedding_dim": cfg.model.embedding_dim if cfg.pretrain.method != "none" else None,
    }
    folder = WORK / f"prepared-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]}"
    record = folder / "prepared.json"
    if record.is_file():
        return folder, json.loads(record.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    cfg = config.compose([*overrides, *(f"paths.{name}={folder / path}" for name, path in asdict(cfg.paths).items())])
    tfidf = replace(
        cfg,
        baseline=config.compose([*overrides, "baseline=tfidf"]).baseline,
        paths=replace(cfg.paths, reports=str(folder / "tfidf")),
    )
    seconds, scores = {}, {}
    for name, run in (
        ("download", download.download),
        ("tokenize", tokenize.tokenize),
        ("pad", pad.pad_splits),
        ("pretrain", pretrain.pretrain),
        ("baseline", baseline.fit_and_score),
        ("baseline_tfidf", lambda _: baseline.fit_and_score(tfidf)),
    ):
        print(f"--- {folder.name} {name}", flush=True)
        started = time.perf_counter()
        scores[name] = run(cfg)
        seconds[name] = round(time.perf_counter() - started, 1)
    (folder / "params.yaml").write_text(config.to_yaml(cfg))
    result = {"key": key, "seconds": seconds, "nblr": scores["baseline"], "tfidf": scores["baseline_tfidf"]}
    record.write_text(json.dumps(result, indent=2) + "\n")
    return folder, result


def prepared_config(folder: Path, overrides: list[str] = ()):
    """The config of a prepared folder: conf/ with these overrides, reading the folder's outputs."""
    from src.lib import config

    paths = yaml.safe_load((folder / "params.yaml").read_text())["paths"]
    return config.compose([*overrides, *(f"paths.{key}={value}" for key, value in paths.items())])


def measure(name: str, overrides: list[str], seeds: int, env: dict) -> tuple[list[dict], dict]:
    """Each seed's figures of `python -m src.repeat --seeds <seeds>` on the prepared data."""
    folder, prep = prepared(overrides)
    params = yaml.safe_load((folder / "params.yaml").read_text())
    shared = [f"paths.{key}={folder / params['paths'][key]}" for key in ("raw", "tokens", "padded", "pretrained")]
    run = WORK / name
    run.mkdir(parents=True, exist_ok=True)
    print(f"--- {name}: src.repeat --seeds {seeds} {' '.join(overrides)}", flush=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "src.repeat",
            "--seeds",
            str(seeds),
            *overrides,
            *shared,
            f"tracking.run_name=accuracy-{name}",
        ],
        cwd=run,
        env=env,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    print(out, end="", flush=True)
    return seed_figures(re.search(r"^runs: (.+)$", out, re.M).group(1).split(","), folder), prep


def adopt(name: str, overrides: list[str], run_ids: list[str]) -> tuple[list[dict], dict]:
    """Each seed's figures of runs already in the store (a long row's seeds trained in several
    sessions, each by `python -m src.repeat` or the train and evaluate stages on the row's prepared
    data), once every run's params match the row's config but for its seed (a setting the run
    does not record must have its default value in the row)."""
    import mlflow

    from src.lib import config, tracking

    folder, prep = prepared(overrides)
    wanted = tracking.flat_params(prepared_config(folder, overrides))
    # A setting newer than a run is absent from its params; it defaults to what came before.
    default = tracking.flat_params(config.compose([]))
    ignored = ("train.seed", "paths.model", "paths.reports", "tracking.")
    client = mlflow.MlflowClient(STORE)
    members = set()  # an ensemble's run of seed s trains seeds s .. s + ensemble - 1
    for run_id in run_ids:
        run = client.get_run(run_id)
        logged = run.data.params
        if run.info.status != "FINISHED" or not {"test_accuracy", "best_val_accuracy"} <= set(run.data.metrics):
            sys.exit(f"run {run_id} is not a finished, evaluated training run (status {run.info.status})")
        differ = [
            f"{key}={logged.get(key, '(not logged)')} (the row's: {value})"
            for key, value in wanted.items()
            if not key.startswith(ignored) and logged.get(key, default[key]) != value
        ]
        if differ:
            sys.exit(f"run {run_id} is not a seed of {name}: {', '.join(differ)}")
        first = int(logged["train.seed"])
        seeds = set(range(first, first + int(wanted["train.ensemble"])))
        if members & seeds:
            sys.exit(f"the runs of {name} share training seeds {sorted(members & seeds)}: they are not independent")
        members |= seeds
    return seed_figures(run_ids, folder), prep


def seed_figures(run_ids: list[str], folder: Path) -> list[dict]:
    """Each run's seed, machine, test and validation accuracy, minutes, and its blend with the prepared
    folder's NB-LR (the weight chosen on validation, as the blend stage does)."""
    import mlflow
    import numpy as np

    from src.lib import predictions
    from src.lib.blending import blended, choose_weight

    params = yaml.safe_load((folder / "params.yaml").read_text())
    client = mlflow.MlflowClient(STORE)
    mlflow.set_tracking_uri(STORE)  # predictions.from_run reads the global store
    bar = {
        split: predictions.load(
            folder / params["paths"]["reports"] / predictions.DIRECTORY / f"baseline-{predictions.file_name(split)}"
        )
        for split in ("val", "test")
    }
    rows = []
    for run_id in run_ids:
        info = client.get_run(run_id)
        # Fitting ends where best_val_accuracy is logged: the evaluate stage reopens the run later.
        fitted_ms = client.get_metric_history(run_id, "best_val_accuracy")[-1].timestamp
        lstm = {split: predictions.from_run(run_id, split) for split in ("val", "test")}
        weight = choose_weight(lstm["val"], bar["val"], params["blend"]["weight_step"])
        rows.append(
            {
                "seed": int(info.data.params["train.seed"]),
                "run_id": run_id,
                "when": datetime.fromtimestamp(fitted_ms / 1000, UTC).isoformat(timespec="seconds"),
                "machine": recorded_machine(info.data.tags),
                "test_accuracy": info.data.metrics["test_accuracy"],
                "val_accuracy": info.data.metrics["best_val_accuracy"],
                "train_minutes": round((fitted_ms - info.info.start_time) / 60000, 1),
                "epochs_run": int(info.data.metrics["epochs_run"]),
                "blend_weight": weight,
                "blend_test_accuracy": float(
                    np.mean((blended(lstm["test"], bar["test"], weight).probability >= 0.5) == lstm["test"].label)
                ),
            }
        )
    return rows


def minutes(row: dict) -> float:
    """A row's training minutes per seed: measured alone when the row records it (its seeds may
    have shared the cores), else the median over its seeds."""
    return row.get("alone", {}).get("train_minutes") or statistics.median(s["train_minutes"] for s in row["seeds"])


def summary(seeds: list[dict], key: str) -> tuple[float, float | None]:
    values = [s[key] for s in seeds if s.get(key) is not None]
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


def recorded_machine(tags: dict) -> dict | None:
    """The CPU a run recorded (a row's seeds may come from several sessions); None before runs did."""
    if "cpu" not in tags:
        return None
    return {"cpu": tags["cpu"], "avx512": tags["cpu.avx512"] == "yes", "onednn": tags["tensorflow.onednn"]}


def cpu_kind(seed: dict) -> str:
    if seed["machine"] is None:
        return "cpu not recorded"
    return ("avx512 " if seed["machine"]["avx512"] else "no-avx512 ") + seed["machine"]["cpu"].split()[0]


DEFAULT_ROW = "at-10"  # the default config's row: every other row is compared with it


def over_seeds(table: dict, nblr_test) -> None:
    """Each row against the default, and the default against NB-LR: B - A of the mean single
    run's test accuracy with its 95% interval over seeds and reviews (src.lib.significance.
    compare_groups, the comparison `python -m src.compare A1,A2,A3 B1,B2,B3` prints), for rows
    whose runs are in this store; kept in the table as each row's "over_seeds"."""
    import mlflow

    from src.lib import predictions, significance
    from src.lib.errors import UserError

    mlflow.set_tracking_uri(STORE)

    def test_predictions(row: dict):
        try:
            return [predictions.from_run(seed["run_id"], "test") for seed in row["seeds"]]
        except UserError:
            return None  # measured in another store (an earlier machine's)

    def summary(c) -> dict:
        return {
            "difference": c.accuracy_difference,
            "ci95": list(c.accuracy_ci),
            "p": c.p,
            "verdict": c.verdict,
            "seeds": [len(c.accuracies_a), len(c.accuracies_b)],
            "ensemble_difference": c.ensemble_accuracy_b - c.ensemble_accuracy_a,
        }

    default = test_predictions(table["rows"][DEFAULT_ROW])
    if default is None:
        return
    table["rows"][DEFAULT_ROW]["over_seeds"] = {"against": "NB-LR"} | summary(
        significance.compare_groups([nblr_test], default)
    )
    for name, row in table["rows"].items():
        runs = None if name == DEFAULT_ROW else test_predictions(row)
        if runs is not None:
            row["over_seeds"] = {"against": DEFAULT_ROW} | summary(significance.compare_groups(default, runs))


def print_table(table: dict) -> None:
    refs = table["references"]
    print(
        f"\nreferences (deterministic, no training seed): NB-LR test {refs['nblr']['accuracy']:.4f} "
        f"(val {refs['nblr']['val_accuracy']:.4f}), TF-IDF test {refs['tfidf']['accuracy']:.4f} "
        f"(val {refs['tfidf']['val_accuracy']:.4f})"
    )
    print(
        f"{'configuration':<20} {'seeds':<14} {'test mean +- sd':>16} {'val mean +- sd':>16} "
        f"{'train min':>9} {'blend test':>16}  cpu"
    )
    for name, row in table["rows"].items():
        seeds = row["seeds"]
        cells = []
        for key in ("test_accuracy", "val_accuracy", "blend_test_accuracy"):
            if not any(s.get(key) is not None for s in seeds):
                cells.append("-")
                continue
            mean, sd = summary(seeds, key)
            cells.append(f"{mean:.4f}" + (f" +- {sd:.4f}" if sd is not None else " (1 seed)"))
        kinds = ", ".join(sorted({cpu_kind(s) for s in seeds}))
        print(
            f"{name:<20} {','.join(str(s['seed']) for s in seeds):<14} {cells[0]:>16} {cells[1]:>16} "
            f"{minutes(row):>9} {cells[2]:>16}  {kinds}"
        )
    print("\nover seeds and reviews (the mean single run's test accuracy, two-level bootstrap):")
    for name, row in table["rows"].items():
        if "over_seeds" in row:
            c = row["over_seeds"]
            print(
                f"  {name} - {c['against']}: {100 * c['difference']:+.2f} points, 95% CI [{100 * c['ci95'][0]:+.2f}, "
                f"{100 * c['ci95'][1]:+.2f}] ({c['seeds'][1]} seeds against {c['seeds'][0]}): {c['verdict']}"
            )


def draw(table: dict) -> None:
    """Test accuracy (mean over seeds, each seed a dot) against training minutes per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    for name, row in table["rows"].items():
        seeds = row["seeds"]
        if len(seeds) < 2:
            continue  # one seed is a draw, not a result
        x = minutes(row)
        accuracies = [s["test_accuracy"] for s in seeds]
        line = ax.errorbar([x], [statistics.mean(accuracies)], yerr=[[0], [0]], fmt="o", ms=8, label=None)
        ax.scatter([x] * len(accuracies), accuracies, s=14, color=line[0].get_color(), alpha=0.5)
        ax.annotate(
            f"{name} ({len(seeds)} seeds)",
            (x, statistics.mean(accuracies)),
            textcoords="offset points",
            xytext=(8, -3),
            fontsize=9,
        )
        blends = [s["blend_test_accuracy"] for s in seeds if s.get("blend_test_accuracy") is not None]
        if blends:  # the blend adds the baseline's minute
            ax.scatter([x + 1], [statistics.mean(blends)], marker="D", s=40, color=line[0].get_color())
            ax.annotate(
                f"{name} + NB-LR blend ({len(blends)} seed{'s' if len(blends) > 1 else ''})",
                (x + 1, statistics.mean(blends)),
                textcoords="offset points",
                xytext=(8, -3),
                fontsize=9,
            )
    for key, label, style in (
        ("nblr", "NB-weighted logistic regression", "-"),
        ("tfidf", "TF-IDF + logistic regression", ":"),
    ):
        ax.axhline(table["references"][key]["accuracy"], color="grey", linestyle=style, label=f"{label} (~1 min)")
    ax.set_xlabel("training minutes per seed: alone where measured so, else the median (2 cores; accuracy.json)")
    ax.set_ylabel("test accuracy (large dot: mean over seeds; small: each seed)")
    ax.set_title("IMDB test accuracy against training time")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(PICTURE)
    print(f"wrote {PICTURE.relative_to(ROOT)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="configurations to measure (again: their seeds are replaced)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per configuration (>= 2), default 3")
    parser.add_argument(
        "--runs",
        help="comma-separated runs in the store to record as one named configuration's seeds, instead of "
        "training it (a long row's seeds, trained in several sessions)",
    )
    parser.add_argument("--list", action="store_true", help="print the configurations and exit")
    parser.add_argument("--archive", default=str(SHARED_ARCHIVE))
    parser.add_argument("--sha256", default=SHARED_SHA256)
    args = parser.parse_args()
    if args.list:
        for name, overrides in CONFIGURATIONS.items():
            print(f"{name:<20} {' '.join(overrides) or '(the default config)'}")
        return
    unknown = [name for name in args.names if name not in CONFIGURATIONS]
    if unknown:
        sys.exit(f"unknown configuration(s) {unknown}; see --list")
    if args.seeds < 2:
        sys.exit(f"--seeds must be >= 2 (one seed is a draw, not a result), got {args.seeds}")
    runs = args.runs.split(",") if args.runs else None
    if runs and (len(args.names) != 1 or len(runs) < 2):
        sys.exit("--runs needs one configuration and at least two runs (one seed is a draw, not a result)")
    os.environ["MLFLOW_TRACKING_URI"] = STORE  # the baseline's run (made here) and the rows' runs in one store
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    WORK.mkdir(parents=True, exist_ok=True)
    for name in args.names:
        overrides = [*archive_overrides(args.archive, args.sha256), *CONFIGURATIONS[name]]
        seeds, prep = adopt(name, overrides, runs) if runs else measure(name, overrides, args.seeds, env)
        table = json.loads(RESULTS.read_text())  # another invocation's rows too
        table["rows"][name] = {
            "overrides": CONFIGURATIONS[name],
            "seeds": seeds,
        }  # a new row: its "alone" minutes are measured apart
        table["references"] = {"nblr": prep["nblr"], "tfidf": prep["tfidf"], "prepared_seconds": prep["seconds"]}
        RESULTS.write_text(json.dumps(table, indent=2) + "\n")  # after each row: a long run keeps what finished
        print(f"wrote row {name} to {RESULTS.relative_to(ROOT)}", flush=True)
    table = json.loads(RESULTS.read_text())
    if (WORK / "mlflow.db").is_file():  # the rows' runs are here: compare them over seeds
        default_folder, _ = prepared([*archive_overrides(args.archive, args.sha256), *CONFIGURATIONS[DEFAULT_ROW]])
        default_params = yaml.safe_load((default_folder / "params.yaml").read_text())
        from src.lib import predictions

        nblr = predictions.load(
            default_folder
            / default_params["paths"]["reports"]
            / predictions.DIRECTORY
            / f"baseline-{predictions.file_name('test')}"
        )
        over_seeds(table, nblr)
        RESULTS.write_text(json.dumps(table, indent=2) + "\n")
    print_table(table)
    draw(table)


if __name__ == "__main__":
    main()

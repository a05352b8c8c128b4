"""`dvc repro` and `dvc exp run` end to end, in a temporary git + DVC copy of the project: the
first repro is killed in each stage (SIGTERM, then SIGKILL) and the next one recovers with no
manual cleanup, no partial output that looks valid and truthful MLflow run states."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml

from src.lib import blending, predictions
from src.stages import blend as blend_stage
from tests.conftest import dvc, git, runs

pytestmark = pytest.mark.slow

FAULTS = Path(__file__).resolve().parent / "faults"  # its sitecustomize pauses a stage before publishing

# (stage, the first and the last output it renames into place, the DVC outputs that must not exist).
# SIGTERM is sent while the last one waits (the ones before must be taken back), SIGKILL while the
# first one waits (nothing can be taken back after a SIGKILL: between two renames is the one
# moment, microseconds wide, a SIGKILL leaves part of a group; the next `dvc repro` replaces it).
STAGE_FAULTS = [
    ("download", "raw", "raw", ["data/raw"]),
    ("tokenize", "tokens", "tokens", ["data/tokens"]),
    (
        "train",
        "model.keras",
        "run.json",
        [
            "models/model.keras",
            "models/vocab.txt",
            "models/settings.json",
            "models/run.json",
            "reports/history.csv",
            "reports/predictions/val.npz",
        ],
    ),
    (
        "evaluate",
        "roc.csv",
        "metrics.json",
        ["reports/metrics.json", "reports/roc.csv", "reports/confusion.csv", "reports/predictions/test.npz"],
    ),
]


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, f"exited {proc.returncode} before the fault point: {proc.communicate()}"
        assert time.monotonic() < deadline, f"no fault point reached within {seconds} s"
        time.sleep(0.2)


def leftovers(repo: Path) -> list[Path]:
    """Temporary outputs (ours are named .<name>.tmp-<pid>-...) anywhere outside .git and .dvc."""
    return [p for p in repo.rglob("*.tmp-*") if not {".git", ".dvc"} & set(p.relative_to(repo).parts)]


def kill_in_each_stage(repo: Path, marker: Path) -> None:
    """`dvc repro` killed in each stage, SIGTERM then SIGKILL: each time nothing that looks finished."""
    for stage, first, last, outputs in STAGE_FAULTS:
        # Killed twice in each stage: SIGTERM first, then SIGKILL (the stages before it are done by then).
        for signum in (signal.SIGTERM, signal.SIGKILL):
            publish = last if signum == signal.SIGTERM else first
            env = {
                **os.environ,
                "PYTHONPATH": f"{FAULTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
                "FAULT_STAGE": stage,
                "FAULT_PUBLISH": publish,
                "FAULT_MARKER": str(marker),
            }
            # Its own process group, as a shell job: the signal reaches dvc and the stage it runs.
            proc = subprocess.Popen(
                [sys.executable, "-m", "dvc", "repro"],
                cwd=repo,
                env=env,
                start_new_session=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            wait_for(marker, proc)
            os.killpg(proc.pid, signum)
            output, _ = proc.communicate(timeout=120)
            assert proc.returncode != 0, output
            if signum == signal.SIGTERM:
                assert "terminated" in output and "Traceback" not in output, output
            marker.unlink()

            # Nothing that looks finished: DVC does not record the stage, its outputs are absent.
            lock = yaml.safe_load((repo / "dvc.lock").read_text()) if (repo / "dvc.lock").exists() else {}
            assert stage not in (lock or {}).get("stages", {}), signum
            assert [out for out in outputs if (repo / out).exists()] == [], signum
            if signum == signal.SIGTERM:
                assert leftovers(repo) == []  # removed on the way out
            if stage in ("train", "evaluate"):
                # SIGTERM: the run says KILLED itself. SIGKILL: it cannot, so it stays RUNNING until
                # the next run started on this host finds its process gone.
                assert runs(repo)[-1].info.status == ("KILLED" if signum == signal.SIGTERM else "RUNNING"), signum


def challenger(repo: Path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    return client.get_model_version_by_alias("imdb-lstm", "challenger")


def test_repro_killed_then_completed_then_experiment(repo, tmp_path):
    kill_in_each_stage(repo, tmp_path / "paused")
    dvc(repo, "repro")  # no fault: recovers from wherever the last kill left it
    assert leftovers(repo) == []  # a SIGKILLed writer's temporary files: removed by the next writer
    # The runs killed in train (SIGTERM, SIGKILL: marked by the next start), then the one killed
    # twice in evaluate and finished by the last repro.
    *killed, run = runs(repo)
    assert [r.info.status for r in killed] == ["KILLED", "KILLED"]

    metrics = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    [scores] = [m["data"]["reports/metrics.json"]["data"] for m in metrics.values()]
    # The baseline stage's figures beside the LSTM's, and its own MLflow run.
    [baseline] = [m["data"]["reports/baseline.json"]["data"] for m in metrics.values()]
    [baseline_run] = runs(repo, "baseline")
    assert baseline_run.data.metrics["test_accuracy"] == pytest.approx(baseline["accuracy"])
    assert baseline_run.data.tags["baseline"] == "nblr"
    # The blend of the two, the third figure of `dvc metrics show`, with its own run.
    [blend] = [m["data"]["reports/blend.json"]["data"] for m in metrics.values()]
    [blend_run] = runs(repo, "blend")
    assert blend_run.data.metrics["test_accuracy"] == pytest.approx(blend["accuracy"])
    # Its weight: a point of blend.weight_step's grid, the one chosen on the two validation predictions.
    step = yaml.safe_load((repo / "params.yaml").read_text())["blend"]["weight_step"]
    folder = repo / "reports" / predictions.DIRECTORY
    val = [folder / (prefix + predictions.file_name("val")) for prefix in ("", blend_stage.BASELINE_PREFIX)]
    assert blend["weight"] in np.linspace(0, 1, round(1 / step) + 1).tolist()
    assert blend["weight"] == blending.choose_weight(*map(predictions.load, val), step)
    assert blend_run.data.metrics["weight"] == blend["weight"]
    assert scores["accuracy"] >= 0.9 and scores["roc_auc"] >= 0.9
    assert sum(scores["confusion_matrix"].values()) == 32

    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    assert set(plots) == {"Training curves", "ROC curve (test)", "Confusion matrix (test)"}
    points = {name: plot[0]["content"]["data"]["values"] for name, plot in plots.items()}
    assert {(p["epoch"], p["field"]) for p in points["Training curves"]} >= {("2", "val_accuracy")}
    assert len(points["Confusion matrix (test)"]) == 32

    assert run.info.status == "FINISHED"
    assert run.data.params["model.units"] == "8" and run.data.params["data.maxlen"] == "12"
    assert run.data.metrics["test_accuracy"] == pytest.approx(scores["accuracy"])
    assert run.data.tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert challenger(repo).run_id == run.info.run_id  # registered, with its accuracies
    baseline_version = int(challenger(repo).version)
    assert float(challenger(repo).tags["test_accuracy"]) == pytest.approx(scores["accuracy"])
    assert "Data and pipelines are up to date" in dvc(repo, "repro").stdout

    # An experiment through DVC's Hydra composition: preset plus an override.
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline results")
    dvc(repo, "exp", "run", "-n", "six-units", "-S", "experiment=tiny", "-S", "model.units=6")
    assert yaml.safe_load((repo / "params.yaml").read_text())["model"]["units"] == 6
    params_diff = json.loads(dvc(repo, "params", "diff", "--json").stdout)
    assert (params_diff["params.yaml"]["model.units"]["old"], params_diff["params.yaml"]["model.units"]["new"]) == (
        8,
        6,
    )
    assert "reports/metrics.json" in json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    assert "six-units" in json.dumps(shown)
    # The LSTM's validation accuracy (the saved model's) and epochs are DVC metrics: the README's
    # `dvc exp show` ranks experiments by them.
    ranked = dvc(
        repo,
        "exp",
        "show",
        "--sort-by",
        "reports/metrics.json:val_accuracy",
        "--sort-order",
        "desc",
        "--drop",
        ".*confusion_matrix",
        "--csv",
    ).stdout
    header = ranked.splitlines()[0].split(",")
    # A name the baseline's and blend's files share is shown with its file.
    named = {column.removeprefix("reports/metrics.json:") for column in header}
    assert {"val_accuracy", "epochs", "accuracy"} <= named, header
    assert not any("confusion_matrix" in column for column in header), header
    lstm = json.loads((repo / "reports" / "metrics.json").read_text())
    assert lstm["val_accuracy"] == pytest.approx(runs(repo)[-1].data.metrics["best_val_accuracy"])
    latest = runs(repo)[-1]
    assert latest.data.params["model.units"] == "6" and latest.data.tags["dvc.experiment"] == "six-units"
    assert "test_accuracy" in latest.data.metrics
    assert challenger(repo).run_id == latest.info.run_id and int(challenger(repo).version) == baseline_version + 1

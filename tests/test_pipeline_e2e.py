"""`dvc repro` and `dvc exp run` end to end, in a temporary git + DVC copy of the project."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import dvc, git, runs


def challenger(repo: Path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    return client.get_model_version_by_alias("imdb-lstm", "challenger")


def test_repro_then_experiment_then_bad_archive(repo, tmp_path, tiny_archive, monkeypatch):
    dvc(repo, "repro")

    metrics = json.loads(dvc(repo, "metrics", "show", "--json").stdout)
    [scores] = [m["data"]["reports/metrics.json"]["data"] for m in metrics.values()]
    assert scores["accuracy"] >= 0.9 and 0.9 <= scores["roc_auc"] <= 1.0
    assert sum(scores["confusion_matrix"].values()) == 32

    plots = json.loads(dvc(repo, "plots", "show", "--json").stdout)["data"]
    assert set(plots) == {"Training curves", "ROC curve (test)", "Confusion matrix (test)"}
    points = {name: plot[0]["content"]["data"]["values"] for name, plot in plots.items()}
    assert {(p["epoch"], p["field"]) for p in points["Training curves"]} >= {("2", "val_accuracy")}
    assert len(points["Confusion matrix (test)"]) == 32

    [run] = runs(repo)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.units"] == "8" and run.data.params["data.maxlen"] == "12"
    assert run.data.metrics["test_accuracy"] == pytest.approx(scores["accuracy"])
    assert run.data.tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert challenger(repo).run_id == run.info.run_id  # registered, with its accuracies
    assert float(challenger(repo).tags["test_accuracy"]) == pytest.approx(scores["accuracy"])
    assert "Data and pipelines are up to date" in dvc(repo, "repro").stdout

    # An experiment through DVC's Hydra composition: preset plus an override.
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "baseline results")
    dvc(repo, "exp", "run", "-n", "six-units", "-S", "experiment=tiny", "-S", "model.units=6")
    assert yaml.safe_load((repo / "params.yaml").read_text())["model"]["units"] == 6
    params_diff = json.loads(dvc(repo, "params", "diff", "--json").stdout)
    assert (params_diff["params.yaml"]["model.units"]["old"], params_diff["params.yaml"]["model.units"]["new"]) == (8, 6)
    assert "reports/metrics.json" in json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    shown = json.loads(dvc(repo, "exp", "show", "--json").stdout)
    assert "six-units" in json.dumps(shown)
    latest = runs(repo)[-1]
    assert latest.data.params["model.units"] == "6" and latest.data.tags["dvc.experiment"] == "six-units"
    assert "test_accuracy" in latest.data.metrics
    assert challenger(repo).run_id == latest.info.run_id and str(challenger(repo).version) == "2"

    # A corrupt archive: one clear line, non-zero exit, dvc.lock untouched, no output left.
    lock = (repo / "dvc.lock").read_text()
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(tiny_archive.read_bytes()[: tiny_archive.stat().st_size // 2])
    monkeypatch.setenv("IMDB_URL", str(corrupt))
    monkeypatch.setenv("IMDB_SHA256", __import__("hashlib").sha256(corrupt.read_bytes()).hexdigest())
    failed = dvc(repo, "repro", "-f", "download", check=False)
    assert failed.returncode != 0
    errors = [line for line in (failed.stdout + failed.stderr).splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {corrupt} is not a readable .tar.gz archive (corrupt or truncated?): "
                      + errors[0].split("(corrupt or truncated?): ")[1]]
    assert "Traceback" not in failed.stdout + failed.stderr
    assert (repo / "dvc.lock").read_text() == lock
    assert not (repo / "data" / "raw").exists()

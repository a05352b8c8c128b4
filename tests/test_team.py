"""A teammate's clone: one clone runs the pipeline, commits dvc.lock and the metrics, and pushes
the outputs to a DVC remote; another clone pulls them, is up to date without training, predicts,
and sees a change of its own against the committed numbers."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from src.lib.evaluation import THRESHOLD
from src.lib.model_folder import ReviewClassifier
from tests.conftest import dvc, git, run_module

pytestmark = pytest.mark.slow

TEXT_OUTPUTS = [
    "dvc.lock",
    "params.yaml",
    ".dvc/config",
    "reports/metrics.json",
    "reports/baseline.json",
    "models/run.json",
    "models/settings.json",
    "data/raw/source.json",
    "data/tokens/stats.json",
]


def test_a_teammate_pulls_the_pipeline_instead_of_retraining(repo, tmp_path, monkeypatch):
    dvc(repo, "repro")
    # The remote as a team writes it, here a folder beside both clones (relative to .dvc/, so the
    # committed config names no path of this machine; on S3: `dvc remote add -d team s3://bucket/imdb-lstm`).
    dvc(repo, "remote", "add", "-d", "team", "../../remote")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "results: dvc.lock, metrics, the team's remote")
    dvc(repo, "push")
    for name in TEXT_OUTPUTS:  # what travels holds no path of the machine that made it
        assert str(tmp_path) not in (repo / name).read_text(), name
    committed = set(git(repo, "ls-files").split())
    assert {"dvc.lock", "reports/metrics.json", "reports/baseline.json"} <= committed

    teammate = tmp_path / "teammate"
    subprocess.run(["git", "clone", "-q", str(repo), str(teammate)], check=True)
    dvc(teammate, "pull")
    assert "Data and pipelines are up to date" in dvc(teammate, "status").stdout
    # The model answers without training, and without the first clone's MLflow store.
    predicted = run_module("src.predict", "a wonderful film", cwd=teammate)
    assert predicted.returncode == 0, predicted.stderr
    # The first clone's model, pulled: its score and label (the tiny model's is near 0.5 here).
    [score] = ReviewClassifier.from_folder(repo / "models").predict_proba(["a wonderful film"])
    label = "pos" if score >= THRESHOLD else "neg"
    assert predicted.stdout == f"{label}\t{score:.4f}\ta wonderful film\n"
    assert not (teammate / "mlflow.db").exists()
    # A registry reference needs the team's tracking server: without one, one line says so.
    no_store = run_module("src.predict", "--model", "models:/imdb-lstm@champion", "a film", cwd=teammate)
    assert no_store.returncode == 2 and len(no_store.stderr.strip().splitlines()) == 1

    # A change of the teammate's own, against the committed numbers.
    assert run_module("src.config", "experiment=tiny", "train.epochs=1", cwd=teammate).returncode == 0
    dvc(teammate, "repro")
    diff = json.loads(dvc(teammate, "metrics", "diff", "--all", "--json").stdout)
    assert set(diff) >= {"reports/metrics.json", "reports/baseline.json"}
    loss = diff["reports/metrics.json"]["loss"]
    committed_metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert loss["old"] == committed_metrics["loss"] and loss["new"] != loss["old"]
    assert os.path.isfile(teammate / "mlflow.db")  # the teammate's retraining is tracked in its own store

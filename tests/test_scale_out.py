"""Scale-out on real servers, on loopback: a PostgreSQL server (Debian's package, started
here) holding one Optuna study for three worker processes, one of them SIGKILLed mid-trial,
logging over HTTP to an `mlflow server` with a PostgreSQL backend store. And DVC's queue:
a queued experiment runs in a copy of the project, its run landing in the project's mlflow.db."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import optuna
import pytest

from tests.conftest import copy_project, dvc, free_port, runs, wait_for_trial_epoch, wait_until_serving

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def pg_bin(name: str) -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.fail("PostgreSQL server programs not found: run `bash tests/install_system_deps.sh`")
    return found[-1]


@pytest.fixture(scope="module")
def postgres():
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth, loopback only); yields its base URL."""
    # PostgreSQL refuses to run as root: as root, run it as Debian's postgres user, in a folder
    # it owns outside pytest's root-only temporary tree.
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="imdb-lstm-pg-"))
    if as_postgres:
        shutil.chown(home, "postgres", "postgres")
    data = home / "data"
    subprocess.run(
        [*as_postgres, pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    server = subprocess.Popen(
        [*as_postgres, pg_bin("postgres"), "-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", home],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while (
            subprocess.run([pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True).returncode
            != 0
        ):
            assert server.poll() is None and time.monotonic() < deadline, "PostgreSQL did not start"
            time.sleep(0.5)
        for database in ("optuna", "mlflow"):
            subprocess.run(
                [pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database], check=True
            )
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        # Fast shutdown: disconnects any client left over (a worker killed by the test).
        subprocess.run([*as_postgres, pg_bin("pg_ctl"), "stop", "-D", data, "-m", "fast"], capture_output=True)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    """`mlflow server` with the PostgreSQL backend store and a local artifact root, on 127.0.0.1."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"{postgres}/mlflow",
            "--artifacts-destination",
            str(tmp_path / "mlflow-artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_three_workers_on_postgres_and_an_mlflow_server_one_killed(
    sweep_overrides, postgres, mlflow_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    project = copy_project(tmp_path / "project")
    storage = f"{postgres}/optuna"
    n_trials = 4
    # `python -m src.sweep` on three machines sharing the servers: the first is SIGKILLed mid-trial
    # (its trial stays RUNNING, its heartbeat stops); the other two start together once that
    # heartbeat is stale, so the first trial either of them starts fails the dead one and retries
    # it. (Started with the first, they can fill the study before it is stale: docs/faults.md.)
    stale_seconds = 15  # well beyond a contended heartbeat's delay: a live trial is never taken for dead
    command = [
        sys.executable,
        "-m",
        "src.sweep",
        *sweep_overrides,
        f"sweep.storage={storage}",
        f"sweep.n_trials={n_trials}",
        "sweep.epochs=20",
        "train.patience=0",
        f"sweep.stale_trial_seconds={stale_seconds}",
    ]
    victim = subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed_trial = wait_for_trial_epoch(storage, [victim])
    victim.kill()
    victim.wait(timeout=60)
    time.sleep(stale_seconds + 1)
    survivors = [
        subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    client = mlflow.MlflowClient(mlflow_server)
    for worker in survivors:
        stdout, stderr = worker.communicate(timeout=500)
        assert worker.returncode == 0, stderr[-3000:]
        assert "database is locked" not in stderr

    study = optuna.load_study(study_name="imdb-lstm", storage=storage)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    # n_trials, plus at most one trial per other survivor still running when the n-th finished.
    assert n_trials <= len(finished) <= n_trials + 1
    assert len({t.number for t in trials}) == len(trials)
    assert trials[killed_trial.number].state == optuna.trial.TrialState.FAIL
    [retry] = [t for t in trials if t.system_attrs.get("failed_trial") == killed_trial.number]
    assert retry in finished and retry.params == killed_trial.params

    # Over HTTP, in the server's PostgreSQL store: one parent, every trial's run nested under it.
    experiment = client.get_experiment_by_name("imdb-lstm")
    all_runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in all_runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_trial = {int(c.data.tags["optuna.trial"]): c for c in children}
    assert by_trial[killed_trial.number].info.status == "KILLED"  # marked by a survivor's next run
    for trial in finished:
        # sweep.pruner=none: every trial runs to the end (pruned trials' runs: tests/test_sweep.py).
        run = by_trial[trial.number]
        assert trial.state == optuna.trial.TrialState.COMPLETE and run.info.status == "FINISHED", trial
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.value for m in history] == pytest.approx(list(trial.intermediate_values.values()))
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(study.best_value)
    assert parent.info.status == "FINISHED"


def test_dvc_queue_runs_an_experiment_into_the_project_store(repo):
    # Queued straight from the commit: the experiment runs every stage in its own copy under
    # .dvc/tmp. (Several writers on one store at once: the three-worker sweeps and
    # tests/test_concurrency.py.)
    dvc(repo, "exp", "run", "--queue", "-n", "units-4", "-S", "experiment=tiny", "-S", "model.units=4")
    # Its worker runs in the background and keeps the output streams it inherits: captured, they
    # would hold `dvc queue start` until the worker exits (idle time included).
    subprocess.run(
        [sys.executable, "-m", "dvc", "queue", "start"],
        cwd=repo,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Until it has an end state: `dvc queue status` reads running tasks, then queued ones, so a
    # task moving between the two reads shows as neither.
    deadline = time.monotonic() + 1200
    while True:
        status = dvc(repo, "queue", "status").stdout
        if any(state in status for state in ("Success", "Failed")):
            break
        assert time.monotonic() < deadline, status
        time.sleep(2)
    assert status.count("Success") == 1, status + dvc(repo, "queue", "logs", "units-4", check=False).stdout

    accuracy = None
    for entry in json.loads(dvc(repo, "exp", "show", "--json").stdout):
        for exp in entry.get("experiments") or []:
            for revision in exp["revs"]:
                if revision.get("name") == "units-4":
                    accuracy = revision["data"]["metrics"]["reports/metrics.json"]["data"]["accuracy"]
    assert accuracy is not None

    # Its run is in the project's store (mlflow.db addressed by absolute path), none in the copy.
    [run] = [r for r in runs(repo) if r.data.tags.get("dvc.experiment") == "units-4"]
    assert run.info.status == "FINISHED"
    assert run.data.params["model.units"] == "4" and run.data.params["data.maxlen"] == "12"  # the preset too
    assert run.data.metrics["test_accuracy"] == pytest.approx(accuracy)
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))

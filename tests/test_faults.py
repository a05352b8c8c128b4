"""Killed processes: a sweep killed mid-trial resumes with no manual cleanup and truthful
MLflow run states, and a signal never cuts a store write short. (`dvc repro` killed in each
stage: tests/test_pipeline_e2e.py, whose pipeline run it is.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import mlflow
import optuna
import pytest

from tests.conftest import copy_project, signal_handlers_restored, study_trials, wait_for_trial_epoch

pytestmark = pytest.mark.slow


def trial_runs(uri: str) -> dict[int, list]:
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("imdb-lstm")
    by_trial: dict[int, list] = {}
    for run in client.search_runs([experiment.experiment_id], "tags.`optuna.trial` != ''"):
        by_trial.setdefault(int(run.data.tags["optuna.trial"]), []).append(run)
    return by_trial


def test_a_sweep_killed_mid_trial_resumes_to_n_trials(sweep_overrides, isolated_tracking, tmp_path):
    project = copy_project(tmp_path / "project")
    storage = next(o.split("=", 1)[1] for o in sweep_overrides if o.startswith("sweep.storage="))
    # Enough epochs per trial that the kill lands mid-trial; a killed trial is stale after stale_seconds.
    stale_seconds = 6
    command = [
        sys.executable,
        "-m",
        "src.sweep",
        *sweep_overrides,
        "sweep.n_trials=2",
        "sweep.epochs=40",
        "train.patience=0",
        f"sweep.stale_trial_seconds={stale_seconds}",
    ]

    def start():
        return subprocess.Popen(command, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # SIGTERM: the trial is failed at once and its run ends KILLED.
    proc = start()
    term_trial = wait_for_trial_epoch(storage, [proc])
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and stderr.strip().splitlines()[-1] == "terminated", stderr[-2000:]
    assert study_trials(storage)[term_trial.number].state == optuna.trial.TrialState.FAIL
    assert [r.info.status for r in trial_runs(isolated_tracking)[term_trial.number]] == ["KILLED"]

    # SIGKILL: the trial stays RUNNING and its heartbeat stops.
    proc = start()
    kill_trial = wait_for_trial_epoch(storage, [proc])
    proc.kill()
    proc.wait(timeout=60)
    assert study_trials(storage)[kill_trial.number].state == optuna.trial.TrialState.RUNNING

    # The same command again, once the silent trial is stale: its first trial start fails it and
    # retries it with the same parameters; the study reaches exactly n_trials.
    time.sleep(stale_seconds + 1)
    proc = start()
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    trials = study_trials(storage)
    finished = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 2
    assert trials[kill_trial.number].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == kill_trial.number]
    assert len(retries) == 1 and retries[0].params == kill_trial.params and retries[0] in finished
    by_trial = trial_runs(isolated_tracking)
    assert [r.info.status for r in by_trial[kill_trial.number]] == ["KILLED"]  # marked by the next start
    assert all(r.info.status == "FINISHED" for t in finished for r in by_trial[t.number])
    client = mlflow.MlflowClient(isolated_tracking)
    parents = {r.data.tags["mlflow.parentRunId"] for runs_ in by_trial.values() for r in runs_}
    assert len(parents) == 1 and client.get_run(parents.pop()).info.status == "FINISHED"


def test_a_signal_never_cuts_a_store_write_short(isolated_tracking):
    """SIGTERM or Ctrl-C raised inside an MLflow SQLite write left the connection holding the
    write lock, so the run could not be marked KILLED ("database is locked" after 20 s). Signals
    sent at random moments of a stream of writes must each land outside the store."""
    import random
    import threading
    import traceback

    from src.lib.errors import Terminated, install_signal_handlers

    mlflow.set_tracking_uri(isolated_tracking)
    mlflow.set_experiment("signals")
    rng = random.Random(0)
    try:
        with signal_handlers_restored():
            install_signal_handlers()
            for attempt in range(16):
                signum, raised = ((signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt))[attempt % 2]
                run = mlflow.start_run()
                try:
                    threading.Timer(rng.uniform(0.005, 0.1), os.kill, (os.getpid(), signum)).start()
                    for step in range(100_000):
                        mlflow.log_metrics({"a": step, "b": 1.0}, step=step)
                    raise AssertionError("the signal never arrived")
                except raised as exc:
                    modules = [frame.f_globals.get("__name__", "") for frame, _ in traceback.walk_tb(exc.__traceback__)]
                assert not [m for m in modules if m.startswith(("sqlalchemy.", "mlflow.store."))], modules
                started = time.monotonic()
                mlflow.end_run("KILLED")
                assert time.monotonic() - started < 5
                assert mlflow.get_run(run.info.run_id).info.status == "KILLED"
    finally:
        while mlflow.active_run():  # a failure above must not leave this worker's next test a run
            mlflow.end_run("KILLED")

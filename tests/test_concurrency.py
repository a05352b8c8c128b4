"""Several processes on the embedded stores at once."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import pytest

from tests.conftest import PROJECT

pytestmark = pytest.mark.slow


OPEN_A_RUN = """
import sys
import mlflow
from src.lib import config, tracking
with tracking.run(config.compose(["tracking.run_name=process-" + sys.argv[1]])):
    mlflow.log_metric("value", float(sys.argv[1]))
"""


@pytest.mark.new_mlflow_store
def test_a_new_mlflow_db_opened_by_several_processes_at_once(isolated_tracking, tmp_path):
    # Each process creates the store's tables on first use; unguarded, they trip over each other.
    processes = [
        subprocess.Popen([sys.executable, "-c", OPEN_A_RUN, str(i)], cwd=PROJECT, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    client = mlflow.MlflowClient(isolated_tracking)
    runs = client.search_runs([client.get_experiment_by_name("imdb-lstm").experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"process-{i}" for i in range(4)]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["value"] for r in runs) == [0.0, 1.0, 2.0, 3.0]


OPEN_A_STUDY = """
import sys
from src.lib import config
from src.lib import studies
cfg = config.compose(["sweep.storage=" + sys.argv[1]])
study, _ = studies.load_study(cfg, studies.open_storage(cfg), worker=int(sys.argv[2]))
study.enqueue_trial({"worker": int(sys.argv[2])})  # each process leaves one mark in the study
"""


def test_a_new_optuna_db_opened_by_several_processes_at_once(tmp_path):
    import optuna

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_A_STUDY, storage, str(i)], cwd=PROJECT, stderr=subprocess.PIPE, text=True
        )
        for i in range(4)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], errors
    [study] = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).get_trials()
    assert sorted(t.system_attrs["fixed_params"]["worker"] for t in trials) == [0, 1, 2, 3]


LOG_INPUTS_AT = """
import sys, time
import numpy as np
from src.lib import config, tracking
from src.lib.data import Split
split = Split(np.zeros((20, 4), np.int32), np.zeros(20, np.int8), np.arange(20, dtype=np.int32))
cfg = config.compose(["tracking.run_name=worker-" + sys.argv[2]])
with tracking.run(cfg):
    while time.time() < float(sys.argv[1]):  # every process logs the same new dataset at this instant
        time.sleep(0.001)
    tracking.log_inputs(cfg, {"train": split})
"""


def test_workers_logging_one_new_dataset_at_once_all_link_it(isolated_tracking):
    # MLflow checks for the dataset, then inserts it: processes racing on a new one fail on its
    # unique key (sweep trials starting together did).
    import time

    start = time.time() + 20  # after every process has imported and opened its run
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", LOG_INPUTS_AT, str(start), str(i)], cwd=PROJECT, stderr=subprocess.PIPE, text=True
        )
        for i in range(6)
    ]
    errors = [p.communicate(timeout=300)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, errors
    client = mlflow.MlflowClient(isolated_tracking)
    runs = client.search_runs([client.get_experiment_by_name("imdb-lstm").experiment_id])
    assert len(runs) == 6 and all([d.dataset.name for d in r.inputs.dataset_inputs] == ["imdb-train"] for r in runs)

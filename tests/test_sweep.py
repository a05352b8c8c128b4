"""The Optuna sweep on tiny data: nested MLflow runs, resuming, pruning, workers, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from src import sweep
from src.lib import config, search_space, studies
from src.lib.errors import UserError
from tests.conftest import copy_project, free_port, run_main, wait_until_serving
from tests.test_config import with_settings


def runs_of_study(uri: str, study: str = "imdb-lstm"):
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("imdb-lstm")
    runs = client.search_runs([experiment.experiment_id], f"tags.`optuna.study` = '{study}'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def finished_trials(storage: str) -> list:
    study = optuna.load_study(study_name="imdb-lstm", storage=storage)
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))


@pytest.mark.slow
def test_sweep_nests_a_run_per_trial_resumes_and_writes_the_winner(
    sweep_overrides, isolated_tracking, tmp_path, monkeypatch
):
    monkeypatch.setattr(sweep, "EXPERIMENTS_DIR", tmp_path / "experiments")
    (tmp_path / "experiments").mkdir()
    # train.refit and train.ensemble are for the retrained winner: a trial is one model judged on
    # its validation curve, so trials never refit and never average.
    # A space that holds the tiny config's own values, so trial 0 can be the baseline.
    overrides = sweep_overrides + ["sweep.n_trials=3", "train.refit=true", "train.ensemble=3"]
    result = sweep.sweep(config.compose(overrides), overrides)

    client, parents, children = runs_of_study(isolated_tracking)
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(result["best_value"])
    assert {f"best.{k}" for k in ("model.units", "data.maxlen", "model.dropout")} <= set(parent.data.tags)
    plots = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_history.html", "parallel_coordinate.html", "intermediate_values.html"} <= plots
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.info.status == "FINISHED" and child.data.tags["optuna.state"] == "COMPLETE"
        assert {"model.units", "data.maxlen", "model.dropout"} <= set(child.data.params)
        assert child.data.params["train.epochs"] == "2" and child.data.params["train.refit"] == "False"
        assert child.data.params["train.ensemble"] == "1"
        assert not {"refit_epochs", "member_val_accuracy"} & set(child.data.metrics)
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) == 2
    assert sorted(c.data.tags["optuna.trial"] for c in children) == ["0", "1", "2"]
    baseline_runs = [c for c in children if c.data.tags.get("optuna.baseline") == "true"]
    assert [c.data.tags["optuna.trial"] for c in baseline_runs] == ["0"]
    trial0 = finished_trials(config.compose(overrides).sweep.storage)[0]
    assert trial0.user_attrs[sweep.BASELINE_ATTR] is True
    assert trial0.params == {
        "model.units": 8,
        "model.dropout": 0.5,
        "model.pooling": "max",
        "data.maxlen": 12,
        "train.word_dropout": 0.0,
        "train.lr_schedule": "constant",
    }

    preset = yaml.safe_load((tmp_path / "experiments" / "tiny-best.yaml").read_text())
    best = result["best_params"]
    assert preset["model"]["units"] == best["model.units"] and preset["data"]["maxlen"] == best["data.maxlen"]
    assert "sweep" not in preset and preset["train"]["epochs"] == 5 and preset["train"]["refit"] is True
    assert preset["train"]["ensemble"] == 3

    # The same command with a higher cap resumes: only the missing trials run, under the same parent.
    more = sweep_overrides + ["sweep.n_trials=4"]
    sweep.sweep(config.compose(more), more)
    _, parents, children = runs_of_study(isolated_tracking)
    assert [p.info.run_id for p in parents] == [parent.info.run_id]
    assert len(children) == 4
    resumed = finished_trials(config.compose(more).sweep.storage)
    assert len(resumed) == 4
    # A resumed sampler draws new points, not the first study's again.
    assert resumed[3].params not in [t.params for t in resumed[:3]]
    dashboard_shows_the_study(config.compose(more).sweep.storage)


def dashboard_shows_the_study(storage: str) -> None:
    """optuna-dashboard (the `dashboard` extra), started as the README says, serves the study and
    its trials over its HTTP API as Optuna stored them."""
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "optuna-dashboard"),
        storage,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}/api/studies")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=30) as response:
            [summary] = json.load(response)["study_summaries"]
        assert summary["study_name"] == "imdb-lstm"
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=30
        ) as response:
            shown = json.load(response)["trials"]
        stored = optuna.load_study(study_name="imdb-lstm", storage=storage).get_trials()
        assert [(t["number"], t["state"], t["values"]) for t in shown] == [
            (t.number, t.state.name.capitalize(), [t.value]) for t in stored
        ]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_pruned_trial_is_pruned_in_optuna_and_in_its_run(sweep_overrides, isolated_tracking, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "EXPERIMENTS_DIR", tmp_path / "experiments")
    # Validation accuracy never reaches 1.01: every trial is pruned after its first epoch.
    monkeypatch.setattr(studies, "make_pruner", lambda _: optuna.pruners.ThresholdPruner(lower=1.01))
    overrides = sweep_overrides + ["sweep.n_trials=2"]
    with pytest.raises(UserError, match="no trial completed"):
        sweep.sweep(config.compose(overrides), overrides)
    trials = finished_trials(config.compose(overrides).sweep.storage)
    assert [t.state for t in trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert all(len(t.intermediate_values) == 1 for t in trials)
    _, _, children = runs_of_study(isolated_tracking)
    assert len(children) == 2
    assert all(c.info.status == "KILLED" and c.data.tags["optuna.state"] == "PRUNED" for c in children)


def test_a_new_study_has_its_parent_run_and_a_joining_worker_waits_for_a_slow_creator(
    isolated_tracking, tmp_path, monkeypatch
):
    import fcntl
    import threading

    cfg = config.compose([f"sweep.storage=sqlite:///{tmp_path / 'optuna.db'}", "sweep.stale_trial_seconds=3"])
    # The creating call makes the study's run while it holds the setup lock (a joining SQLite
    # worker waits on that lock, so it finds the run).
    lock_held = []

    def open_study_run(*args):
        with open(tmp_path / "optuna.db.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(lock, fcntl.LOCK_UN)
                lock_held.append(False)
            except BlockingIOError:
                lock_held.append(True)
        return make_run(*args)

    make_run = studies.tracking.open_study_run
    monkeypatch.setattr(studies.tracking, "open_study_run", open_study_run)
    study, created = studies.load_study(cfg, studies.open_storage(cfg))
    assert lock_held == [True]
    _, [parent], _ = runs_of_study(isolated_tracking)
    assert created and study.user_attrs[studies.PARENT_RUN_ATTR] == parent.info.run_id

    # A study whose creator is still making its run (a server storage has no setup lock): the
    # joining worker waits for the run instead of making a second one.
    patient = config.compose([f"sweep.storage=sqlite:///{tmp_path / 'optuna.db'}", "sweep.stale_trial_seconds=60"])
    slow = optuna.create_study(study_name="slow", storage=studies.open_storage(cfg))
    late = threading.Timer(1.0, slow.set_user_attr, (studies.PARENT_RUN_ATTR, parent.info.run_id))
    late.start()
    try:
        assert studies.parent_run(patient, slow, poll_seconds=0.1) == parent.info.run_id
    finally:
        late.cancel()
    # A creator silent for sweep.stale_trial_seconds is taken for dead: the joining worker makes the run.
    orphan = optuna.create_study(study_name="orphan", storage=studies.open_storage(cfg))
    made = studies.parent_run(cfg, orphan, poll_seconds=0.1)
    assert orphan.user_attrs[studies.PARENT_RUN_ATTR] == made != parent.info.run_id
    assert len(runs_of_study(isolated_tracking)[1]) == 2


@pytest.mark.slow
def test_three_workers_on_the_default_stores_record_every_trial(sweep_overrides, tmp_path, monkeypatch):
    # The embedded defaults, as a researcher has them: optuna.db and mlflow.db at the project root.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    project = copy_project(tmp_path / "project")
    # The same command three times at once, each worker with its own number (its sampler's seed).
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "src.sweep",
                *sweep_overrides,
                "sweep.storage=null",
                "sweep.n_trials=4",
                f"sweep.worker={k}",
            ],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(3)
    ]
    outputs = [proc.communicate(timeout=500) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], "\n=====\n".join(err[-6000:] for _, err in outputs)
    stdout = "".join(out for out, _ in outputs)
    stderr = "".join(err for _, err in outputs)
    assert "database is locked" not in stdout + stderr
    # Heartbeats and the stale-trial retry are experimental in Optuna, used by choice: no warning of it.
    assert "ExperimentalWarning" not in stderr, stderr[-6000:]
    study = optuna.load_study(study_name="imdb-lstm", storage=f"sqlite:///{project / 'optuna.db'}")
    finished = [
        t for t in study.get_trials() if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    ]
    # n_trials, plus at most one trial per other worker still running when the fourth finished.
    assert 4 <= len(finished) <= 4 + 2 and len({t.number for t in study.get_trials()}) == len(study.get_trials())
    # Each finished trial reported by the one worker that ran it, in the state the study holds,
    # after a line per epoch Optuna recorded; trials ran side by side (which worker takes which
    # trial is a race, but one worker never takes them all).
    reported, epochs = {}, {}
    for k, (out, _) in enumerate(outputs):
        for number, state in re.findall(rf"^\[worker {k}\] trial +(\d+) ([A-Z]+) ", out, flags=re.M):
            assert int(number) not in reported, f"trial {number} reported twice"
            reported[int(number)] = (k, state)
        for number in re.findall(
            rf"^\[worker {k}\] trial (\d+) epoch \d+: val_accuracy [01]\.\d{{4}} \(\d+ s\)$", out, flags=re.M
        ):
            epochs.setdefault(int(number), []).append(k)
    assert {n: state for n, (_, state) in reported.items()} == {t.number: t.state.name for t in finished}, stdout
    ran_by = {number: k for number, (k, _) in reported.items()}
    assert epochs == {t.number: [ran_by[t.number]] * len(t.intermediate_values) for t in finished}, stdout
    assert len(set(ran_by.values())) >= 2, stdout

    client, parents, children = runs_of_study(f"sqlite:///{project / 'mlflow.db'}")
    assert len(parents) == 1
    by_trial = {int(c.data.tags["optuna.trial"]): c for c in children}
    for trial in finished:  # every epoch's every metric, in the trial's own run
        run = by_trial[trial.number]
        assert run.data.tags["optuna.state"] == trial.state.name
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_seconds"):
            assert len(client.get_metric_history(run.info.run_id, metric)) == len(trial.intermediate_values)
    assert (project / "experiments" / "tiny-best.yaml").is_file()
    assert "python -m src.stages.train experiment=tiny-best" in stdout


@pytest.mark.parametrize(
    "override, message",
    [
        ("sweep.space.model.units.low=300", "empty or inverted range"),
        ("sweep.space.data.maxlen.high=8", "empty or inverted range"),
        ("+sweep.space.model.unitz.low=3", "unknown parameter model.unitz"),
        ("sweep.pruner=sometimes", "sweep.pruner must be one of"),
        ("sweep.storage=sqlite:////nonexistent/dir/optuna.db", "cannot open Optuna storage"),
        ("+sweep.space.data.num_words={low: 10, high: 5000}", "vocabulary has"),
        (
            ("pretrain.method=word2vec", "+sweep.space.model.embedding_dim={low: 4, high: 8}"),
            "sweep.space.model.embedding_dim cannot vary with pretrain.method=word2vec",
        ),
        ("pretrain.method=lm", "sweep.space.model.units cannot vary with pretrain.method=lm"),
    ],
)
def test_bad_sweep_input_is_one_line_before_any_trial(sweep_overrides, tmp_path, override, message):
    done = run_main(
        "src.sweep", *sweep_overrides, "sweep.n_trials=2", *([override] if isinstance(override, str) else override)
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and message in done.stderr
    if (tmp_path / "optuna.db").exists():  # no trial of any state: none started, none failed
        summaries = optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'optuna.db'}")
        assert [s.n_trials for s in summaries] in ([], [0]), summaries


def test_the_parent_shows_the_best_value_when_an_earlier_trial_finishes_last(isolated_tracking, tmp_path, capsys):
    # Two workers: trial 1 finishes first, then trial 0 (started earlier) finishes better.
    cfg = config.compose([f"sweep.storage=sqlite:///{tmp_path / 'optuna.db'}"])
    study, _ = studies.load_study(cfg, studies.open_storage(cfg))
    report = sweep.progress(cfg, worker=0)
    first, second = study.ask(), study.ask()
    for trial, value in ((second, 0.8), (first, 0.9)):
        study.tell(trial, value)
        report(study, study.get_trials()[trial.number])
    _, [parent], _ = runs_of_study(isolated_tracking)
    assert parent.data.metrics["best_val_accuracy"] == 0.9 and parent.data.tags["best_trial"] == "0"


def test_a_wrong_mlflow_store_is_one_line_before_the_study_exists(sweep_overrides, tmp_path, monkeypatch):
    # The study is made with its parent run: a store that cannot hold the run must not leave a
    # study without one (the next command's workers would each wait for it, then make their own).
    monkeypatch.setattr(sweep, "EXPERIMENTS_DIR", tmp_path / "experiments")  # should the sweep run after all
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    done = run_main("src.sweep", *sweep_overrides, "sweep.n_trials=2")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot use MLflow tracking store"), done.stderr
    assert optuna.get_all_study_summaries(f"sqlite:///{tmp_path / 'optuna.db'}") == []


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            "sweep.space.model.units={low: 8, high: 16, choices: [8, 16]}",
            "sweep.space.model.units: choices must be a non-empty list, without low/high",
        ),
        ("sweep.space.model.pooling={choices: []}", "sweep.space.model.pooling: choices must be a non-empty list"),
        ("sweep.space.model.units={low: 8}", "sweep.space.model.units: give low and high (or choices)"),
        ("sweep.space.model.units={high: 8}", "sweep.space.model.units: give low and high (or choices)"),
        (
            "sweep.space.model.pooling={low: 1, high: 2}",
            "sweep.space.model.pooling: model.pooling is not a number; give choices",
        ),
        ("sweep.space.model.units={low: 16, high: 16}", "sweep.space.model.units: empty or inverted range"),
        (
            "sweep.space.model.units={low: 8.5, high: 16}",
            "model.units is an integer; low, high and step must be integers",
        ),
        (
            "sweep.space.model.units={low: 8, high: 16, step: 2, log: true}",
            "sweep.space.model.units: a log range needs low > 0 and no step",
        ),
        (
            "sweep.space.model.dropout={low: 0.0, high: 0.5, log: true}",
            "sweep.space.model.dropout: a log range needs low > 0",
        ),
        ("sweep.space.model.dropout={low: 0.1, high: 0.5, step: -0.1}", "sweep.space.model.dropout: step must be > 0"),
        (
            "sweep.space.model.units={low: 8, high: 16, by: 2}",
            "sweep.space.model.units: a dimension takes low, high, step, log or choices",
        ),
        ("sweep.space.model.layers={low: 1, high: 3}", "sweep.space.model.layers: unknown parameter model.layers"),
        ("sweep.space.paths={raw: {choices: [a]}}", "sweep.space.paths.raw: unknown parameter paths.raw"),
    ],
)
def test_every_search_space_rule_is_one_clear_message(settings, message):
    # Config composes a bad space (it never reads the sweep's code); the sweep refuses it first.
    cfg = config.validate(with_settings(settings))
    assert [problem for problem in search_space.problems(cfg) if message in problem] != []
    assert search_space.problems(config.compose()) == []


def prunes_at(pruner, curves: list[list[float]]) -> list[int | None]:
    """The epoch at which each trial, run in order with these validation curves, is pruned (None: not)."""
    study = optuna.create_study(study_name="pruning", direction="maximize", pruner=pruner)
    epochs = []
    for curve in curves:
        trial = study.ask()
        for epoch, value in enumerate(curve, start=1):  # the sweep reports epochs as steps 1, 2, ...
            trial.report(value, epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                epochs.append(epoch)
                break
        else:
            study.tell(trial, max(curve))
            epochs.append(None)
    return epochs


def test_the_baseline_is_the_config_as_it_stands_when_the_space_holds_it():
    values, problem = search_space.baseline_point(config.compose([]))
    assert problem is None
    assert values == {
        "model.units": 64,
        "model.dropout": 0.5,
        "model.pooling": "max",
        "data.maxlen": 500,
        "train.word_dropout": 0.0,
        "train.lr_schedule": "constant",
    }
    _, problem = search_space.baseline_point(config.compose(["data.maxlen=420"]))  # off the space's step of 50
    assert problem == "data.maxlen=420 is outside the search space"
    _, problem = search_space.baseline_point(config.compose(["sweep.space.model.units.high=48"]))
    assert problem == "model.units=64 is outside the search space"


def test_median_pruner_never_judges_a_first_epoch():
    cfg = config.compose(["sweep.pruner=median", "sweep.epochs=3"])
    good, slow_starter, weak = [0.80, 0.85, 0.86], [0.50, 0.87, 0.88], [0.50, 0.60, 0.61]
    assert prunes_at(studies.make_pruner(cfg.sweep), [good, good, slow_starter, weak]) == [None, None, None, 2]


def test_halving_keeps_the_better_half_after_epochs_1_and_2():
    cfg = config.compose(["sweep.pruner=halving", "sweep.epochs=4"])
    curves = [
        [0.70, 0.80, 0.80, 0.80],
        [0.72, 0.75, 0.80, 0.80],  # better half after epoch 1, worse half after epoch 2
        [0.60, 0.70, 0.70, 0.70],  # worse half after epoch 1
        [0.75, 0.70, 0.70, 0.70],
        [0.74, 0.85, 0.86, 0.87],
    ]
    assert prunes_at(studies.make_pruner(cfg.sweep), curves) == [None, 2, 1, 2, None]

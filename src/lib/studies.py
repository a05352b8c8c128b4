"""The Optuna study on its storage: the storage (with heartbeats, and the retry of a dead
worker's trial), the pruner of conf/sweep/, the study created or joined with its seeded sampler,
and the study's MLflow parent run, made once, its id a study attribute."""

from __future__ import annotations

import time
import warnings

import numpy as np

from src.lib import config, tracking
from src.lib.errors import UserError, first_line

PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user attribute: the study's MLflow run


def storage_url(cfg: config.Config) -> str:
    return cfg.sweep.storage or f"sqlite:///{tracking.project_root() / 'optuna.db'}"


def open_storage(cfg: config.Config):
    """The study's storage, with heartbeats and the retry of stale trials; a bad URL is one UserError."""
    import optuna

    url = storage_url(cfg)
    # SQLite: wait for a writer instead of failing with "database is locked" under several workers.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with tracking.sqlite_setup_lock(url), warnings.catch_warnings():
            # Heartbeats and the stale-trial retry are experimental in Optuna, used by choice
            # (docs/faults.md): their two ExperimentalWarnings are not news to the user.
            for experimental in (r"Argument ``heartbeat_interval`` is", r"RetryHeartbeatStaleTrialCallback is"):
                warnings.filterwarnings("ignore", experimental, optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=max(1, cfg.sweep.stale_trial_seconds // 3),
                grace_period=cfg.sweep.stale_trial_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
    except Exception as exc:  # SQLAlchemy, driver or URL errors
        raise UserError(f"cannot open Optuna storage {url}: {type(exc).__name__}: {first_line(exc)}") from None


def make_pruner(sweep: config.SweepConfig):
    import optuna

    if sweep.pruner == "median":  # below the median of earlier trials at the same epoch
        # Warm-up 2: a first epoch's accuracy ranks real-data trials poorly (benchmarks/sweep_pruning.py).
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=sweep.epochs)
    if sweep.pruner == "halving":  # the better half at epochs 1, 2, 4, ...: the cheapest
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    return optuna.pruners.NopPruner()


def load_study(cfg: config.Config, storage, worker: int = 0):
    """(study, whether this call created it), its TPE sampler seeded by sweep.sampler_seed, the
    worker's number and the trials the study has (so a resumed study draws new points). A study
    this call creates has its MLflow parent run before the SQLite setup lock is released, so a
    worker joining an SQLite study finds the run."""
    import optuna

    # Before the study exists: a wrong MLflow store fails here, and a new mlflow.db gets its
    # tables (seconds) outside the study's setup lock.
    tracking.connect(cfg)
    with tracking.sqlite_setup_lock(storage_url(cfg)):  # several workers creating one SQLite study
        try:
            study = optuna.create_study(
                study_name=cfg.sweep.study_name, storage=storage, direction="maximize", pruner=make_pruner(cfg.sweep)
            )
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=cfg.sweep.study_name, storage=storage, pruner=make_pruner(cfg.sweep))
            created = False
        else:
            study.set_user_attr(PARENT_RUN_ATTR, tracking.open_study_run(cfg, None))
            created = True
    seed = np.random.SeedSequence([cfg.sweep.sampler_seed, worker, len(study.get_trials(deepcopy=False))])
    study.sampler = optuna.samplers.TPESampler(seed=int(seed.generate_state(1)[0]))
    return study, created


def parent_run(cfg: config.Config, study, poll_seconds: float = 0.5) -> str:
    """The study's MLflow run. A worker joining a study on a server storage (no setup lock) may
    find its creator still making the run: it waits for it up to sweep.stale_trial_seconds, and
    only then, the creator taken for dead, makes the run itself."""
    deadline = time.monotonic() + cfg.sweep.stale_trial_seconds
    while (run_id := study.user_attrs.get(PARENT_RUN_ATTR)) is None and time.monotonic() < deadline:
        time.sleep(poll_seconds)
    if run_id is None:
        run_id = tracking.open_study_run(cfg, None)
        study.set_user_attr(PARENT_RUN_ATTR, run_id)
    return run_id

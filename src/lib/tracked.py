"""The tracked fit the train stage, a sweep trial and each repeat share.

`fit` says what it trains on (src.lib.hardware), opens a run (nested under `parent_run_id` when
given) tagged with it and with the lock its packages match, logs the config, the installed
versions and the datasets,
fits (src.lib.training.fit), logs the saved model's validation accuracy, epochs and predictions,
and hands the run and the fitted model to the caller while the run is still open: the train
stage saves its model there, a repeat scores the test split there (src.lib.evaluation.score_test).
"""

from __future__ import annotations

import contextlib

from src.lib import config, data, environment, hardware, tracking, training
from src.lib.data import Split

ENVIRONMENT_ARTIFACT = "environment/installed.txt"  # every installed package's version, as `pip freeze` writes them


@contextlib.contextmanager
def fit(
    cfg: config.Config,
    train: Split,
    val: Split,
    test: Split | None = None,
    *,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    callbacks: list = (),
    verbose: int = 2,
):
    """Yield (the run's id, training.Fitted) inside the open run; the run ends when the block
    does, with a truthful status. `test` is logged as an input only (never fitted on);
    `params` are logged beside the config's (a trial's share of the training reviews). A run
    without a parent samples CPU and memory when tracking.system_metrics says so."""
    splits = {"train": train, "val": val} | ({"test": test} if test is not None else {})
    devices = hardware.announce()  # the devices and the CPU's kernels: they change a result's last digits
    software = {"environment.lock": environment.matching_lock()}  # which requirements/ lock is installed, or none
    with tracking.run(
        cfg,
        parent_run_id=parent_run_id,
        tags=data.source_tags(cfg) | devices | software | (tags or {}),
        system_metrics=cfg.tracking.system_metrics and parent_run_id is None,
    ) as active:
        tracking.log_params(cfg, extra=params)
        tracking.log_text(environment.installed_text(), ENVIRONMENT_ARTIFACT)
        tracking.log_inputs(cfg, splits)
        fitted = training.fit(cfg, train, val, callbacks=list(callbacks), verbose=verbose)
        training.log_fitted(fitted)
        yield active.info.run_id, fitted

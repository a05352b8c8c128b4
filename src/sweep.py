"""`python -m src.sweep [overrides]`: an Optuna study over the search space in conf/sweep/.

    python -m src.sweep sweep.n_trials=30 sweep.pruner=hyperband model.bidirectional=true

A trial is conf/ with the command's overrides and its sampled values, fitted by
`src.lib.tracked.fit` (as the train stage) on `sweep.train_fraction` of the training reviews for
at most `sweep.epochs`, its validation accuracy reported each epoch to the pruner; the data
stages must have run (`dvc repro pad`). One command is one worker on the study in
`sweep.storage` (default optuna.db): run again, it resumes; started N times on one storage (each
with its own `sweep.worker`), N trials run at once. The study ends with `sweep.n_trials` complete
or pruned trials plus those other workers were running then (Optuna's MaxTrialsCallback); a
killed worker's trial is retried by the next trial start once its heartbeat is stale. A new study's first trial is the config
as it stands (`sweep.baseline`). MLflow: one parent run per study, made with it; a nested run
per trial. The best trial becomes experiments/<preset>.yaml.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import yaml

from src.lib import config, data, predictions, search_space, significance, tracked, tracking
from src.lib.artifacts import atomic_write_text
from src.lib.errors import Terminated, UserError, command
from src.lib.studies import PARENT_RUN_ATTR, load_study, open_storage, parent_run, storage_url
from src.lib.text import VOCAB_FILE, Vocabulary

BASELINE_ATTR = "baseline"  # trial user attribute: the trial trains the config without sampled values
EXPERIMENTS_DIR = config.CONF_DIR.parent / "experiments"
FINISHED = ("COMPLETE", "PRUNED")


class Pruned(Exception):
    mlflow_status = "KILLED"  # tracking.run ends the trial's run KILLED, not FAILED


def with_values(overrides: list[str], values: dict) -> list[str]:
    return [*overrides, *(f"{key}={value}" for key, value in values.items())]


def is_baseline(trial) -> bool:
    return bool(trial.user_attrs.get(BASELINE_ATTR))


def describe(trial) -> str:
    """Its value (or -), epochs run and params, as a line of a table."""
    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    return f"{value:>7}  epochs {len(trial.intermediate_values)}  {shown}" + (
        " (baseline)" if is_baseline(trial) else ""
    )


def pruning_callback(trial, worker: int):
    """After every epoch: a line a person can follow, the report to Optuna, and its pruner's verdict."""
    import keras
    import mlflow

    class ReportToOptuna(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            value = float(logs["val_accuracy"])
            print(
                f"[worker {worker}] trial {trial.number} epoch {epoch + 1}: val_accuracy {value:.4f} "
                f"({time.perf_counter() - self._started:.0f} s)",
                flush=True,
            )
            trial.report(value, step=epoch + 1)
            if trial.should_prune():
                mlflow.set_tag("optuna.state", "PRUNED")
                raise Pruned(f"pruned after epoch {epoch + 1}")

    return ReportToOptuna()


def objective(trial, cfg: config.Config, overrides: list[str], worker: int) -> float:
    """One trial: one model on its share of the training reviews, judged on validation accuracy."""
    import keras
    import mlflow
    import optuna

    trial_cfg = config.compose(
        with_values(overrides, search_space.suggest(trial, cfg))
        + [
            f"train.epochs={cfg.sweep.epochs}",
            "train.refit=false",
            "train.ensemble=1",
            f"tracking.run_name=trial-{trial.number}",
        ]
    )
    keras.backend.clear_session()  # a fresh graph per trial: memory stays flat over a long study
    fraction = cfg.sweep.train_fraction
    train, val = data.load(trial_cfg, "train").subset(fraction, trial_cfg.train.seed), data.load(trial_cfg, "val")
    tags = {"optuna.study": cfg.sweep.study_name, "optuna.trial": str(trial.number)}
    try:
        with tracked.fit(
            trial_cfg,
            train,
            val,
            parent_run_id=parent_run(cfg, trial.study),
            verbose=0,
            tags=tags | ({"optuna.baseline": "true"} if is_baseline(trial) else {}),
            params={"sweep.train_fraction": str(fraction)} if fraction < 1 else {},
            callbacks=[pruning_callback(trial, worker)],
        ) as (run_id, fitted):
            mlflow.set_tag("optuna.state", "COMPLETE")
    except Pruned:
        raise optuna.TrialPruned() from None
    except Terminated:  # Optuna fails a trial on an exception or Ctrl-C only: not left RUNNING
        trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    trial.set_user_attr("mlflow_run_id", run_id)
    return fitted.best_val_accuracy


def progress(cfg: config.Config, worker: int):
    """Optuna callback: a line per finished trial, and a new best on the parent run (best_val_accuracy, best.*)."""

    def report(study, trial) -> None:
        best = max(
            (t for t in study.get_trials(deepcopy=False) if t.value is not None), key=lambda t: t.value, default=trial
        )
        done = finished(study)
        print(
            f"[worker {worker}] trial {trial.number:>3} {trial.state.name:<8} {describe(trial)} | best trial {best.number}, "
            f"{done}/{cfg.sweep.n_trials} finished",
            flush=True,
        )
        if best.number == trial.number and trial.value is not None:
            # Stepped by trials finished, not by trial number: with several workers a lower-numbered
            # trial can finish later, and MLflow shows a metric's value at its highest step.
            tracking.log_to_run(
                study.user_attrs[PARENT_RUN_ATTR],
                metrics={"best_val_accuracy": best.value},
                step=done,
                tags={"best_trial": best.number} | {f"best.{k}": v for k, v in best.params.items()},
            )

    return report


def finished(study) -> int:
    return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))


def check(cfg: config.Config) -> None:
    """What would fail every trial, refused in one line before any (src.lib.search_space.problems)."""
    tokens = Path(cfg.paths.tokens)
    if not (tokens / "train.npz").is_file():
        raise UserError(f"{tokens / 'train.npz'} not found: run the data stages first (`dvc repro pad`)")
    problems = search_space.problems(cfg, Vocabulary.load(tokens / VOCAB_FILE).size)
    if problems:
        raise UserError(problems[0])


def work(cfg: config.Config, overrides: list[str]) -> object:
    """This command's trials until the study has sweep.n_trials finished; the study."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    storage = open_storage(cfg)
    study, created = load_study(cfg, storage, cfg.sweep.worker)
    if created:
        values, problem = search_space.baseline_point(cfg)
        if cfg.sweep.baseline and problem is None:
            study.enqueue_trial(values, user_attrs={BASELINE_ATTR: True})
        elif cfg.sweep.baseline:
            print(f"no baseline trial: {problem}", flush=True)
    elif PARENT_RUN_ATTR in study.user_attrs:  # a study resumed, or joined: its run is running (again)
        tracking.open_study_run(cfg, study.user_attrs[PARENT_RUN_ATTR])
    done = finished(study)
    print(
        f"[worker {cfg.sweep.worker}] study {cfg.sweep.study_name!r} in {storage_url(cfg)}: "
        f"{done}/{cfg.sweep.n_trials} trials finished",
        flush=True,
    )
    status = "FAILED"
    try:
        if done < cfg.sweep.n_trials:
            cap = optuna.study.MaxTrialsCallback(
                cfg.sweep.n_trials, states=tuple(getattr(optuna.trial.TrialState, s) for s in FINISHED)
            )
            study.optimize(
                lambda trial: objective(trial, cfg, overrides, cfg.sweep.worker),
                n_trials=cfg.sweep.n_trials - done,
                callbacks=[progress(cfg, cfg.sweep.worker), cap],
                gc_after_trial=True,
            )
        status = "FINISHED"
    except (KeyboardInterrupt, Terminated):
        status = "KILLED"
        raise
    finally:
        if PARENT_RUN_ATTR in study.user_attrs:
            with tempfile.TemporaryDirectory() as plots:
                save_plots(study, Path(plots))
                tracking.log_to_run(study.user_attrs[PARENT_RUN_ATTR], artifacts_dir=Path(plots))
            tracking.close_run(study.user_attrs[PARENT_RUN_ATTR], status)
    return study


def save_plots(study, out_dir: Path) -> None:
    """Optuna's plots as HTML files; a plot that needs more finished trials is skipped."""
    import optuna.visualization as vis

    for plot in (
        vis.plot_optimization_history,
        vis.plot_parallel_coordinate,
        vis.plot_param_importances,
        vis.plot_intermediate_values,
    ):
        try:
            plot(study).write_html(out_dir / f"{plot.__name__.removeprefix('plot_')}.html", include_plotlyjs=True)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            print(f"skipped {plot.__name__}: {exc}", file=sys.stderr)


def write_preset(cfg: config.Config, overrides: list[str], best_params: dict) -> tuple[str, Path]:
    """experiments/<preset>.yaml: what the best trial's config changes from the defaults."""
    name = cfg.sweep.preset or f"sweep-{cfg.sweep.study_name}"
    own = [o for o in overrides if not o.lstrip("+~").startswith(("sweep.", "paths.", "tracking."))]
    best, default = config.compose(with_values(own, best_params)).to_dict(), config.compose([]).to_dict()
    diff = {
        section: {k: v for k, v in best[section].items() if v != default[section][k]}
        for section in search_space.TUNABLE_SECTIONS
    }
    path = EXPERIMENTS_DIR / f"{name}.yaml"
    atomic_write_text(
        path,
        f"# @package _global_\n# Best trial of the Optuna study {cfg.sweep.study_name!r} (written by "
        f"`python -m src.sweep`): only what differs from conf/.\n"
        + yaml.safe_dump({k: v for k, v in diff.items() if v}, sort_keys=False),
    )
    return name, path


def baseline_test(baseline, best, parent_run_id: str) -> str:
    """The best trial against the baseline, paired on their validation predictions
    (src.significance), tagged on the parent run. The best was chosen on these reviews: optimistic."""
    runs = [trial.user_attrs.get("mlflow_run_id") for trial in (baseline, best)]
    if not all(runs):
        return ""
    try:
        compared = significance.compare(*(predictions.from_run(run_id, "val") for run_id in runs))
    except UserError as exc:
        return f" (no paired test: {exc})"
    verdict = {"B is better": "the best trial is better", "A is better": "the baseline is better"}.get(
        compared.verdict, compared.verdict
    )
    line = f"; paired on {compared.reviews} validation reviews: {significance.summary(compared)}: {verdict}"
    tracking.log_to_run(parent_run_id, tags={"baseline_test": line.removeprefix("; ")})
    return line + " (the best was chosen on these reviews: optimistic)"


def sweep(cfg: config.Config, overrides: list[str]) -> dict:
    """Run (or resume) the study to n_trials; return the best trial's value, params and preset."""
    check(cfg)
    started = time.perf_counter()
    study = work(cfg, overrides)
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        print(f"trial {t.number:>3}  {t.state.name:<8} {describe(t)}")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    if not complete:
        raise UserError("no trial completed (all pruned or failed): widen the space or lower the pruning")
    best = max(complete, key=lambda t: t.value)
    name, path = write_preset(cfg, overrides, best.params)
    tracking.log_to_run(study.user_attrs[PARENT_RUN_ATTR], tags={"preset": name})
    baseline = next((t for t in complete if is_baseline(t)), None)
    versus = (
        ""
        if baseline is None
        else (
            "\nno sampled configuration beat the baseline (the config without the sweep)"
            if baseline.number == best.number
            else f"\nbest vs baseline (trial {baseline.number}): {best.value - baseline.value:+.4f} val_accuracy"
            + baseline_test(baseline, best, study.user_attrs[PARENT_RUN_ATTR])
        )
    )
    print(
        f"best val_accuracy {best.value:.4f} (trial {best.number}): {describe(best)}; {time.perf_counter() - started:.0f}s"
        f"{versus}\nwrote {path.relative_to(EXPERIMENTS_DIR.parent)}; retrain with:\n  python -m src.stages.train "
        f"experiment={name}\n  dvc exp run -S experiment={name}"
    )
    return {
        "best_value": best.value,
        "best_params": best.params,
        "preset": name,
        "parent_run_id": study.user_attrs[PARENT_RUN_ATTR],
    }


@command
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--params"]:
        raise UserError(
            "the sweep composes conf/ with overrides (it gives them to every trial); --params is a DVC stage's"
        )
    sweep(config.from_argv(argv, usage=__doc__), argv)


if __name__ == "__main__":
    main()

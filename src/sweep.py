"""`python -m src.sweep [overrides]`: an Optuna study over the search space in conf/sweep/.

    python -m src.sweep sweep.n_trials=30 sweep.pruner=hyperband model.bidirectional=true

Each trial composes conf/ with the command's overrides plus its sampled values, trains through
`src.lib.training.fit` (what the train stage fits with) on a share of the training reviews
(`sweep.train_fraction`) for at most `sweep.epochs`, and reports validation accuracy after every
epoch so the pruner can stop it. The test split is never used. A trial's maxlen re-pads the
tokenize stage's output and its data.num_words cuts that vocabulary (src.lib.data.load_split), so the
download, tokenize and pad stages must have run (`dvc repro pad`).

The study lives in `sweep.storage` (default optuna.db at the project root); running the same
command again resumes it and runs only the trials still missing: `sweep.n_trials` counts
complete and pruned trials across all workers and restarts. `sweep.workers=N` starts N worker
processes on the study, each sampling with its own seed (from `sweep.sampler_seed`, the worker's
number and the trials the study has, so a resumed study draws new points). Heartbeats mark
the trial of a killed worker failed, and it is retried.

With `sweep.baseline` (the default), a new study's trial 0 trains the config as it stands, without
sampled values: the bar the sampled configurations are measured against.

MLflow: one parent run per study (created once; a resumed sweep and every worker nest under
it), one child run per trial. The parent holds the running best and, at the end, Optuna's plots.
The best trial becomes experiments/<preset>.yaml, retrained with
`python -m src.stages.train experiment=<preset>` or `dvc exp run -S experiment=<preset>`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

from src.lib import config, data, embeddings, predictions, search_space, significance, tracking, training
from src.lib.artifacts import atomic_write_text
from src.lib.errors import Terminated, UserError, command, first_line
from src.lib.text import VOCAB_FILE, Vocabulary

PARENT_RUN_ATTR = "mlflow_parent_run_id"  # study user attribute: the study's MLflow run
BASELINE_ATTR = "baseline"  # trial user attribute: the trial trains the config without sampled values
PARENT_WAIT_SECONDS = 60  # how long a sweep joining a new study waits for its creator's MLflow parent run
EXPERIMENTS_DIR = config.CONF_DIR.parent / "experiments"


class SurplusTrial(Exception):
    """Workers racing for the last trials started one too many; it is failed before training."""


class Pruned(Exception):
    mlflow_status = "KILLED"  # tracking.run ends the trial's run KILLED, not FAILED


def storage_url(cfg: config.Config) -> str:
    return cfg.sweep.storage or f"sqlite:///{tracking.project_root() / 'optuna.db'}"


def open_storage(cfg: config.Config):
    """The study's storage, with heartbeats; a wrong or unreachable URL is one UserError."""
    import optuna

    url = storage_url(cfg)
    # SQLite: wait for a writer instead of failing with "database is locked" under several workers.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with tracking.sqlite_setup_lock(url):
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_seconds(cfg),
                grace_period=cfg.sweep.stale_trial_seconds,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
    except Exception as exc:  # SQLAlchemy, driver or URL errors
        raise UserError(f"cannot open Optuna storage {url}: {type(exc).__name__}: {first_line(exc)}") from None


def heartbeat_seconds(cfg: config.Config) -> int:
    """How often a running trial says it is alive: three times per sweep.stale_trial_seconds,
    so one late beat is not taken for a dead worker."""
    return max(1, cfg.sweep.stale_trial_seconds // 3)


def make_pruner(sweep: config.SweepConfig):
    import optuna

    if sweep.pruner == "median":  # prune below the median of earlier trials at the same epoch
        # Epochs are reported as steps 1, 2, ...: warm-up 2 never judges a trial on its first
        # epoch, whose accuracy ranked the real-data trials almost backwards (the pruning
        # study: `git show 22b1bfa:docs/results.md`).
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=sweep.epochs)
    if sweep.pruner == "halving":  # keep the better half at epochs 1, 2, 4, ...: the cheapest
        # A third (reduction_factor 3) cost less but lost the best trial on the real data (the same study).
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    return optuna.pruners.NopPruner()


def load_study(cfg: config.Config, storage, worker: int, create: bool = False):
    """The study, created if missing. With create=True, only a process that creates it gets it;
    the others get DuplicatedStudyError (how sweeps started at once elect who makes the parent run)."""
    import optuna

    with tracking.sqlite_setup_lock(storage_url(cfg)):  # two workers creating one study at once
        study = optuna.create_study(study_name=cfg.sweep.study_name, storage=storage, direction="maximize",
                                    pruner=make_pruner(cfg.sweep), load_if_exists=not create)
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed(cfg, worker, len(study.get_trials(deepcopy=False))))
    return study


def sampler_seed(cfg: config.Config, worker: int, trials_so_far: int) -> int:
    """The TPE seed of a worker joining a study that has `trials_so_far` trials: from
    sweep.sampler_seed, the worker's number and that count, so workers differ and a resumed study
    draws new points (seeded as before, it would draw its first random points again)."""
    import numpy as np

    return int(np.random.SeedSequence([cfg.sweep.sampler_seed, worker, trials_so_far]).generate_state(1)[0])


def join_study(cfg: config.Config, storage):
    """(study, MLflow parent run id) for a sweep command; the parent is made once per study.

    Several `python -m src.sweep` commands may start at once on one storage (machines sharing a
    PostgreSQL study). The one that creates the study creates the parent run; the others wait
    for its id to appear, so every trial nests under one parent."""
    import optuna

    try:
        study = load_study(cfg, storage, worker=0, create=True)
        if cfg.sweep.baseline:
            queue_baseline(study, cfg)
    except optuna.exceptions.DuplicatedStudyError:
        study = load_study(cfg, storage, worker=0)
        deadline = time.monotonic() + PARENT_WAIT_SECONDS
        while PARENT_RUN_ATTR not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(1)  # the creator is making the parent run now
    # Still none: the creator died before making it, so this command makes it.
    parent_run_id = tracking.open_study_run(cfg, study.user_attrs.get(PARENT_RUN_ATTR))
    study.set_user_attr(PARENT_RUN_ATTR, parent_run_id)
    return study, parent_run_id


def queue_baseline(study, cfg: config.Config) -> None:
    """Trial 0 of a new study trains the config as it stands, without sampled values: the value
    every sampled configuration is measured against, under the same trial budget."""
    values, problem = search_space.baseline_point(cfg)
    if problem:
        print(f"no baseline trial: {problem}", flush=True)
        return
    study.enqueue_trial(values, user_attrs={BASELINE_ATTR: True})
    print(f"trial 0 is the baseline, the config without the sweep: {format_params(values)}", flush=True)


def trial_overrides(overrides: list[str], values: dict) -> list[str]:
    return [*overrides, *(f"{key}={value}" for key, value in values.items())]


def counts(study) -> tuple[int, int]:
    """(finished = complete + pruned, running) trials of the study."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return len(trials) - running, running


def trial_callback(trial, worker: int):
    """After every epoch of a trial: a line a person can follow (worker, trial, epoch,
    val_accuracy, seconds), then the report to Optuna, whose pruner may stop the trial."""
    import keras

    class ReportToOptuna(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            value = float(logs["val_accuracy"])
            print(f"[worker {worker}] trial {trial.number} epoch {epoch + 1}: val_accuracy {value:.4f} "
                  f"({time.perf_counter() - self._started:.0f} s)", flush=True)
            trial.report(value, step=epoch + 1)
            if trial.should_prune():
                raise Pruned(f"pruned after epoch {epoch + 1}")

    return ReportToOptuna()


def train_trial(trial_cfg: config.Config, train_fraction: float, trial, worker: int, parent_run_id: str,
                tags: dict[str, str]) -> tuple[str, float]:
    """Fit the trial's model on its share of the training reviews, under a run nested in the
    study's; the trial keeps no model files and prints no per-epoch lines (a line per trial)."""
    train_split = data.load(trial_cfg, "train").subset(train_fraction, trial_cfg.train.seed)
    val_split = data.load(trial_cfg, "val")
    with tracking.run(trial_cfg, parent_run_id=parent_run_id, tags=data.source_tags(trial_cfg) | tags) as active:
        tracking.log_params(trial_cfg, {"sweep.train_fraction": str(train_fraction)} if train_fraction < 1 else {})
        tracking.log_inputs(trial_cfg, {"train": train_split, "val": val_split})
        fitted = training.fit(trial_cfg, train_split, val_split, callbacks=[trial_callback(trial, worker)], verbose=0)
        training.log_fitted(fitted)
    return active.info.run_id, fitted.best_val_accuracy


def objective(trial, cfg: config.Config, overrides: list[str], parent_run_id: str, worker: int = 0) -> float:
    import keras
    import optuna
    from optuna.trial import TrialState

    claimed = [t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                         TrialState.RUNNING))
               if t.number < trial.number]
    if len(claimed) >= cfg.sweep.n_trials:
        raise SurplusTrial(f"trial {trial.number} is beyond sweep.n_trials={cfg.sweep.n_trials}")
    values = search_space.suggest(trial, cfg)
    trial_cfg = config.compose(trial_overrides(overrides, values) + [
        f"train.epochs={cfg.sweep.epochs}", "train.refit=false", "train.ensemble=1", f"tracking.run_name=trial-{trial.number}"])
    keras.backend.clear_session()  # a fresh graph per trial: memory stays flat over a long study
    tags = {"optuna.study": cfg.sweep.study_name, "optuna.trial": str(trial.number)}
    if is_baseline(trial):
        tags["optuna.baseline"] = "true"
    try:
        run_id, best_val_accuracy = train_trial(trial_cfg, cfg.sweep.train_fraction, trial, worker, parent_run_id, tags)
    except Pruned:
        _tag_trial_run(cfg, trial, "PRUNED")
        raise optuna.TrialPruned() from None
    except Exception:
        _tag_trial_run(cfg, trial, "FAIL")
        raise
    except Terminated:
        # Optuna fails a trial on an exception or Ctrl-C, not on other BaseExceptions: without
        # this the trial would stay RUNNING until its heartbeat went stale.
        trial.study.tell(trial, state=TrialState.FAIL)
        raise
    trial.set_user_attr("mlflow_run_id", run_id)
    tracking.log_to_run(run_id, tags={"optuna.state": "COMPLETE"})
    return best_val_accuracy


def _tag_trial_run(cfg: config.Config, trial, state: str) -> None:
    import mlflow

    runs = mlflow.search_runs(experiment_names=[cfg.tracking.experiment], output_format="list",
                              filter_string=f"tags.`optuna.study` = '{cfg.sweep.study_name}' "
                                            f"and tags.`optuna.trial` = '{trial.number}'")
    for run in runs:
        tracking.log_to_run(run.info.run_id, tags={"optuna.state": state})


def progress(cfg: config.Config, parent_run_id: str, worker: int):
    """Optuna callback: a line per finished trial, and the running best on the parent run."""
    from optuna.trial import TrialState

    def report(study, trial) -> None:
        seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0
        value = f"{trial.value:.4f}" if trial.value is not None else (
            f"{max(trial.intermediate_values.values()):.4f}*" if trial.intermediate_values else "-")
        finished, _ = counts(study)
        line = (f"[worker {worker}] trial {trial.number:>3} {trial.state.name:<8} value {value:<8} "
                f"{seconds:6.0f}s  {format_params(trial.params)}{baseline_mark(trial)}")
        try:
            best = study.best_trial
        except ValueError:  # nothing complete yet
            best = None
        if best is not None:
            line += f" | best {best.value:.4f} (trial {best.number}), {finished}/{cfg.sweep.n_trials} done"
            if trial.state == TrialState.COMPLETE and best.number == trial.number:
                tracking.log_to_run(parent_run_id, metrics={"best_val_accuracy": best.value}, step=best.number,
                                    tags={"best_trial": best.number} | {f"best.{k}": v for k, v in best.params.items()})
        print(line, flush=True)

    return report


def is_baseline(trial) -> bool:
    return bool(trial.user_attrs.get(BASELINE_ATTR))


def baseline_mark(trial) -> str:
    return " (baseline)" if is_baseline(trial) else ""


def format_params(params: dict) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def work(cfg: config.Config, overrides: list[str], worker: int) -> None:
    """One worker: run trials until the study has n_trials finished.

    Optuna's MaxTrialsCallback, counting running trials too, ends this worker's optimize loop
    once the trials finished or claimed by other workers reach n_trials. If the study is still
    short then, a claim may be a killed worker's: the worker waits, and once that trial's
    heartbeat is stale Optuna fails it and RetryHeartbeatStaleTrialCallback queues its retry,
    which the next optimize loop runs. So the study reaches n_trials while one worker survives."""
    import optuna
    from optuna.trial import TrialState

    storage = open_storage(cfg)
    study = load_study(cfg, storage, worker)
    parent_run_id = study.user_attrs[PARENT_RUN_ATTR]
    all_claimed = optuna.study.MaxTrialsCallback(
        cfg.sweep.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))
    while True:
        finished, running = counts(study)
        if finished >= cfg.sweep.n_trials:
            return
        if finished + running < cfg.sweep.n_trials:
            study.optimize(lambda trial: objective(trial, cfg, overrides, parent_run_id, worker),
                           catch=(SurplusTrial,), callbacks=[progress(cfg, parent_run_id, worker), all_claimed],
                           gc_after_trial=True)
            continue
        time.sleep(heartbeat_seconds(cfg))
        with warnings.catch_warnings():  # experimental since Optuna 2.9; what optimize() itself calls
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a dead worker's trial: FAIL, and a retry queued


def run_workers(cfg: config.Config, overrides: list[str]) -> None:
    """sweep.workers processes on the study; SIGTERM or Ctrl-C stops them all."""
    if cfg.sweep.workers == 1:
        work(cfg, overrides, worker=0)
        return
    procs = [subprocess.Popen([sys.executable, "-m", "src.sweep", "--worker", str(k), *overrides])
             for k in range(cfg.sweep.workers)]
    try:
        codes = [proc.wait() for proc in procs]
    except (KeyboardInterrupt, Terminated):
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        raise
    if any(codes):
        raise UserError(f"worker exit codes {codes}: see the lines above; run the same command to resume")


def write_preset(cfg: config.Config, overrides: list[str], best_params: dict) -> tuple[str, Path]:
    """experiments/<preset>.yaml: what the best trial's config changes from the defaults."""
    name = cfg.sweep.preset or f"sweep-{cfg.sweep.study_name}"
    own = [o for o in overrides if not o.lstrip("+~").startswith(("sweep.", "paths.", "tracking."))]
    best = config.compose(trial_overrides(own, best_params)).to_dict()
    default = config.compose([]).to_dict()
    diff = {}
    for section in search_space.TUNABLE_SECTIONS:
        changed = {k: v for k, v in best[section].items() if v != default[section][k]}
        if changed:
            diff[section] = changed
    text = (f"# @package _global_\n# Best trial of the Optuna study {cfg.sweep.study_name!r} "
            f"(written by `python -m src.sweep`): only what differs from conf/.\n")
    path = EXPERIMENTS_DIR / f"{name}.yaml"
    atomic_write_text(path, text + yaml.safe_dump(diff, sort_keys=False))
    return name, path


def save_plots(study, out_dir: Path) -> list[str]:
    """Optuna's plots as HTML files; a plot that needs more finished trials is skipped."""
    import optuna.visualization as vis

    saved = []
    for name, plot in (("optimization_history", vis.plot_optimization_history),
                       ("parallel_coordinate", vis.plot_parallel_coordinate),
                       ("param_importances", vis.plot_param_importances),
                       ("intermediate_values", vis.plot_intermediate_values)):
        try:
            plot(study).write_html(out_dir / f"{name}.html", include_plotlyjs="cdn")
            saved.append(name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            print(f"skipped plot {name}: {exc}", file=sys.stderr)
    return saved


def summary_table(study) -> str:
    from optuna.trial import TrialState

    lines = [f"{'trial':>5}  {'state':<8} {'value':>7}  {'epochs':>6}  params"]
    for t in study.get_trials(deepcopy=False):
        value = f"{t.value:.4f}" if t.value is not None else "-"
        lines.append(f"{t.number:>5}  {t.state.name:<8} {value:>7}  {len(t.intermediate_values):>6}  "
                     f"{format_params(t.params)}{baseline_mark(t)}")
    n_complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    n_pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    lines.append(f"{n_complete} complete, {n_pruned} pruned, "
                 f"{sum(len(t.intermediate_values) for t in study.get_trials(deepcopy=False))} epochs trained")
    return "\n".join(lines)


def check_pretrained_shapes(cfg: config.Config) -> None:
    """Pretrained weights have the shapes they were learned with: a sweep cannot vary those."""
    varied = [key for key in embeddings.SHAPED_BY[cfg.pretrain.method] if key in search_space.dimensions(cfg)]
    if varied:
        raise UserError(f"sweep.space.{varied[0]} cannot vary with pretrain.method={cfg.pretrain.method}: the pretrained "
                        f"weights have one shape; drop it ('~sweep.space.{varied[0]}')")


def check_vocabulary_reach(cfg: config.Config) -> None:
    """A trial can lower data.num_words below the tokenize stage's vocabulary, not raise it."""
    dim = search_space.dimensions(cfg).get("data.num_words")
    if dim is None:
        return
    largest = max(dim.choices) if dim.choices is not None else dim.high
    size = Vocabulary.load(Path(cfg.paths.tokens) / VOCAB_FILE).size
    if largest > size:
        raise UserError(f"sweep.space.data.num_words reaches {largest} but the tokenize stage's vocabulary has "
                        f"{size} ids: re-run that stage with data.num_words >= {largest}")


def baseline_test(baseline, best, parent_run_id: str) -> str:
    """The paired test of the best trial against the baseline on their validation predictions
    (src.significance), for the closing line; tagged on the study's parent run. The best trial
    was chosen on these very reviews, so its edge here is optimistic."""
    runs = [trial.user_attrs.get("mlflow_run_id") for trial in (baseline, best)]
    if not all(runs):
        return ""
    try:
        compared = significance.compare(*(predictions.from_run(run_id, "val") for run_id in runs))
    except UserError as exc:
        return f" (no paired test: {exc})"
    verdict = {"B is better": "the best trial is better", "A is better": "the baseline is better"}.get(
        compared.verdict, compared.verdict)
    line = f"; paired on {compared.reviews} validation reviews: {significance.summary(compared)}: {verdict}"
    tracking.log_to_run(parent_run_id, tags={"baseline_test": line.removeprefix("; ")})
    return line + " (the best was chosen on these reviews: optimistic)"


def sweep(cfg: config.Config, overrides: list[str]) -> dict:
    """Run (or resume) the study to n_trials; return the best trial's value, params and preset."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    tokens = Path(cfg.paths.tokens) / "train.npz"
    if not tokens.is_file():
        raise UserError(f"{tokens} not found: run the data stages first (`dvc repro pad`)")
    check_vocabulary_reach(cfg)
    check_pretrained_shapes(cfg)
    storage = open_storage(cfg)
    study, parent_run_id = join_study(cfg, storage)
    finished, _ = counts(study)
    print(f"study {cfg.sweep.study_name!r} in {storage_url(cfg)}: {finished}/{cfg.sweep.n_trials} trials finished; "
          f"MLflow parent run {parent_run_id}", flush=True)
    status = "FAILED"
    try:
        started = time.perf_counter()
        run_workers(cfg, overrides)
        status = "FINISHED"
    except (KeyboardInterrupt, Terminated):
        status = "KILLED"
        raise
    finally:
        study = load_study(cfg, storage, worker=0)
        with tempfile.TemporaryDirectory() as plots:
            save_plots(study, Path(plots))
            tracking.log_to_run(parent_run_id, artifacts_dir=Path(plots))
        tracking.close_run(parent_run_id, status)
    print(summary_table(study))
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise UserError("no trial completed (all pruned or failed): widen the space or lower the pruning")
    best = study.best_trial
    baseline = next((t for t in study.get_trials(deepcopy=False) if is_baseline(t) and t.value is not None), None)
    if baseline is not None and baseline.number == best.number:
        print("no sampled configuration beat the baseline (the config without the sweep)")
    elif baseline is not None:
        print(f"best vs baseline (trial {baseline.number}): {best.value - baseline.value:+.4f} val_accuracy"
              + baseline_test(baseline, best, parent_run_id))
    name, path = write_preset(cfg, overrides, best.params)
    tracking.log_to_run(parent_run_id, tags={"preset": name})
    print(f"best val_accuracy {best.value:.4f} (trial {best.number}): {format_params(best.params)}; "
          f"{time.perf_counter() - started:.0f}s\nwrote {path.relative_to(EXPERIMENTS_DIR.parent)}; retrain with:\n"
          f"  python -m src.stages.train experiment={name}\n  dvc exp run -S experiment={name}")
    return {"best_value": best.value, "best_params": best.params, "preset": name, "parent_run_id": parent_run_id}


@command
def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:  # a process started by run_workers
        worker, overrides = int(argv[1]), argv[2:]
        cfg = config.compose(overrides)
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        work(cfg, overrides, worker)
        return
    if argv[:1] == ["--params"]:
        raise UserError("the sweep composes conf/ with overrides (it gives them to every trial); --params is a DVC stage's")
    cfg = config.from_argv(argv, usage=__doc__)
    sweep(cfg, argv)


if __name__ == "__main__":
    main()

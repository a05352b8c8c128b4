"""The one place MLflow runs are opened, tagged and closed.

The store is MLFLOW_TRACKING_URI when set, else mlflow.db (SQLite) at the project root,
addressed by absolute path. Under `dvc exp run --queue` a stage runs in a copy of the
project under .dvc/tmp/exps; DVC_ROOT then names the real project, so runs land there.

Every run ends with a truthful status: FINISHED, FAILED on an exception, KILLED on Ctrl-C
or SIGTERM. A SIGKILLed process cannot say anything, so each new run first marks KILLED
any RUNNING run whose process (recorded in its tags) is gone from this host.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import subprocess
import warnings
from pathlib import Path

from src.lib.artifacts import process_alive, project_root
from src.lib.config import Config
from src.lib.errors import Terminated, UserError, first_line

HOST_TAG = "process.host"
PID_TAG = "process.pid"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def flat_params(cfg: Config, sections: tuple[str, ...] | None = None) -> dict[str, str]:
    """The resolved config values of `sections` (default: all but the sweep's, whose settings
    belong on its study's run) as dotted MLflow params ("model.units": "128")."""
    return {
        f"{section}.{key}": str(value)
        for section, values in cfg.to_dict().items()
        if (section in sections if sections else section != "sweep")
        for key, value in values.items()
    }


def log_params(cfg: Config, sections: tuple[str, ...] | None = None, extra: dict[str, str] | None = None) -> None:
    """The active run's params: the config's `sections` flattened (flat_params), and `extra`."""
    import mlflow

    mlflow.log_params(flat_params(cfg, sections) | (extra or {}))


def log_text(text: str, artifact_file: str) -> None:
    """A text file among the active run's artifacts."""
    import mlflow

    mlflow.log_text(text, artifact_file)


INPUT_CONTEXTS = {"train": "training", "val": "validation", "test": "test"}


def log_inputs(cfg: Config, splits: dict) -> None:
    """The run's datasets (MLflow's Datasets column): each split's token arrays and labels, named
    `imdb-<split>`, from the archive in data.url, with a digest derived from the archive's
    sha256 (data.sha256: the download stage extracts no other archive) and how validation was
    carved, and the number of reviews as a tag."""
    import mlflow

    url = cfg.data.url if "://" in cfg.data.url else (project_root() / cfg.data.url).resolve().as_uri()
    d = cfg.data
    for name, split in splits.items():
        recipe = f"{d.sha256.lower()}:{name}:{d.val_split}:{d.val_fraction}:{d.split_seed}:{d.maxlen}:{d.num_words}"
        with warnings.catch_warnings():  # MLflow registers its local-file source twice and says so
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways.*")
            dataset = mlflow.data.from_numpy(
                split.x,
                targets=split.y,
                source=url,
                name=f"imdb-{name}",
                digest=hashlib.sha256(recipe.encode()).hexdigest()[:8],
            )
        try:
            mlflow.log_input(dataset, context=INPUT_CONTEXTS[name], tags={"reviews": str(len(split.y))})
        except mlflow.exceptions.MlflowException:
            # Workers logging one new dataset at once: MLflow checks, then inserts, so one can
            # fail on the dataset's unique key. The dataset exists now; a second call links it.
            mlflow.log_input(dataset, context=INPUT_CONTEXTS[name], tags={"reviews": str(len(split.y))})


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def process_tags() -> dict[str, str]:
    """Which process on which host runs the run (mark_orphaned_runs_killed reads them)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def commit_tag() -> dict[str, str]:
    commit = git_commit()
    return {"mlflow.source.git.commit": commit} if commit else {}


def require_store() -> str:
    """The tracking URI, after checking that an embedded store exists (a command that only reads
    runs must not create an empty mlflow.db)."""
    store = tracking_uri()
    db = sqlite_path(store)
    if db is not None and not db.is_file():
        raise UserError(f"no MLflow store at {store}: run `dvc repro` first, or set MLFLOW_TRACKING_URI")
    return store


def mark_orphaned_runs_killed(client, experiment_id: str) -> list[str]:
    """KILLED for RUNNING runs started on this host by a process that no longer exists."""
    host = socket.gethostname()
    orphans = []
    for run in client.search_runs(
        [experiment_id], filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` = '{host}'"
    ):
        pid = run.data.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
            client.set_terminated(run.info.run_id, status="KILLED")
            orphans.append(run.info.run_id)
    return orphans


def connect(cfg: Config):
    """Point MLflow at the store and return (client, experiment_id), or fail in one line."""
    import mlflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    # Our artifacts are a few small files; MLflow's progress bars for each would bury our lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        probe_database(uri)
        with sqlite_setup_lock(uri):
            client = mlflow.MlflowClient()
            experiment_id = _experiment_id(client, cfg.tracking.experiment)
    except Exception as exc:  # MLflow, SQLAlchemy, HTTP or driver errors: a wrong or unreachable store
        raise UserError(f"cannot use MLflow tracking store {uri}: {type(exc).__name__}: {first_line(exc)}") from None
    mlflow.set_experiment(experiment_id=experiment_id)
    return client, experiment_id


def probe_database(uri: str) -> None:
    """Connect once to a PostgreSQL or MySQL store, giving up after 10 s: MLflow itself retries
    an unreachable database for about 100 s before it says anything."""
    import sqlalchemy

    dialect = uri.split(":", 1)[0].split("+", 1)[0]
    if dialect not in ("postgresql", "mysql", "mssql"):
        return  # SQLite, an MLflow server (http), a local folder: MLflow answers at once
    engine = sqlalchemy.create_engine(uri, connect_args={"connect_timeout": 10})
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite store URI; None for any other kind of store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def sqlite_setup_lock(uri: str):
    """Hold an exclusive lock beside a SQLite store while this process first opens it.

    Opening a store creates or migrates its tables, and neither MLflow nor Optuna guards that:
    several processes opening a new mlflow.db or optuna.db at once (sweep workers, `dvc queue
    start -j 2`) fail with "table ... already exists". One at a time, the later ones find the
    tables made.
    """
    import fcntl

    db = sqlite_path(uri)
    if db is None or not db.parent.is_dir():
        yield  # not SQLite, or a bad path MLflow and Optuna report themselves
        return
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # With the embedded store, artifacts go beside mlflow.db, not under whichever working
    # directory happened to create the experiment (a DVC queue copy is deleted afterwards).
    location = None if os.environ.get("MLFLOW_TRACKING_URI") else (project_root() / "mlartifacts").as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@contextlib.contextmanager
def run(
    cfg: Config,
    *,
    run_id: str | None = None,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
    system_metrics: bool = False,
):
    """Open (or, with run_id, reopen) an MLflow run and close it with a truthful status.

    parent_run_id nests the new run under another (a sweep trial under its study's run), also
    from another process. An exception carrying `mlflow_status` (a pruned trial: "KILLED")
    ends the run with that status instead of FAILED. system_metrics records CPU and memory
    (`system/*` metrics, sampled by MLflow in the background) while the run is open."""
    import mlflow

    client, experiment_id = connect(cfg)
    mark_orphaned_runs_killed(client, experiment_id)
    if run_id is not None and _find_run(client, run_id) is None:
        raise UserError(f"MLflow run {run_id} is not in {tracking_uri()}: re-run training (`dvc repro -f train`)")
    base_tags = process_tags()
    if run_id is None:
        base_tags |= commit_tag()
        if os.environ.get("DVC_EXP_NAME"):
            base_tags["dvc.experiment"] = os.environ["DVC_EXP_NAME"]
        if parent_run_id:
            base_tags["mlflow.parentRunId"] = parent_run_id  # what the MLflow UI nests runs by
    # Its monitor announces itself and the GPU it does not find at INFO: not the user's news.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    active = mlflow.start_run(
        run_id=run_id,
        run_name=None if run_id else cfg.tracking.run_name,
        tags=base_tags | (tags or {}),
        log_system_metrics=system_metrics,
    )
    try:
        yield active
    except (KeyboardInterrupt, Terminated):
        mlflow.end_run("KILLED")
        raise
    except BaseException as exc:
        mlflow.end_run(getattr(exc, "mlflow_status", "FAILED"))
        raise
    mlflow.end_run("FINISHED")


def _find_run(client, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def open_study_run(cfg: Config, run_id: str | None) -> str:
    """The sweep's parent run: reopened when the study already has one (a resumed sweep),
    else created. Opened with the client, not as the process's active run, so trial runs
    in this process or in worker processes nest under it by id."""
    client, experiment_id = connect(cfg)
    mark_orphaned_runs_killed(client, experiment_id)
    tags = process_tags() | {"optuna.study": cfg.sweep.study_name}
    if run_id is not None and _find_run(client, run_id) is not None:
        client.update_run(run_id, status="RUNNING")
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        return run_id
    tags |= commit_tag()
    run = client.create_run(experiment_id, run_name=cfg.sweep.study_name, tags=tags)
    client.log_batch(run.info.run_id, params=[_param(k, v) for k, v in flat_params(cfg, ("sweep",)).items()])
    return run.info.run_id


@contextlib.contextmanager
def parent_run(cfg: Config, run_name: str, tags: dict[str, str]):
    """A parent run for child runs this process starts (with parent_run_id): opened with the
    client, not as the active run, and closed with a truthful status like run()."""
    client, experiment_id = connect(cfg)
    mark_orphaned_runs_killed(client, experiment_id)
    run_id = client.create_run(experiment_id, run_name=run_name, tags=process_tags() | commit_tag() | tags).info.run_id
    client.log_batch(run_id, params=[_param(k, v) for k, v in flat_params(cfg).items()])
    try:
        yield run_id
    except (KeyboardInterrupt, Terminated):
        close_run(run_id, "KILLED")
        raise
    except BaseException:
        close_run(run_id, "FAILED")
        raise
    close_run(run_id, "FINISHED")


def log_to_run(
    run_id: str,
    *,
    metrics: dict[str, float] = (),
    tags: dict[str, str] = (),
    step: int = 0,
    artifacts_dir: Path | None = None,
) -> None:
    """Add metrics, tags or a directory of artifacts to a run that is not this process's active run."""
    import time

    import mlflow
    from mlflow.entities import Metric, RunTag

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, step) for k, v in dict(metrics).items()],
        tags=[RunTag(k, str(v)) for k, v in dict(tags).items()],
    )
    if artifacts_dir is not None:
        client.log_artifacts(run_id, str(artifacts_dir))


def close_run(run_id: str, status: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_terminated(run_id, status=status)


def _param(key: str, value: str):
    from mlflow.entities import Param

    return Param(key, value)

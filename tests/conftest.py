"""Tiny IMDB-layout archives and a shrunken config, so every test runs real code in seconds."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml

from src.lib import config

PROJECT = Path(__file__).resolve().parent.parent

POSITIVE = [
    "a wonderful film, great acting and a brilliant story",
    "great fun, I loved it: excellent and moving",
    "brilliant, wonderful, superb<br />a great film",
]
NEGATIVE = [
    "an awful film, terrible acting and a boring story",
    "boring and dull, I hated it: awful waste",
    "terrible, awful, worst<br />a boring film",
]

# Small enough to train in a second or two, big enough to learn the toy sentiment.
# One direction: a bidirectional LSTM doubles the seconds TensorFlow spends tracing every new
# model (tests/test_train_evaluate.py trains the default, bidirectional one).
TINY_OVERRIDES = [
    "data.num_words=40",
    "data.maxlen=12",
    "data.val_fraction=0.25",
    "model.embedding_dim=8",
    "model.units=8",
    "model.bidirectional=false",
    "train.epochs=2",
    "train.batch_size=8",
    "train.learning_rate=0.02",
    "train.eval_batch_size=16",
    "train.ensemble=1",
    "pretrain.method=none",  # word2vec's own tests: tests/test_pretrain.py
    # The default trains adversarially; epsilon is on the embeddings' scale, and the
    # tiny model's 8-wide random ones are far smaller than word2vec's.
    "train.adversarial_epsilon=0.1",
]


# Files whose tests start many processes or servers (a minute or two each) run first: under
# pytest-xdist the short tests then fill the workers' last minutes, instead of one long test
# running alone at the end.
LONG_FIRST = ("test_faults.py", "test_scale_out.py", "test_pipeline_e2e.py", "test_sweep.py", "test_mlflow_ui.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in LONG_FIRST)  # stable: file order kept otherwise


def project_sources_status() -> str:
    """git's view of the project's sources (changed and new files), which no test may write."""
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "src", "conf", "experiments"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    ).stdout


def pytest_sessionstart(session):
    session.config.project_sources_before = project_sources_status()


def pytest_sessionfinish(session, exitstatus):
    # A sweep run by a test in the project folder writes experiments/<preset>.yaml there: caught
    # here once the run is over (the controller only, under pytest-xdist), not committed later.
    if hasattr(session.config, "workerinput"):
        return
    written = sorted(
        set(project_sources_status().splitlines()) - set(session.config.project_sources_before.splitlines())
    )
    if written:
        print(f"\ntests wrote into the project's sources: {written}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def review_files(per_folder: int = 16) -> dict[str, bytes]:
    """{archive member name: content} for train/test x pos/neg."""
    files = {}
    for split in ("train", "test"):
        for label, texts in (("pos", POSITIVE), ("neg", NEGATIVE)):
            for i in range(per_folder):
                text = f"{texts[i % len(texts)]} review {i}"
                files[f"aclImdb/{split}/{label}/{i}_{7 if label == 'pos' else 2}.txt"] = text.encode()
    return files


def movie_files(per_folder: int = 16, per_movie: int = 4, unsup: int = 8) -> dict[str, bytes]:
    """The official archive's other members: urls_<label>.txt per split (line i is the movie
    of review i; a movie's reviews are consecutive and it has reviews of both labels, as in
    aclImdb) and `unsup` unlabeled reviews in train/unsup with their urls file."""
    files = {}
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            urls = [f"http://www.imdb.com/title/tt{split}{i // per_movie:04d}/usercomments" for i in range(per_folder)]
            files[f"aclImdb/{split}/urls_{label}.txt"] = ("\n".join(urls) + "\n").encode()
    for i in range(unsup):
        files[f"aclImdb/train/unsup/{i}_0.txt"] = f"an unlabeled review {i} of some film".encode()
    files["aclImdb/train/urls_unsup.txt"] = "".join(
        f"http://www.imdb.com/title/ttunsup{i}/usercomments\n" for i in range(unsup)
    ).encode()
    return files


def write_archive(path: Path, files: dict[str, bytes], links: dict[str, str] = (), mode: str = "w:gz") -> str:
    """Write a tar archive of files (and symlinks name -> target); return its sha256."""
    with tarfile.open(path, mode) as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
        for name, target in dict(links).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return sha256(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def empty_mlflow_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with its tables made, once: creating them (MLflow's schema
    migrations) takes seconds, copying the file does not."""
    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture(autouse=True)
def isolated_tracking(request, tmp_path, monkeypatch, empty_mlflow_store):
    """Every test gets its own MLflow store (a copy of an empty one, or none at all under
    @pytest.mark.new_mlflow_store); none touches the project's mlflow.db."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if not request.node.get_closest_marker("new_mlflow_store"):
        shutil.copy(empty_mlflow_store, tmp_path / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture(autouse=True)
def cpu_only(request):
    """@pytest.mark.cpu_only(why): skipped, saying why, where TensorFlow sees a GPU."""
    marker = request.node.get_closest_marker("cpu_only")
    if marker:
        import tensorflow as tf

        if tf.config.list_physical_devices("GPU"):
            pytest.skip(f"CPU only: {marker.args[0]}")


@pytest.fixture
def tiny_archive(tmp_path) -> Path:
    """A valid tiny archive in the official archive's layout, at tmp_path/tiny.tar.gz."""
    path = tmp_path / "tiny.tar.gz"
    write_archive(path, review_files() | movie_files())
    return path


def archive_overrides(url: str | Path, archive: Path | None = None) -> list[str]:
    """The overrides naming an archive, as a user gives them: its location and its checksum
    (of `archive`, for a url that is not the archive's own path)."""
    return [f"data.url={url}", f"data.sha256={sha256(archive or Path(url))}"]


def with_archive(cfg: config.Config, url: str | Path, checksum: str | None = None) -> config.Config:
    """cfg naming another archive (checksum: the file's own unless given)."""
    return replace(cfg, data=replace(cfg.data, url=str(url), sha256=checksum or sha256(Path(url))))


def output_paths(root: Path) -> list[str]:
    return [f"paths.{key}={root / key}" for key in ("raw", "tokens", "padded", "pretrained", "model", "reports")]


@pytest.fixture
def tiny_cfg(tmp_path, tiny_archive) -> config.Config:
    """The real config from conf/, shrunk, naming the tiny archive, with every output under tmp_path."""
    return config.compose(TINY_OVERRIDES + output_paths(tmp_path / "out") + archive_overrides(tiny_archive))


@pytest.fixture
def prepared_cfg(tiny_cfg, tiny_archive):
    """tiny_cfg with the download, tokenize and pad stages done."""
    from src.stages import download, pad, tokenize

    download.download(tiny_cfg)
    tokenize.tokenize(tiny_cfg)
    pad.pad_splits(tiny_cfg)
    return tiny_cfg


SPACE = [
    "sweep.space.model.units.low=4",
    "sweep.space.model.units.high=8",
    "sweep.space.data.maxlen.low=8",
    "sweep.space.data.maxlen.high=16",
    "sweep.space.data.maxlen.step=4",
]


@pytest.fixture
def sweep_overrides(tmp_path, tiny_archive):
    """Overrides for a tiny sweep whose data stages have run, with its stores under tmp_path."""
    overrides = (
        TINY_OVERRIDES
        + output_paths(tmp_path / "out")
        + archive_overrides(tiny_archive)
        + SPACE
        + [
            # train.epochs is what a retrained winner uses; sweep.epochs caps each trial.
            "train.epochs=5",
            f"sweep.storage=sqlite:///{tmp_path / 'optuna.db'}",
            "sweep.epochs=2",
            "sweep.pruner=none",
            "sweep.preset=tiny-best",
        ]
    )
    cfg = config.compose(overrides)
    from src.stages import download, pad, tokenize

    download.download(cfg)
    tokenize.tokenize(cfg)
    pad.pad_splits(cfg)
    return overrides


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(server: subprocess.Popen, url: str, seconds: int = 300) -> None:
    """Poll url once a second until it answers 200; fail if the server exits or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.stderr.read() if server.stderr else "server exited"
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {seconds} s"
        time.sleep(1)


def run_module(
    module: str, *args: str, cwd: Path = PROJECT, env: dict | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """Run `python -m <module>` as a user would; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@contextlib.contextmanager
def signal_handlers_restored():
    """SIGTERM's and SIGINT's handlers as they were, after code that installs its own (a command)."""
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def run_main(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m <module> args` run in this process, through the command's own main(argv):
    its exit status and printed output as run_module gives them, without a new interpreter
    importing TensorFlow and MLflow again (seconds per command). Library log lines are not in
    its stderr: tests about a whole process's output use run_module."""
    import importlib
    import io

    main = importlib.import_module(module).main
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with signal_handlers_restored(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            main(list(args))
        status = 0
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    return subprocess.CompletedProcess([module, *args], status, stdout.getvalue(), stderr.getvalue())


def copy_project(dest: Path) -> Path:
    """The project's tracked sources in a fresh git + DVC repository (no data, lock or stores)."""
    for name in ("src", "conf", "experiments"):
        shutil.copytree(PROJECT / name, dest / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        shutil.copy(PROJECT / name, dest / name)
    (dest / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy(PROJECT / ".dvc" / name, dest / ".dvc" / name)
    shutil.copytree(PROJECT / ".dvc" / "plots", dest / ".dvc" / "plots")  # config's plots.html_template
    for command in (
        ["init", "-q"],
        ["config", "user.name", "test"],
        ["config", "user.email", "test@example.com"],
        ["add", "-A"],
        ["commit", "-qm", "project"],
    ):
        # A repository-local identity: DVC's experiment commits need one, CI may have none.
        subprocess.run(["git", *command], cwd=dest, check=True)
    return dest


def tiny_preset(archive_url: str, archive: Path) -> str:
    """TINY_OVERRIDES and the archive as an experiment preset, selected like any other preset."""
    tree: dict = {}
    for override in TINY_OVERRIDES + archive_overrides(archive_url, archive):
        key, value = override.split("=", 1)
        section, name = key.split(".")
        tree.setdefault(section, {})[name] = (
            value if section == "data" and name in ("url", "sha256") else yaml.safe_load(value)
        )
    return "# @package _global_\n" + yaml.safe_dump(tree)


@pytest.fixture
def repo(tmp_path, tiny_archive, monkeypatch):
    repo = copy_project(tmp_path / "repo")
    # The archive by a path relative to the project, as the README names the shared copy.
    (repo / "experiments" / "tiny.yaml").write_text(tiny_preset(f"../{tiny_archive.name}", tiny_archive))
    assert run_module("src.config", "experiment=tiny", cwd=repo).returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny preset")
    # The default store: mlflow.db at the project root, as a user without MLFLOW_TRACKING_URI has.
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    # Stage commands say `python`: make it this interpreter, as an activated venv would.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    return repo


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def runs(repo: Path, kind: str = "training") -> list:
    """The repository's MLflow runs, oldest first: those of training (the train stage's, which
    evaluate reopens), or of the baseline, blend or pretrain stage (tagged `baseline`, `blend`, `pretrain`)."""
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-lstm")
    found = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    if kind == "training":
        return [r for r in found if not {"baseline", "blend", "pretrain"} & r.data.tags.keys()]
    return [r for r in found if kind in r.data.tags]


def study_trials(storage) -> list:
    """The study's trials; storage is a URL or an opened optuna storage (reuse one when polling:
    each URL opens a new connection pool, and a PostgreSQL server refuses clients past 100)."""
    return optuna.load_study(study_name="imdb-lstm", storage=storage).get_trials()


def wait_for_trial_epoch(storage: str, procs: list[subprocess.Popen], seconds: float = 300):
    """The first RUNNING trial that has reported an epoch (a sweep is mid-trial), polled while
    every one of the sweep processes is alive, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    opened = optuna.storages.RDBStorage(storage)
    try:
        while True:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs if p.poll() is not None]
            assert time.monotonic() < deadline, f"no trial reported an epoch within {seconds} s"
            try:
                running = [
                    t
                    for t in study_trials(opened)
                    if t.state == optuna.trial.TrialState.RUNNING and t.intermediate_values
                ]
            except KeyError:  # the study is not created yet
                running = []
            if running:
                return running[0]
            time.sleep(0.3)
    finally:
        opened.engine.dispose()

"""DVC's record is what ran: the archive a stage used is the one dvc.lock names, every stage
depends on all the code it imports, and no stage runs on a params.yaml that conf/ no longer
composes to."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from src.lib import config
from src.lib.errors import UserError
from tests.conftest import PROJECT, dvc, movie_files, review_files, run_module, sha256, write_archive
from tests.import_graph import closure, file_of, imports


def stages() -> dict:
    return yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]


def test_import_closure_follows_imports_inside_functions():
    # The registry imports review_model (which imports MLflow) inside the function that logs a model.
    assert imports("src.lib.registry")["src.lib.review_model"] == ["log_model"]
    assert {"src.lib.registry", "src.lib.review_model", "src.lib.model_folder"} <= closure("src.stages.train")
    assert closure("src.stages.download") == {
        "src",
        "src.lib",
        "src.stages",
        "src.stages.download",
        "src.lib.config",
        "src.lib.artifacts",
        "src.lib.errors",
        "src.lib.data",
        "src.lib.text",
        "src.lib.quiet",
        "src.lib.hardware",
    }  # the package's __init__ imports the last two


@pytest.mark.parametrize("stage", sorted(stages()))
def test_each_stage_depends_on_its_module_and_everything_it_imports(stage):
    spec = stages()[stage]
    command = spec["cmd"].split()
    assert command[:2] == ["python", "-m"] and command[2].startswith("src.stages."), spec["cmd"]
    needed = {file_of(name) for name in closure(command[2])}
    listed = {dep for dep in spec["deps"] if dep.startswith("src/")}
    assert sorted(needed - listed) == [], f"dvc.yaml: stage {stage} misses these deps"
    assert sorted(listed - needed) == [], f"dvc.yaml: stage {stage} lists code it never imports"


# --- params.yaml is conf/ as it stands --------------------------------------------------------


@pytest.fixture
def conf_copy(tmp_path, monkeypatch) -> Path:
    """A copy of conf/ (and the presets it links to) that the config module composes from."""
    shutil.copytree(PROJECT / "conf", tmp_path / "project" / "conf", symlinks=True)
    shutil.copytree(PROJECT / "experiments", tmp_path / "project" / "experiments")
    monkeypatch.setattr(config, "CONF_DIR", tmp_path / "project" / "conf")
    monkeypatch.delenv(config.EXPERIMENT_ENV, raising=False)
    return tmp_path / "project" / "conf"


def test_a_stage_refuses_params_that_conf_no_longer_composes_to(conf_copy, tmp_path, monkeypatch):
    overrides = ["experiment=lecture12", "model.dropout=0.25"]
    params = tmp_path / "params.yaml"
    params.write_text(config.to_yaml(config.compose(overrides), overrides))
    assert config.load_for_stage(params) == config.compose(overrides)

    lstm = conf_copy / "model" / "lstm.yaml"
    lstm.write_text(lstm.read_text().replace("embedding_dim: 128", "embedding_dim: 96"))
    with pytest.raises(UserError) as stale:
        config.load_for_stage(params)
    assert str(stale.value) == (
        f"{params} is stale: conf/ composed with its overrides {overrides} now gives a different "
        "model.embedding_dim (conf/ edited since, or "
        f"{params} by hand): regenerate it with "
        "`python -m src.config experiment=lecture12 model.dropout=0.25`"
    )


def test_a_stage_refuses_params_that_record_no_composition(conf_copy, tmp_path, monkeypatch):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(config.compose().to_dict()))  # written by hand, or by `dvc exp run`
    with pytest.raises(UserError, match="does not record the overrides it was composed with"):
        config.load_for_stage(params)
    monkeypatch.setenv(config.EXPERIMENT_ENV, "an-experiment")  # `dvc exp run` composed it just now
    assert config.load_for_stage(params) == config.compose()


def test_the_committed_params_yaml_records_that_it_is_conf_as_it_stands():
    text = (PROJECT / "params.yaml").read_text()
    assert config.recorded_overrides(text) == []
    assert config.load_for_stage(PROJECT / "params.yaml") == config.compose()


# --- the archive DVC records is the archive used ----------------------------------------------


def lock(repo: Path) -> str:
    return (repo / "dvc.lock").read_text()


def name_archive(repo: Path, url: str | Path, checksum: str) -> None:
    """Name an archive the way the README says: `python -m src.config ... data.url=... data.sha256=...`."""
    done = run_module("src.config", "experiment=tiny", f"data.url={url}", f"data.sha256={checksum}", cwd=repo)
    assert done.returncode == 0, done.stderr


def raw_source(repo: Path) -> dict:
    return json.loads((repo / "data" / "raw" / "source.json").read_text())


@pytest.mark.slow
def test_another_archive_always_reruns_download_a_broken_one_fails_and_stale_params_stop(repo, tmp_path, tiny_archive):
    dvc(repo, "repro", "tokenize")  # the repo's preset names the tiny archive by a relative path
    good_lock = lock(repo)
    assert raw_source(repo)["sha256"] == sha256(tiny_archive)
    recorded = yaml.safe_load(good_lock)["stages"]["download"]["params"]["params.yaml"]
    assert recorded == {"data.url": "../tiny.tar.gz", "data.sha256": sha256(tiny_archive)}

    # Forced to run again on the same archive, the stage writes the same data: the record stands.
    dvc(repo, "repro", "-f", "download")
    assert raw_source(repo)["sha256"] == sha256(tiny_archive) and lock(repo) == good_lock

    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(tiny_archive.read_bytes()[:-200])

    not_gzip = tmp_path / "plain.tar.gz"
    write_archive(not_gzip, review_files(), mode="w")
    other = tmp_path / "other.tar.gz"  # a good archive of other reviews
    write_archive(other, review_files(per_folder=5) | movie_files(per_folder=5))
    broken = [
        (truncated, sha256(truncated), "is not a readable .tar.gz archive"),
        (not_gzip, sha256(not_gzip), "is not a readable .tar.gz archive"),
        (other, "0" * 64, "checksum mismatch"),
    ]
    for archive, checksum, message in broken:
        name_archive(repo, archive, checksum)
        failed = dvc(repo, "repro", "tokenize", check=False)
        output = failed.stdout + failed.stderr
        assert failed.returncode != 0, output
        assert "is cached - skipping run" not in output
        errors = [line for line in output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and message in errors[0], output
        assert "Traceback" not in output
        assert lock(repo) == good_lock
        assert not (repo / "data" / "raw").exists(), "a refused archive leaves no data behind"

    # A good archive after the bad ones: its data, through every stage that follows, in the record.
    name_archive(repo, other, sha256(other))
    dvc(repo, "repro", "tokenize")
    assert raw_source(repo)["sha256"] == sha256(other)
    assert json.loads((repo / "data" / "tokens" / "stats.json").read_text())["test"]["reviews"] == 10
    stages_run = yaml.safe_load(lock(repo))["stages"]
    assert stages_run["download"]["params"]["params.yaml"] == {"data.url": str(other), "data.sha256": sha256(other)}

    # DVC's own way of naming it, as an experiment: back to the first archive's data.
    dvc(
        repo,
        "exp",
        "run",
        "tokenize",
        "-S",
        "experiment=tiny",
        "-S",
        f"data.url={tiny_archive}",
        "-S",
        f"data.sha256={sha256(tiny_archive)}",
    )
    assert raw_source(repo)["sha256"] == sha256(tiny_archive)
    assert json.loads((repo / "data" / "tokens" / "stats.json").read_text())["test"]["reviews"] == 32

    # conf/ edited without regenerating params.yaml: a stage that starts stops with one line.
    name_archive(repo, f"../{tiny_archive.name}", sha256(tiny_archive))  # params.yaml as the repo had it
    imdb = repo / "conf" / "data" / "imdb.yaml"
    imdb.write_text(imdb.read_text().replace("split_seed: 1337", "split_seed: 7"))
    failed = dvc(repo, "repro", "-f", "-s", "tokenize", check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error: ")]
    overrides = ["experiment=tiny", f"data.url=../{tiny_archive.name}", f"data.sha256={sha256(tiny_archive)}"]
    assert errors == [
        f"error: params.yaml is stale: conf/ composed with its overrides {overrides} now gives "
        "a different data.split_seed (conf/ edited since, or params.yaml by hand): regenerate it with "
        f"`python -m src.config {' '.join(overrides)}`"
    ], output
    assert not (repo / "data" / "tokens").exists()
    name_archive(repo, f"../{tiny_archive.name}", sha256(tiny_archive))
    dvc(repo, "repro", "tokenize")
    assert yaml.safe_load(lock(repo))["stages"]["tokenize"]["params"]["params.yaml"]["data.split_seed"] == 7

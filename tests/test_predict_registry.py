"""Using the trained model: predict on raw text, the registry's aliases, `mlflow models serve`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from src import predict
from src.lib import config, model_folder, quiet, registry
from src.lib.data import load_split
from src.stages import evaluate, train
from tests.conftest import PROJECT, free_port, review_files, run_main, run_module, wait_until_serving

# A long review (far past the tiny maxlen of 12 tokens) whose verdict is in its last words:
# 'pre' truncation keeps the ending.
LONG_REVIEW = " ".join(["awful"] * 3000 + ["wonderful", "great", "brilliant"] * 4)
REVIEWS = ["a wonderful film, great acting", "an awful film, terrible and boring", "", LONG_REVIEW]


@pytest.fixture
def trained_cfg(prepared_cfg, tmp_path):
    """Trained and evaluated (so registered as version 1); params.yaml written for the commands."""
    train.train(prepared_cfg)
    evaluate.evaluate(prepared_cfg)
    (tmp_path / "params.yaml").write_text(config.to_yaml(prepared_cfg))
    return prepared_cfg


def parse(stdout: str) -> list[tuple[str, float]]:
    return [(line.split("\t")[0], float(line.split("\t")[1])) for line in stdout.splitlines()]


def test_raw_text_gets_the_scores_evaluate_gives_the_token_ids(trained_cfg):
    classifier = predict.pipeline_classifier(trained_cfg)
    # The tiny archive's test reviews in the tokenize stage's order: neg then pos, file names sorted.
    files = review_files()
    texts = [
        files[name].decode()
        for label in ("neg", "pos")
        for name in sorted(n for n in files if n.startswith(f"aclImdb/test/{label}/"))
    ]
    from src.lib.batches import predict as predict_ids
    from src.lib.model import load_model

    x_test, y_test = load_split(trained_cfg, "test")
    assert y_test.tolist() == [0] * 16 + [1] * 16
    expected = predict_ids(
        load_model(Path(trained_cfg.paths.model) / model_folder.MODEL_FILE), x_test, trained_cfg.train
    )
    # ...scored from raw text match, review by review, what evaluate scored from the pad stage's arrays.
    np.testing.assert_allclose(classifier.predict_proba(texts), expected, atol=1e-6)
    assert np.abs(np.diff(expected)).max() > 1e-3, "reviews with distinct scores, so an order bug shows"
    scores = classifier.predict_proba(REVIEWS)
    assert scores[0] > 0.5 > scores[1]
    assert len(scores) == 4  # empty and very long reviews too
    # A review without words is read as one unknown word, not as a row of padding only.
    assert scores[2] == pytest.approx(classifier.predict_proba(["zzzunknownzzz"])[0], abs=1e-6)
    # The long review is cut to its last 12 tokens, as training cut it.
    ending = " ".join(LONG_REVIEW.split()[-trained_cfg.data.maxlen :])
    assert scores[3] == pytest.approx(classifier.predict_proba([ending])[0], abs=1e-6)
    assert scores[3] > 0.5, "the ending decides, not the 3000 awfuls before it"


@pytest.mark.slow
def test_predict_command_reads_arguments_files_and_stdin(trained_cfg, tmp_path):
    params = str(tmp_path / "params.yaml")
    by_args = run_main("src.predict", "--params", params, *REVIEWS[:2])
    assert by_args.returncode == 0, by_args.stderr
    rows = parse(by_args.stdout)
    assert [label for label, _ in rows] == ["pos", "neg"]
    expected = predict.pipeline_classifier(trained_cfg).predict_proba(REVIEWS[:2])
    assert [p for _, p in rows] == pytest.approx(expected.tolist(), abs=1e-4)

    reviews = tmp_path / "reviews.txt"
    reviews.write_bytes(b"a wonderful film\n\n\xff\xfe great \xc3 acting\n" + b"awful " * 5000 + b"\n")
    by_file = run_main("src.predict", "--params", params, "--file", str(reviews))
    assert by_file.returncode == 0, by_file.stderr
    assert len(parse(by_file.stdout)) == 3 and "skipped 1 blank line(s): 2" in by_file.stderr
    by_stdin = subprocess.run(
        [sys.executable, "-m", "src.predict", "--params", params],
        input=reviews.read_bytes(),
        capture_output=True,
        cwd=PROJECT,
        timeout=300,
    )
    assert by_stdin.stdout.decode() == by_file.stdout
    # A whole process's stderr: our line, and none of TensorFlow's start-up lines (src.lib.quiet)...
    assert by_stdin.stderr.decode().splitlines() == ["skipped 1 blank line(s): 2"]
    # ...unless the user sets TensorFlow's own log level: then theirs wins.
    env = {k: v for k, v in os.environ.items() if k != quiet.SET_BY_US_ENV} | {quiet.LEVEL_ENV: "0"}
    chatty = subprocess.run(
        [sys.executable, "-m", "src.predict", "--params", params, REVIEWS[0]],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT,
        timeout=300,
    )
    assert chatty.returncode == 0 and re.search(r"^[IWE]\d{4} ", chatty.stderr, flags=re.M), chatty.stderr


def test_predict_file_gives_one_line_per_input_line_whatever_the_line_breaking_characters_inside(trained_cfg, tmp_path):
    reviews = tmp_path / "reviews.txt"
    # U+2028, form feed, vertical tab, \x1c, \x85 and NUL inside reviews; \r\n ends the second line.
    reviews.write_text(
        "A wonderful film\u2028truly moving\x0b\x1c\nTwo hours I will never get back\x0cawful\x00\x85\r\ngreat\n",
        encoding="utf-8",
        newline="",
    )
    by_file = run_main("src.predict", "--params", str(tmp_path / "params.yaml"), "--file", str(reviews))
    assert by_file.returncode == 0, by_file.stderr
    lines = by_file.stdout.split("\n")
    assert lines[-1] == "" and len(lines[:-1]) == 3
    assert lines[0].split("\t")[2] == "A wonderful film\\u2028truly moving\\x0b\\x1c"
    assert lines[1].split("\t")[2] == "Two hours I will never get back\\x0cawful\\x00\\x85"
    assert all(c.isprintable() or c == "\t" for line in lines for c in line)


@pytest.mark.new_mlflow_store
def test_predict_without_a_model_is_one_line(tiny_cfg, tmp_path):
    (tmp_path / "params.yaml").write_text(config.to_yaml(tiny_cfg))
    result = run_module("src.predict", "--params", str(tmp_path / "params.yaml"), "a film")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {Path(tiny_cfg.paths.model) / model_folder.MODEL_FILE} not found: train a model first (`dvc repro`) or pass --model"
    ]
    no_store = run_module(
        "src.predict", "--params", str(tmp_path / "params.yaml"), "--model", "models:/imdb-lstm@champion", "x"
    )
    assert no_store.returncode == 2
    assert no_store.stderr.strip().splitlines() == [
        f"error: no MLflow store at {os.environ['MLFLOW_TRACKING_URI']}: run `dvc repro` first, or set MLFLOW_TRACKING_URI"
    ]
    assert not (tmp_path / "mlflow.db").exists()


def test_champion_moves_only_to_a_better_validation_accuracy(trained_cfg, tmp_path):
    name = trained_cfg.tracking.registered_model
    client = mlflow.MlflowClient()
    first = client.get_model_version_by_alias(name, registry.CHALLENGER)
    assert str(first.version) == "1" and float(first.tags[registry.TEST_TAG]) >= 0.9
    params = str(tmp_path / "params.yaml")

    promoted = run_main("src.registry", "promote", "--params", params)
    assert promoted.returncode == 0, promoted.stderr
    assert promoted.stdout.startswith("champion is now version 1")
    # The registry URI serves the same classifier as the pipeline's files.
    by_uri = run_main("src.predict", "--params", params, "--model", f"models:/{name}@champion", *REVIEWS[:2])
    by_files = run_main("src.predict", "--params", params, *REVIEWS[:2])
    assert by_uri.returncode == 0, by_uri.stderr
    assert by_uri.stdout == by_files.stdout
    unknown = run_main("src.predict", "--params", params, "--model", "models:/nothing@champion", "x")
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert unknown.stderr.startswith("error: cannot load model models:/nothing@champion")

    logged = json.loads((Path(trained_cfg.paths.model) / model_folder.RUN_FILE).read_text())
    worse = registry.register(
        trained_cfg, logged["model_uri"], val_accuracy=float(first.tags[registry.VAL_TAG]) - 0.1, test_accuracy=0.5
    )
    refused = run_main("src.registry", "promote", "--params", params)
    assert refused.returncode == 1
    assert refused.stdout.startswith("champion stays version 1") and f"version {worse.version} has" in refused.stdout
    assert str(client.get_model_version_by_alias(name, registry.CHAMPION).version) == "1"

    better = registry.register(trained_cfg, logged["model_uri"], val_accuracy=1.01, test_accuracy=0.5)
    assert run_main("src.registry", "promote", "--params", params, "--version", str(better.version)).returncode == 0
    assert str(client.get_model_version_by_alias(name, registry.CHAMPION).version) == str(better.version)
    shown = run_main("src.registry", "--params", params)
    assert shown.returncode == 0 and "champion" in shown.stdout and len(shown.stdout.splitlines()) == 4


@pytest.mark.slow
def test_mlflow_serves_the_registered_model_on_loopback(trained_cfg, tmp_path):
    name = trained_cfg.tracking.registered_model
    port = free_port()
    uri = f"models:/{name}@{registry.CHALLENGER}"
    server = subprocess.Popen(
        ["mlflow", "models", "serve", "-m", uri, "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}/ping")  # loading the model takes a while
        body = json.dumps({"inputs": [{"review": r} for r in REVIEWS]}).encode()  # the signature of the type hints
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            answer = json.loads(reply.read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    served = [row["positive_probability"] for row in answer["predictions"]]
    expected = predict.pipeline_classifier(trained_cfg).predict_proba(REVIEWS)
    assert served == pytest.approx(expected.tolist(), abs=1e-6)


def one_line(result, status: int, message: str) -> None:
    assert result.returncode == status, result
    lines = (result.stderr if status == 2 else result.stdout).strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    if status == 2:
        assert lines[0].startswith("error: ")


def test_registry_answers_every_dead_end_with_one_line_and_its_exit_status(trained_cfg, tmp_path):
    params = str(tmp_path / "params.yaml")
    name = trained_cfg.tracking.registered_model
    one_line(
        run_main("src.registry", "promote", "--params", params, "--version", "99"),
        2,
        f"registered model {name} has no version 99",
    )
    one_line(
        run_main("src.registry", "promote", "--params", params, "--version", "abc"),
        2,
        f"registered model {name} has no version abc",
    )
    one_line(run_main("src.registry", "promote", "--params", params), 0, "champion is now version 1")
    one_line(run_main("src.registry", "promote", "--params", params), 1, "version 1 already is champion")

    # A version registered outside the pipeline, without the tag promote compares.
    logged = json.loads((Path(trained_cfg.paths.model) / model_folder.RUN_FILE).read_text())
    untagged = mlflow.register_model(logged["model_uri"], name)
    one_line(
        run_main("src.registry", "promote", "--params", params, "--version", str(untagged.version)),
        2,
        f"version {untagged.version} of {name} has no numeric val_accuracy tag",
    )
    assert str(mlflow.MlflowClient().get_model_version_by_alias(name, registry.CHAMPION).version) == "1"
    shown = run_main("src.registry", "--params", params)
    assert shown.returncode == 0 and " nan " in shown.stdout.splitlines()[-1]
    check_promote_require_significant(trained_cfg, tmp_path)  # on the same trained model: one training

    unregistered = tmp_path / "unregistered.yaml"
    unregistered.write_text(
        config.to_yaml(replace(trained_cfg, tracking=replace(trained_cfg.tracking, registered_model=None)))
    )
    for action in ("show", "promote"):
        one_line(
            run_main("src.registry", action, "--params", str(unregistered)),
            2,
            "tracking.registered_model is null, so the pipeline registers no model",
        )


def test_registry_without_a_challenger_is_one_line(tiny_cfg, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(config.to_yaml(tiny_cfg))
    one_line(
        run_main("src.registry", "promote", "--params", str(params)),
        2,
        "registered model imdb-lstm has no version with alias challenger",
    )
    one_line(run_main("src.registry", "--params", str(params)), 0, "no versions of imdb-lstm")


def run_with_val_predictions(cfg, probability, like) -> str:
    """An MLflow run holding only validation predictions: `like`'s reviews, these probabilities."""
    from src.lib import predictions, tracking

    with tracking.run(cfg) as active:
        predictions.log_to_active_run(
            "val", predictions.Predictions(np.asarray(probability, dtype=np.float32), like.label, like.review_id)
        )
    return active.info.run_id


def check_promote_require_significant(trained_cfg, tmp_path):
    """Version 1 (the trained model) is champion when this starts."""
    from src.lib import predictions

    params = str(tmp_path / "params.yaml")
    name = trained_cfg.tracking.registered_model
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, registry.CHAMPION, "1")
    champion_run = client.get_model_version(name, "1").run_id
    val = predictions.from_run(champion_run, "val")
    source = client.get_model_version(name, "1").source

    def register(probability, val_accuracy):
        run_id = run_with_val_predictions(trained_cfg, probability, val)
        version = client.create_model_version(name, source, run_id=run_id, tags={registry.VAL_TAG: str(val_accuracy)})
        return str(version.version)

    # All eight validation reviews right against a champion that misses at most two: a higher
    # accuracy, enough for plain promote, but two discordant reviews are no evidence (p = 0.5).
    assert ((val.probability >= 0.5) != val.label).sum() <= 2, "the premise: the tiny model is good"
    better = register(np.where(val.label == 1, 0.9, 0.1), val_accuracy=1.01)
    done = run_main("src.registry", "promote", "--params", params, "--version", better, "--require-significant")
    assert done.returncode == 1, done.stdout
    assert done.stdout.startswith(f"champion stays version 1: version {better} is not significantly better")
    assert (
        "points, 95% CI [" in done.stdout and "McNemar p = " in done.stdout and "on 8 validation reviews" in done.stdout
    )
    assert run_main("src.registry", "promote", "--params", params, "--version", better).returncode == 0

    # Against a champion that gets every validation review wrong, one that gets all 8 right passes.
    all_wrong = register(np.where(val.label == 1, 0.1, 0.9), val_accuracy=0.0)
    client.set_registered_model_alias(name, registry.CHAMPION, all_wrong)
    all_right = register(np.where(val.label == 1, 0.9, 0.1), val_accuracy=1.0)
    done = run_main("src.registry", "promote", "--params", params, "--version", all_right, "--require-significant")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"champion is now version {all_right} (B - A +100.00 points")
    assert str(client.get_model_version_by_alias(name, registry.CHAMPION).version) == all_right

"""train and evaluate on tiny data: the model, the metrics and plots, and the MLflow run."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import random
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest
import sklearn.metrics

from src.lib import model_folder, tracking, training
from src.lib.errors import UserError
from src.stages import evaluate, train
from tests.conftest import movie_files, with_archive, write_archive


def client(uri: str) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=uri)


def test_train_saves_a_safe_model_and_logs_a_complete_run(prepared_cfg, isolated_tracking, monkeypatch):
    prepared_cfg = replace(prepared_cfg, model=replace(prepared_cfg.model, bidirectional=True))  # as the default
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # the tiny run lasts seconds, not minutes
    result = train.train(prepared_cfg)
    run = client(isolated_tracking).get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params == tracking.flat_params(prepared_cfg)
    assert run.data.params["model.units"] == "8"
    history = client(isolated_tracking).get_metric_history(result["run_id"], "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    for name in ("loss", "accuracy", "val_loss", "epoch_seconds"):
        assert len(client(isolated_tracking).get_metric_history(result["run_id"], name)) == 2, name
    assert run.data.metrics["epoch_seconds"] > 0
    assert run.data.tags["dataset.sha256"] == prepared_cfg.data.sha256
    assert run.data.tags[tracking.PID_TAG] == str(os.getpid())
    logged = json.loads((Path(prepared_cfg.paths.model) / model_folder.RUN_FILE).read_text())
    assert logged["run_id"] == result["run_id"] and logged["best_val_accuracy"] == result["best_val_accuracy"]
    assert mlflow.models.get_model_info(logged["model_uri"]).run_id == result["run_id"]
    # MLflow's Datasets column: the three splits, from the archive, with their sizes.
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert set(inputs) == {"imdb-train", "imdb-val", "imdb-test"}
    assert {tag.key: tag.value for tag in inputs["imdb-val"].tags}["reviews"] == "8"
    assert {tag.value for d in inputs.values() for tag in d.tags if tag.key == "mlflow.data.context"} == {
        "training",
        "validation",
        "test",
    }
    assert len({d.dataset.digest for d in inputs.values()}) == 3
    # System metrics on by default (tracking.system_metrics), and keras pinned beside tensorflow.
    assert any(name.startswith("system/") for name in run.data.metrics), sorted(run.data.metrics)
    requirements = Path(mlflow.pyfunc.get_model_dependencies(logged["model_uri"])).read_text()
    assert f"keras=={importlib.metadata.version('keras')}" in requirements.split()

    import keras

    model = keras.saving.load_model(Path(prepared_cfg.paths.model) / model_folder.MODEL_FILE, safe_mode=True)
    lstm = model.get_layer("bidirectional_lstm")
    assert lstm.forward_layer.units == lstm.backward_layer.units == 8
    rows = list(csv.DictReader(open(Path(prepared_cfg.paths.reports) / train.HISTORY_FILE)))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(history[-1].value)


def test_evaluate_writes_metrics_and_plots_and_completes_the_training_run(prepared_cfg, isolated_tracking, tmp_path):
    trained = train.train(prepared_cfg)
    run_id = trained["run_id"]
    metrics = evaluate.evaluate(prepared_cfg)
    reports = Path(prepared_cfg.paths.reports)
    # DVC's metrics: the saved model's validation accuracy and epochs (what experiments are ranked
    # by), then the test figures.
    written = json.loads((reports / evaluate.METRICS_FILE).read_text())
    assert written == {"val_accuracy": trained["best_val_accuracy"], "epochs": trained["epochs"]} | metrics
    assert list(written)[:2] == ["val_accuracy", "epochs"] and trained["epochs"] == 2
    assert set(metrics) == {"accuracy", "loss", "roc_auc", "f1", "confusion_matrix"}
    assert sum(metrics["confusion_matrix"].values()) == 32
    assert metrics["accuracy"] >= 0.9, "the toy sentiment is trivially learnable"
    roc = list(csv.DictReader(open(reports / evaluate.ROC_FILE)))
    # The test scores' curve, each column under its name: the area under it is the ROC AUC reported.
    fpr, tpr = (np.array([float(row[name]) for row in roc]) for name in ("fpr", "tpr"))
    assert sklearn.metrics.auc(fpr, tpr) == pytest.approx(metrics["roc_auc"], abs=1e-5)
    confusion = list(csv.DictReader(open(reports / evaluate.CONFUSION_FILE)))
    assert len(confusion) == 32 and {r["actual"] for r in confusion} == {"neg", "pos"}
    run = client(isolated_tracking).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["accuracy"])
    assert run.data.metrics["test_tp"] == metrics["confusion_matrix"]["tp"]
    # The ROC curve and confusion matrix DVC plots, as tables of the run.
    tables = {a.path for a in client(isolated_tracking).list_artifacts(run_id, "plots")}
    assert tables == {"plots/roc_curve.json", "plots/confusion_matrix.json"}
    confusion_table = mlflow.load_table("plots/confusion_matrix.json", run_ids=[run_id])
    assert confusion_table["reviews"].sum() == 32

    # Every review's prediction, test (evaluate) and validation (train), as reports and artifacts.
    from src.lib import predictions

    test = predictions.load(reports / "predictions" / "test.npz")
    assert test.accuracy == pytest.approx(metrics["accuracy"])
    assert test.label.tolist() == [0] * 16 + [1] * 16  # the tokenize stage's order: neg, then pos
    assert sorted(test.review_id[:16].tolist()) == list(range(16))  # the numbers in the file names
    val = predictions.load(reports / "predictions" / "val.npz")
    assert len(val.label) == 8 and val.accuracy == pytest.approx(run.data.metrics["best_val_accuracy"])
    assert {a.path for a in client(isolated_tracking).list_artifacts(run_id, "predictions")} == {
        "predictions/test.npz",
        "predictions/val.npz",
    }
    logged = predictions.load(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="predictions/test.npz", dst_path=str(tmp_path / "logged")
        )
    )
    assert np.array_equal(logged.probability, test.probability) and logged.digest == test.digest
    assert run.data.tags["predictions.test.digest"] == test.digest != val.digest


def test_early_stopping_stops_when_validation_stalls(prepared_cfg):
    # A vanishing learning rate leaves val_accuracy flat, so patience 1 stops after epoch 2.
    cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, epochs=6, patience=1, learning_rate=1e-12))
    assert train.train(cfg)["epochs"] == 2


def test_refit_retrains_on_train_and_validation_for_the_epochs_validation_chose(prepared_cfg, isolated_tracking):
    # Patience 1 over 6 epochs with a vanishing learning rate: epoch 1 is kept, so the refit
    # runs one epoch, on the training and validation reviews together.
    cfg = replace(
        prepared_cfg, train=replace(prepared_cfg.train, epochs=6, patience=1, learning_rate=1e-12, refit=True)
    )
    result = train.train(cfg)
    assert result["epochs"] == 2
    metrics = client(isolated_tracking).get_run(result["run_id"]).data.metrics
    assert metrics["refit_epochs"] == 1
    assert [m.step for m in client(isolated_tracking).get_metric_history(result["run_id"], "refit_loss")] == [1]
    assert "refit_val_accuracy" not in metrics  # validation reviews are training data in the refit
    assert (
        training.kept_epoch(
            [{"epoch": 1, "val_accuracy": 0.5}, {"epoch": 2, "val_accuracy": 0.7}, {"epoch": 3, "val_accuracy": 0.7}],
            patience=1,
        )
        == 2
    )
    assert training.kept_epoch([{"epoch": 1, "val_accuracy": 0.7}, {"epoch": 2, "val_accuracy": 0.5}], patience=0) == 2


@pytest.mark.cpu_only(
    "member 0 equals the model its seed trains alone, weight for weight: GPU kernels add in "
    "any order (train.deterministic makes them repeat)"
)
def test_an_ensemble_averages_members_of_consecutive_seeds_each_as_its_seed_trains_alone(
    prepared_cfg, isolated_tracking, tmp_path
):
    from src.lib import batches
    from src.lib.data import load_split
    from src.lib.model import load_model

    cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, ensemble=2))
    result = train.train(cfg)
    assert result["member_epochs"] == [2, 2] and result["epochs"] == 4
    saved = load_model(Path(cfg.paths.model) / model_folder.MODEL_FILE)  # safe_mode: no code in the file
    x_val, y_val = load_split(cfg, "val")
    p_members = [batches.predict(saved.get_layer(f"member_{k}"), x_val, cfg.train) for k in range(2)]
    assert np.abs(p_members[0] - p_members[1]).max() > 1e-3  # seeds 42 and 43: two different models
    p_saved = batches.predict(saved, x_val, cfg.train)
    np.testing.assert_allclose(p_saved, np.mean(p_members, axis=0), atol=1e-6)

    mlflow_client = client(isolated_tracking)
    run = mlflow_client.get_run(result["run_id"])
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(np.mean((p_saved >= 0.5) == y_val))
    assert [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "member_val_accuracy")] == [0, 1]
    assert [m.step for m in mlflow_client.get_metric_history(run.info.run_id, "member1_val_accuracy")] == [1, 2]
    # Training is reproducible: member 0 is, weight for weight and epoch for epoch, the model seed
    # 42 trains alone; member 1 (seed 43) is another model.
    single_cfg = replace(
        cfg, train=replace(cfg.train, ensemble=1), paths=replace(cfg.paths, model=str(tmp_path / "one"))
    )
    single = train.train(single_cfg)
    alone = load_model(Path(single_cfg.paths.model) / model_folder.MODEL_FILE).get_weights()
    assert all(np.array_equal(x, y) for x, y in zip(alone, saved.get_layer("member_0").get_weights()))
    assert not all(np.array_equal(x, y) for x, y in zip(alone, saved.get_layer("member_1").get_weights()))
    assert [m.value for m in mlflow_client.get_metric_history(single["run_id"], "val_loss")] == [
        m.value for m in mlflow_client.get_metric_history(run.info.run_id, "val_loss")
    ]
    assert "member1_val_loss" not in mlflow_client.get_run(single["run_id"]).data.metrics


def test_run_status_follows_how_the_block_ends(tiny_cfg, isolated_tracking):
    for error, status in ((RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")):
        with pytest.raises(type(error)):
            with tracking.run(tiny_cfg) as active:
                raise error
        assert client(isolated_tracking).get_run(active.info.run_id).info.status == status


@pytest.mark.parametrize("uri", ["sqlite:///{tmp}/a-file/mlflow.db", "postgresql://nobody@127.0.0.1:9/none"])
def test_unusable_tracking_store_is_one_line(tiny_cfg, monkeypatch, tmp_path, uri):
    (tmp_path / "a-file").write_text("not a folder")
    uri = uri.format(tmp=tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(UserError, match=f"^cannot use MLflow tracking store {uri}: ") as err:
        with tracking.run(tiny_cfg):
            pass
    assert "\n" not in str(err.value)


def test_a_model_file_carrying_code_is_refused(tmp_path):
    import keras

    from src.lib.model import load_model

    inputs = keras.Input(shape=(3,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)  # arbitrary Python, run on load
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="(?i)unsafe|lambda"):
        load_model(path)


def noise_archive(path: Path) -> Path:
    """Reviews of random words with arbitrary labels: validation accuracy wanders from epoch
    to epoch instead of climbing to 1, so the last epoch need not be the best."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(30)]
    write_archive(
        path,
        {
            f"aclImdb/{split}/{label}/{i}_5.txt": " ".join(rng.choice(words) for _ in range(10)).encode()
            for split in ("train", "test")
            for label in ("pos", "neg")
            for i in range(16)
        }
        | movie_files(),
    )
    return path


def test_the_validation_accuracy_reported_is_the_saved_models(tiny_cfg, tmp_path, isolated_tracking):
    from src.lib import batches, registry
    from src.lib.data import load_split
    from src.lib.model import load_model
    from src.stages import download, pad, tokenize

    cfg = with_archive(tiny_cfg, noise_archive(tmp_path / "noise.tar.gz"))
    download.download(cfg)
    tokenize.tokenize(cfg)
    pad.pad_splits(cfg)
    x_val, y_val = load_split(cfg, "val")
    for patience in (0, 5):
        # Plain training: a learning rate this large makes the curve jump, which the premise needs.
        cfg = replace(cfg, train=replace(cfg.train, epochs=3, patience=patience, learning_rate=1.0, adversarial="none"))
        result = train.train(cfg)
        curve = [m.value for m in client(isolated_tracking).get_metric_history(result["run_id"], "val_accuracy")]
        assert len(curve) == 3 and max(curve) > curve[-1], "the premise: the last epoch is not the best"
        # Without early stopping the saved model is the last epoch's; with it, the best epoch's.
        expected = curve[-1] if patience == 0 else max(curve)
        saved = load_model(Path(cfg.paths.model) / model_folder.MODEL_FILE)
        assert np.mean((batches.predict(saved, x_val, cfg.train) >= 0.5) == y_val) == pytest.approx(expected)
        assert result["best_val_accuracy"] == pytest.approx(expected)
        run_file = json.loads((Path(cfg.paths.model) / model_folder.RUN_FILE).read_text())
        assert run_file["best_val_accuracy"] == pytest.approx(expected)
        metrics = client(isolated_tracking).get_run(result["run_id"]).data.metrics
        assert metrics["best_val_accuracy"] == pytest.approx(expected)
        evaluate.evaluate(cfg)  # registers the model with the accuracy promote compares
        version = client(isolated_tracking).get_model_version_by_alias(
            cfg.tracking.registered_model, registry.CHALLENGER
        )
        assert version.run_id == result["run_id"] and float(version.tags[registry.VAL_TAG]) == pytest.approx(expected)


@pytest.mark.slow
def test_the_train_stage_prints_no_mlflow_warning(prepared_cfg, tmp_path, tiny_archive, isolated_tracking):
    # The logged model's signature comes from its predict's type hints, so MLflow asks for none.
    from tests.conftest import TINY_OVERRIDES, archive_overrides, output_paths, run_module

    done = run_module(
        "src.stages.train", *TINY_OVERRIDES, *output_paths(tmp_path / "out"), *archive_overrides(tiny_archive)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "UserWarning" not in done.stdout + done.stderr and "type hint" not in done.stdout + done.stderr
    [run] = client(isolated_tracking).search_runs(
        [client(isolated_tracking).get_experiment_by_name("imdb-lstm").experiment_id]
    )
    mlflow.set_tracking_uri(isolated_tracking)  # an earlier test in this process may have pointed MLflow elsewhere
    model = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    assert model.signature.inputs.to_dict() == [
        {"type": "object", "properties": {"review": {"type": "string", "required": True}}, "required": True}
    ]

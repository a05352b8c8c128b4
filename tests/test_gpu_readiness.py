"""What would break on a GPU, checked on the CPU: every batch the pipeline feeds an LSTM passes
Keras' own cuDNN mask check (right padding, no row all padding), every LSTM the configs build
meets Keras' cuDNN conditions, the device is said and recorded, float16 is refused, and test
processes take GPU memory only as they need it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.backend.tensorflow.rnn import _assert_valid_mask, _do_lstm_arguments_support_cudnn

from src.lib import batches, config, hardware, language_model, search_space
from src.lib.errors import UserError
from src.lib.model import build_model
from src.lib.text import PAD_ID, pad
from tests.conftest import PROJECT


def padded_reviews(n: int, maxlen: int, seed: int) -> np.ndarray:
    """Reviews of 0..maxlen words padded by the pipeline's own pad (as the pad stage does)."""
    rng = np.random.default_rng(seed)
    return pad(
        [rng.integers(2, 40, size=k) for k in rng.integers(0, maxlen + 1, size=n)],
        maxlen=maxlen,
        padding="post",
        truncating="pre",
    )


def assert_cudnn_mask(x: np.ndarray, what: str) -> None:
    """Keras' check before its cuDNN LSTM call, on the mask the Embedding makes (id 0 masked)."""
    try:
        _assert_valid_mask(tf.not_equal(tf.constant(x), PAD_ID))
    except tf.errors.InvalidArgumentError:
        raise AssertionError(f"{what}: a batch cuDNN refuses (a row left-padded or all padding)") from None


def test_every_batch_the_pipeline_feeds_an_lstm_passes_keras_cudnn_mask_check():
    x, unlabeled = padded_reviews(300, 40, seed=1), padded_reviews(120, 40, seed=2)
    assert (batches.review_lengths(x) == 1).any()  # empty reviews are in there, as one unknown word
    y = (np.arange(300) % 2).astype("int8")
    train = config.compose(
        ["train.batch_size=16", "train.length_step=8", "train.word_dropout=0.5", "train.vat_unlabeled_ratio=1.5"]
    ).train
    kinds = {
        "training with word dropout (plain and AT)": batches.training_dataset(x, y, train),
        "VAT, with unlabeled rows": batches.training_dataset(x, y, train, unlabeled),
        "training without length buckets": batches.training_dataset(x, y, replace(train, bucket_by_length=False)),
        "prediction": batches.prediction_dataset(x, None, replace(train, eval_batch_size=32)),
    }
    for what, dataset in kinds.items():
        seen = 0
        for xb, _ in dataset.as_numpy_iterator():
            assert_cudnn_mask(xb, what)
            seen += 1
        assert seen > 3, what
    windows = language_model.windows([row[row != PAD_ID] for row in np.concatenate([x, unlabeled])], 12)
    for directions in (1, 2):
        for xb, _, _ in language_model._dataset(windows, directions, 30, seed=0).as_numpy_iterator():
            assert_cudnn_mask(xb, "language-model pretraining")


def test_the_mask_check_is_the_one_that_refuses_what_cudnn_refuses():
    x = padded_reviews(8, 10, seed=3)
    with pytest.raises(AssertionError, match="all padding"):
        assert_cudnn_mask(np.vstack([x, np.zeros((1, 10), x.dtype)]), "a fully masked row")
    with pytest.raises(AssertionError, match="left-padded"):
        assert_cudnn_mask(pad([[5, 6, 7]], maxlen=10, padding="pre", truncating="pre"), "left padding")


def lstm_layers(model: keras.Model) -> list:
    """Every LSTM of a model, each direction of a Bidirectional one."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Bidirectional):
            found += [layer.forward_layer, layer.backward_layer]
        elif isinstance(layer, keras.layers.LSTM):
            found.append(layer)
    return found


def cudnn_blockers(layer) -> list[str]:
    """Why Keras 3 would not run this LSTM on cuDNN on a GPU: its own conditions (Keras' LSTM
    and keras/src/backend/tensorflow/rnn.py)."""
    cell = layer.cell
    found = []
    if layer.use_cudnn is False:
        found.append("use_cudnn=False")
    if cell.recurrent_dropout:
        found.append(f"recurrent_dropout={cell.recurrent_dropout}")
    if not _do_lstm_arguments_support_cudnn(cell.activation, cell.recurrent_activation, layer.unroll, cell.use_bias):
        found.append("activation, recurrent_activation, unroll or use_bias")
    return found


def configurations() -> dict[str, list[str]]:
    """conf/ as it stands, each preset in experiments/, and the sweep space at its extremes."""
    found = {"conf/": []}
    found |= {
        f"experiment={p.stem}": [f"experiment={p.stem}"] for p in sorted((PROJECT / "experiments").glob("*.yaml"))
    }
    cfg = config.compose([])
    for end in (0, -1):
        overrides = []
        for key, dim in search_space.dimensions(cfg).items():
            section, name = key.split(".")
            value = dim.choices[end] if dim.choices is not None else (dim.low, dim.high)[end]
            overrides.append(f"{key}={int(value) if type(getattr(getattr(cfg, section), name)) is int else value}")
        found[f"sweep space, every dimension {'low' if end == 0 else 'high'}"] = overrides
    return found


@pytest.mark.parametrize("name", list(configurations()))
def test_every_lstm_the_configs_build_meets_keras_cudnn_conditions(name):
    cfg = config.compose(configurations()[name])
    models = {
        "classifier": build_model(cfg.model, cfg.data.num_words),
        "language model": language_model.build(cfg, output_words=min(30, cfg.data.num_words)),
    }
    for what, model in models.items():
        lstms = lstm_layers(model)
        assert len(lstms) == (2 if cfg.model.bidirectional else 1), what
        for layer in lstms:
            assert cudnn_blockers(layer) == [], f"{name}, {what}: {layer.name} would leave cuDNN"


def test_the_cudnn_conditions_catch_what_leaves_cudnn():
    layer = keras.layers.LSTM(4, recurrent_dropout=0.1)
    assert cudnn_blockers(layer) == ["recurrent_dropout=0.1"]
    assert cudnn_blockers(keras.layers.LSTM(4, activation="relu")) == [
        "activation, recurrent_activation, unroll or use_bias"
    ]


@pytest.mark.slow
def test_oned_nn_is_on_unless_the_user_said_otherwise_and_gpu_memory_grows():
    """In a fresh interpreter, as a command starts: importing the package sets both before
    TensorFlow starts; a value the user set stands. The test processes themselves grow GPU memory."""
    assert os.environ[hardware.GROWTH_ENV] == "true"  # this pytest process (and what it starts)
    probe = (
        "import os, src; from src.lib import hardware; "
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], os.environ['TF_FORCE_GPU_ALLOW_GROWTH'], hardware.onednn_enabled())"
    )
    env = {k: v for k, v in os.environ.items() if k not in (hardware.ONEDNN_ENV, hardware.GROWTH_ENV)}
    ours = subprocess.run(
        [sys.executable, "-c", probe], cwd=PROJECT, env=env, capture_output=True, text=True, check=True
    )
    assert ours.stdout.split() == ["1", "true", "True"]
    theirs = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        check=True,
        env=env | {hardware.ONEDNN_ENV: "0", hardware.GROWTH_ENV: "false"},
    )
    assert theirs.stdout.split() == ["0", "false", "False"]


def test_the_device_is_said_and_tagged_and_a_gpu_install_without_a_gpu_warns_with_tensorflows_reason(
    monkeypatch, capsys
):
    tags = hardware.announce()
    assert tags["device"] == "CPU" and tags["tensorflow.onednn"] == "on"
    assert tags["cpu.avx512"] == ("yes" if "avx512f" in Path("/proc/cpuinfo").read_text() else "no")
    out = capsys.readouterr()
    assert out.out.startswith(f"training on CPU (CPU {tags['cpu']}, ") and out.err == ""
    # A GPU TensorFlow sees is named in the line and the tag.
    monkeypatch.setattr(hardware, "gpus", lambda: ["GPU:0 (NVIDIA L4)"])
    assert hardware.announce()["device"] == "GPU:0 (NVIDIA L4)"
    assert capsys.readouterr().out.startswith("training on GPU:0 (NVIDIA L4) (CPU ")
    # The CUDA wheels installed and no GPU seen: one warning line, TensorFlow's own reason in it
    # (this machine has no driver: TensorFlow says it found none).
    monkeypatch.setattr(hardware, "gpus", lambda: [])
    monkeypatch.setattr(hardware, "cuda_wheels", lambda: ["nvidia-cudnn-cu12 9.3.0.75"])
    assert hardware.announce()["device"] == "CPU"
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(
        "warning: the CUDA wheels are installed (nvidia-cudnn-cu12 9.3.0.75) but TensorFlow sees "
        "no GPU, so this trains on the CPU; TensorFlow says: "
    )
    assert "cuda" in err.lower().split("tensorflow says: ")[1]
    # TensorFlow is asked once a process (a sweep fits many times); GPUs hidden on purpose: no warning.
    calls = hardware._tensorflow_gpu_messages.cache_info().misses
    hardware.announce()
    assert hardware._tensorflow_gpu_messages.cache_info().misses == calls and capsys.readouterr().err.startswith(
        "warning"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    hardware.announce()
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_run_records_the_device_and_the_kernels(prepared_cfg, isolated_tracking):
    import mlflow

    from src.stages import train

    run = mlflow.MlflowClient(isolated_tracking).get_run(train.train(prepared_cfg)["run_id"])
    tags = run.data.tags
    assert tags["device"] == "CPU" and tags["tensorflow.onednn"] == "on" and tags["cpu"] == hardware.cpu()["model"]
    assert tags["tensorflow.version"] == tf.__version__ and tags["keras.version"] == keras.__version__


def test_float16_is_refused_in_one_line():
    from src.lib.training import _compiled_model

    cfg = config.compose(["model.units=4", "model.embedding_dim=3", "data.num_words=20"])
    keras.config.set_dtype_policy("mixed_float16")
    try:
        with pytest.raises(UserError, match="computes in float16.*trains in float32") as err:
            _compiled_model(cfg, "m", steps=10)
    finally:
        keras.config.set_dtype_policy("float32")
    assert "\n" not in str(err.value)
    _compiled_model(cfg, "m", steps=10)  # float32 again: fine

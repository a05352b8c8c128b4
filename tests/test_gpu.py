"""The same code on a GPU, proven to take cuDNN: where TensorFlow sees a GPU (`pip install -e
'.[gpu]'`), the default's LSTMs are forced onto cuDNN (`use_cudnn=True`: Keras raises instead of
falling back to its loop), trained one epoch with adversarial training on length buckets up to
500 words, and predict in buckets; the stages train and evaluate there and record the GPU on
their run. Skipped, saying so, where TensorFlow sees no GPU; tests/test_gpu_readiness.py checks
on the CPU what cuDNN needs of the batches and the layers. `python benchmarks/gpu_check.py` runs
this file and times the default on a slice of the real data."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from src.lib import batches, config, model_folder, training
from src.lib.text import pad
from src.stages import evaluate, train
from tests.test_gpu_readiness import lstm_layers


@pytest.fixture
def gpu():
    import tensorflow as tf

    found = tf.config.list_physical_devices("GPU")
    if not found:
        pytest.skip("TensorFlow sees no GPU here: the cuDNN path is exercised only on a machine with one")
    return found


def forced_onto_cudnn(model) -> None:
    for layer in lstm_layers(model):
        layer.use_cudnn = True  # read when the step is traced: Keras raises rather than fall back


def test_the_default_lstm_trains_adversarially_and_predicts_on_cudnn(gpu):
    cfg = config.compose(["data.num_words=300", "train.batch_size=32", "train.eval_batch_size=64"])
    assert cfg.model.bidirectional and cfg.data.maxlen == 500 and cfg.train.adversarial == "at"
    rng = np.random.default_rng(0)
    lengths = np.r_[0, 1, 500, rng.integers(2, 700, size=253)]  # an empty review, and longer than maxlen
    x = pad([rng.integers(2, 300, size=k) for k in lengths], maxlen=500, padding="post", truncating="pre")
    y = (rng.random(len(x)) < 0.5).astype("int8")
    model, trainee = training._compiled_model(cfg, "imdb_lstm", steps=8)
    forced_onto_cudnn(model)
    dataset = batches.training_dataset(x, y, cfg.train)
    assert 500 in {xb.shape[1] for xb, _ in dataset.as_numpy_iterator()}  # the widest bucket is among them
    history = trainee.fit(dataset, epochs=1, verbose=0, shuffle=False).history
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["adversarial_loss"][0])
    p = batches.predict(model, x, cfg.train)
    assert p.shape == (len(x),) and np.isfinite(p).all()


def test_the_train_and_evaluate_stages_run_on_the_gpu_and_say_so(gpu, prepared_cfg):
    result = train.train(prepared_cfg)
    metrics = evaluate.evaluate(prepared_cfg)
    assert result["best_val_accuracy"] > 0.5 and metrics["accuracy"] > 0.5
    assert mlflow.MlflowClient().get_run(result["run_id"]).data.tags["device"].startswith("GPU:0")
    # An empty review beside others in one batch: padded to one unknown word, cuDNN takes it.
    classifier = model_folder.ReviewClassifier.from_folder(prepared_cfg.paths.model)
    scores = classifier.predict_proba(["", "a wonderful film", "an awful film"])
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_forced_cudnn_raises_where_it_cannot_run_so_the_gpu_test_cannot_pass_on_the_loop():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible: cuDNN runs here")
    cfg = config.compose(["data.num_words=50", "model.units=4", "model.embedding_dim=3"])
    model, _ = training._compiled_model(cfg, "imdb_lstm", steps=1)
    forced_onto_cudnn(model)
    with pytest.raises(ValueError, match="use_cudnn=True was specified"):
        model.predict(pad([[2, 3, 4]], maxlen=8, padding="post", truncating="pre"), verbose=0)

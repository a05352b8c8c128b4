"""The same code on a GPU: the tiny config trained and evaluated through the stages where
TensorFlow sees a GPU (`pip install -e '.[gpu]'`); skipped, saying so, where it sees none.
Keras' LSTM then runs cuDNN, which refuses left padding and fully masked rows: the config's
post padding and the pad stage's one-word empty review are what it checks."""

from __future__ import annotations


import numpy as np
import pytest

from src.lib import model_folder
from src.stages import evaluate, train


@pytest.fixture
def gpu():
    import tensorflow as tf

    found = tf.config.list_physical_devices("GPU")
    if not found:
        pytest.skip("TensorFlow sees no GPU here: the cuDNN path is exercised only on a machine with one")
    return found


def test_the_train_and_evaluate_stages_run_on_the_gpu(gpu, prepared_cfg):
    result = train.train(prepared_cfg)
    metrics = evaluate.evaluate(prepared_cfg)
    assert result["best_val_accuracy"] > 0.5 and metrics["accuracy"] > 0.5
    # An empty review beside others in one batch: padded to one unknown word, cuDNN takes it.
    classifier = model_folder.ReviewClassifier.from_folder(prepared_cfg.paths.model)
    scores = classifier.predict_proba(["", "a wonderful film", "an awful film"])
    assert np.all((scores >= 0) & (scores <= 1))

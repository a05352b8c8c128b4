"""Adversarial training on the embeddings (train.adversarial=at): the perturbation's size and
reach, the training it changes, and a saved model that is the plain classifier."""

from __future__ import annotations

import csv
import zipfile
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from src.lib import config, model_folder
from src.lib.errors import UserError
from src.stages import evaluate, train


def test_the_perturbation_has_norm_epsilon_per_review_and_leaves_padding_alone():
    import tensorflow as tf

    from src.lib.adversarial import perturbation

    rng = np.random.default_rng(0)
    gradient = rng.normal(size=(3, 6, 4)).astype(np.float32) * np.array([1, 1e-9, 1e3], np.float32)[:, None, None]
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]], bool)
    r = np.asarray(perturbation(tf.constant(gradient), tf.constant(mask), 5.0))
    assert np.sqrt((r**2).sum(axis=(1, 2))) == pytest.approx([5.0, 5.0, 5.0], rel=1e-4)  # tiny or large gradients
    assert np.all(r[~mask] == 0)
    # Along the gradient, on the words it moves.
    direction = gradient * mask[:, :, None]
    cosine = (r * direction).sum(axis=(1, 2)) / (
        np.linalg.norm(r, axis=(1, 2)) * np.linalg.norm(direction, axis=(1, 2))
    )
    assert cosine == pytest.approx([1.0, 1.0, 1.0], rel=1e-4)


def history(cfg) -> list[dict]:
    with open(Path(cfg.paths.reports) / "history.csv") as f:
        return list(csv.DictReader(f))


def test_an_adversarially_trained_model_is_saved_and_served_as_a_plain_classifier(prepared_cfg, tmp_path):
    at_cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, adversarial="at", adversarial_epsilon=1.0))
    result = train.train(at_cfg)
    rows = history(at_cfg)
    # Moved against the model, the reviews cost more than as they are: the direction is adversarial.
    assert all(float(row["adversarial_loss"]) > float(row["loss"]) for row in rows)
    metrics = evaluate.evaluate(at_cfg)  # loads with safe_mode=True
    saved = Path(at_cfg.paths.model) / model_folder.MODEL_FILE
    with zipfile.ZipFile(saved) as archive:
        assert "Adversarial" not in archive.read("config.json").decode()
    [run] = mlflow.search_runs(experiment_names=[at_cfg.tracking.experiment], output_format="list")
    assert run.data.params["train.adversarial"] == "at" and run.info.run_id == result["run_id"]
    assert run.data.metrics["test_accuracy"] == metrics["accuracy"] and "adversarial_loss" in run.data.metrics
    classifier = model_folder.ReviewClassifier.from_folder(at_cfg.paths.model)
    positive, negative = classifier.predict_proba(["a wonderful film", "an awful film"])
    assert positive > 0.5 > negative, "the toy sentiment, learned with the adversarial term"

    # The same seed without the adversarial term trains other weights.
    plain_cfg = replace(
        prepared_cfg,
        train=replace(prepared_cfg.train, adversarial="none"),
        paths=replace(
            prepared_cfg.paths, model=str(tmp_path / "plain" / "models"), reports=str(tmp_path / "plain" / "reports")
        ),
    )
    train.train(plain_cfg)
    assert "adversarial_loss" not in history(plain_cfg)[0]
    assert float(history(plain_cfg)[0]["loss"]) != float(rows[0]["loss"])


def test_vat_trains_on_labeled_and_unlabeled_reviews_and_saves_the_plain_classifier(prepared_cfg):
    vat_cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, adversarial="vat", adversarial_epsilon=1.0))
    train.train(vat_cfg)
    rows = history(vat_cfg)
    assert all(float(row["adversarial_loss"]) > 0 for row in rows)  # moved, the predictions diverge
    metrics = evaluate.evaluate(vat_cfg)
    assert metrics["accuracy"] >= 0.9, "the toy sentiment is trivially learnable, with VAT too"
    with zipfile.ZipFile(Path(vat_cfg.paths.model) / model_folder.MODEL_FILE) as archive:
        assert "Adversarial" not in archive.read("config.json").decode()


def test_the_virtual_adversarial_direction_moves_predictions_more_than_a_random_one(prepared_cfg):
    import keras
    import tensorflow as tf

    from src.lib.adversarial import AdversarialTrainer, binary_kl, perturbation
    from src.lib.data import load
    from src.lib.model import build_model, classify_vectors

    keras.utils.set_random_seed(0)
    cfg = replace(prepared_cfg, train=replace(prepared_cfg.train, adversarial="vat", adversarial_epsilon=0.5))
    model = build_model(cfg.model, cfg.data.num_words)
    trainer = AdversarialTrainer(model, cfg.train)
    tokens = tf.constant(load(cfg, "train").x)
    embedding = model.get_layer("embedding")
    vectors, mask = embedding(tokens), embedding.compute_mask(tokens)

    def forward(moved):
        return classify_vectors(model, moved, mask)

    reference = forward(vectors)
    virtual = trainer._virtual_direction(forward, vectors, reference, mask)
    assert np.sqrt(np.sum(np.asarray(virtual) ** 2, axis=(1, 2))) == pytest.approx(0.5, rel=1e-3)
    random = perturbation(tf.random.normal(tf.shape(vectors), seed=1), mask, 0.5)
    assert float(binary_kl(reference, forward(vectors + virtual))) > 2 * float(
        binary_kl(reference, forward(vectors + random))
    )


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.adversarial=fgsm", "train.adversarial must be one of none, at, vat, got 'fgsm'"),
        ("train.adversarial_epsilon=0", "train.adversarial_epsilon must be > 0"),
        ("train.vat_unlabeled_ratio=0", "train.vat_unlabeled_ratio must be > 0"),
    ],
)
def test_bad_adversarial_settings_are_one_line(override, message):
    with pytest.raises(UserError, match=message):
        config.compose([override])


def test_the_unlabeled_split_holds_no_review_of_a_validation_movie_and_no_labeled_one(tmp_path, tiny_cfg):
    from src.lib import data
    from src.stages import download, pad, tokenize
    from tests.conftest import movie_files, review_files, with_archive, write_archive

    files = review_files() | movie_files()
    # Unlabeled reviews 0-3 are of the labeled training movies (some of them validation's), 4-6
    # of their own, 7 of a test movie.
    movie = {**{i: f"tttrain{i:04d}" for i in range(4)}, 4: "ttunsup4", 5: "ttunsup5", 6: "ttunsup6", 7: "tttest0001"}
    files["aclImdb/train/urls_unsup.txt"] = "".join(
        f"http://www.imdb.com/title/{movie[i]}/usercomments\n" for i in range(8)
    ).encode()
    archive = tmp_path / "unsup.tar.gz"
    write_archive(archive, files)
    cfg = with_archive(tiny_cfg, archive)
    download.download(cfg)
    tokenize.tokenize(cfg)
    pad.pad_splits(cfg)
    splits, _ = data.split_reviews(cfg)
    raw = Path(cfg.paths.raw) / "aclImdb" / "train"
    texts, labels, ids = data.read_reviews(raw)
    movies = data.read_movies(raw, labels, ids)
    val_movies = {movies[texts.index(text)] for text, _, _ in splits["val"]}
    assert val_movies and val_movies < {f"http://www.imdb.com/title/tttrain{i:04d}/usercomments" for i in range(4)}
    kept = data.load(cfg, data.UNLABELED)
    expected = [
        i for i in range(7) if not (i < 4 and f"http://www.imdb.com/title/tttrain{i:04d}/usercomments" in val_movies)
    ]
    assert kept.review_ids.tolist() == expected and len(expected) < 8  # some excluded, the rest kept
    assert np.all(kept.y == data.NO_LABEL) and np.count_nonzero(kept.x, axis=1).min() > 0
    # Their texts are no validation or test review's.
    unlabeled_texts = {(raw / "unsup" / f"{i}_0.txt").read_text() for i in expected}
    assert unlabeled_texts.isdisjoint(text for split in ("val", "test") for text, _, _ in splits[split])


def test_each_training_batch_carries_unlabeled_reviews_that_fit_its_length():
    from src.lib import batches

    rng = np.random.default_rng(0)
    cfg = replace(config.compose().train, batch_size=8, length_step=4, vat_unlabeled_ratio=0.5)
    lengths = rng.integers(3, 30, size=64)
    x = np.array([[2] * n + [0] * (30 - n) for n in lengths], np.int32)
    y = rng.integers(0, 2, size=64)
    # Unlabeled review i starts with the marker id 1000 + i, so a batch row names its source.
    unlabeled_lengths = rng.integers(3, 30, size=40)
    unlabeled = np.array(
        [[1000 + i] + [3] * (n - 1) + [0] * (30 - n) for i, n in enumerate(unlabeled_lengths)], np.int32
    )
    seen = set()
    for xb, yb in batches.training_dataset(x, y, cfg, unlabeled).as_numpy_iterator():
        extra = xb[len(yb) :]
        assert len(extra) == round(len(yb) * 0.5)
        for row in extra:
            source = int(row[0]) - 1000
            assert 0 <= source < 40 and np.array_equal(row, unlabeled[source, : xb.shape[1]])
            # Fits, adding no steps; or, when fewer fit than the batch takes, among the shortest.
            assert unlabeled_lengths[source] <= max(xb.shape[1], np.sort(unlabeled_lengths)[len(extra) - 1])
            seen.add(source)
        assert np.all(xb[: len(yb), 0] == 2)  # the labeled rows first
    assert len(seen) >= 15  # drawn across the unlabeled reviews, not a few


@pytest.mark.parametrize(
    "overrides",
    [[], ["model.pooling=mean"], ["model.pooling=last", "model.bidirectional=false"], ["experiment=lecture12"]],
)
def test_the_classifier_from_its_embedded_words_is_the_classifier(overrides):
    from src.lib.model import build_model, classify_vectors

    model = build_model(config.compose(overrides).model, 50)
    tokens = np.array([[2, 3, 4, 0, 0], [5, 6, 0, 0, 0], [1, 0, 0, 0, 0]], np.int32)
    embedding = model.get_layer("embedding")
    from_vectors = classify_vectors(model, embedding(tokens), embedding.compute_mask(tokens))
    np.testing.assert_allclose(np.asarray(from_vectors), np.asarray(model(tokens)), atol=1e-6)


def test_one_step_follows_the_gradient_of_the_clean_plus_the_adversarial_loss():
    import keras
    import tensorflow as tf

    from src.lib.adversarial import AdversarialTrainer, perturbation
    from src.lib.model import build_model, classify_vectors

    keras.utils.set_random_seed(0)
    cfg = config.compose(
        [
            "model.dropout=0",
            "model.embedding_dim=4",
            "model.units=3",
            "train.adversarial=at",
            "train.adversarial_epsilon=2",
        ]
    )
    model = build_model(cfg.model, 20)
    tokens = tf.constant([[2, 3, 4, 0], [5, 6, 7, 8], [9, 0, 0, 0]], tf.int32)
    y = tf.constant([1.0, 0.0, 1.0])
    bce = keras.losses.BinaryCrossentropy()
    embedding = model.get_layer("embedding")
    mask = embedding.compute_mask(tokens)
    # By hand: the direction from the clean loss, then the gradient of clean + moved loss.
    with tf.GradientTape() as tape:
        vectors = embedding(tokens)
        tape.watch(vectors)
        clean = bce(y, classify_vectors(model, vectors, mask)[:, 0])
    direction = perturbation(tape.gradient(clean, vectors), mask, 2.0)
    with tf.GradientTape() as tape:
        vectors = embedding(tokens)
        total = bce(y, classify_vectors(model, vectors, mask)[:, 0]) + bce(
            y, classify_vectors(model, vectors + direction, mask)[:, 0]
        )
    expected = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, model.trainable_weights)]
    before = [w.numpy().copy() for w in model.trainable_weights]

    trainer = AdversarialTrainer(model, cfg.train)
    trainer.compile(optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="binary_crossentropy")
    assert set(trainer.train_on_batch(tokens, y, return_dict=True)) == {"loss", "adversarial_loss"}
    for old, new, gradient in zip(before, model.trainable_weights, expected):
        np.testing.assert_allclose(old - new.numpy(), gradient, atol=1e-5)
    # Validation reports the clean loss only: the adversarial term exists only while training.
    assert set(trainer.test_on_batch(tokens, y, return_dict=True)) == {"loss"}

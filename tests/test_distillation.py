"""Distillation (train.teacher=blend): a labeled review's teacher probability comes from models
that did not train on it; no validation or test review is what a teacher trains on or labels;
the student learns the teacher's targets and is saved as the plain classifier."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import mlflow
import numpy as np
import pytest

from src.lib import config, data, distillation, model_folder, ngrams, training
from src.lib.errors import UserError
from src.stages import download, evaluate, pad, tokenize, train
from tests.conftest import NEGATIVE, POSITIVE, movie_files, with_archive, write_archive


@pytest.mark.parametrize("count", [1, 2, 5])
def test_each_labeled_review_is_scored_by_the_fold_model_that_did_not_train_on_it(count):
    labels = np.array([0, 1] * 21)
    fold = distillation.folds(labels, count, seed=3)
    trained_on = []

    def memorizer(k, rows, held):
        # 1 for a review it trained on, 0 for one it did not: a teacher that fits its training reviews.
        trained_on.append(set(rows.tolist()))
        return np.isin(held, rows).astype(np.float32), np.full(4, k, np.float32), np.full(3, k, np.float32)

    view = distillation.out_of_fold(fold, count, memorizer)
    assert len(trained_on) == count
    if count == 1:
        assert view.labeled is None and trained_on == [set(range(42))]  # one model on all: it labels none of them
    else:
        assert not np.isnan(view.labeled).any() and np.all(view.labeled == 0)
        assert all(len(rows) == 42 - np.count_nonzero(fold == k) for k, rows in enumerate(trained_on))
        # Stratified: each fold holds both labels in the same proportion.
        assert {np.count_nonzero(labels[fold == k]) for k in range(count)} <= {42 // count // 2, -(-21 // count)}
    assert view.val.tolist() == [np.mean(range(count))] * 4  # the models' average
    assert view.transfer.tolist() == [np.mean(range(count))] * 3


def test_folds_deal_whole_movies_in_even_shares():
    rng = np.random.default_rng(1)
    movies = [f"movie{m}" for m in rng.integers(0, 60, 600)]
    labels = rng.integers(0, 2, 600)
    fold = distillation.folds(labels, 3, seed=0, movies=movies)
    assert all(len({fold[i] for i in range(600) if movies[i] == movie}) == 1 for movie in set(movies))
    assert np.bincount(fold).min() > 600 / 3 - 30  # within about a movie's reviews of even


def test_more_folds_than_a_label_allows_is_one_line():
    with pytest.raises(UserError, match="train.teacher_folds=4: fold 3 or the rest lacks a label"):
        distillation.folds(np.array([0, 0, 0, 0, 1, 1, 1]), 4, seed=0)


def test_the_ngram_teacher_scores_labeled_reviews_out_of_fold_where_it_would_memorize_them():
    # Each review is its own word and its label is a coin: the n-gram model fits its training
    # reviews perfectly and knows nothing of others.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    texts = [f"word{i}" for i in range(200)]
    b = replace(config.compose().baseline, ngram_max=1, min_df=1)
    in_sample = ngrams.fitted(b, texts, labels).predict_proba(texts)[:, 1]
    assert np.mean((in_sample >= 0.5) == labels) == 1.0
    reviews = distillation.Reviews(
        texts, None, ["word0"], data.Split(np.zeros((1, 1)), np.zeros(1), np.zeros(1)), ["word1"]
    )
    view = distillation.ngram_view(b, reviews, labels, distillation.folds(labels, 2, seed=0), 2)
    assert abs(np.mean((view.labeled >= 0.5) == labels) - 0.5) < 0.1  # chance: no model saw the review it scored


def test_a_softer_teacher_keeps_its_side_of_one_half():
    p = np.array([0.01, 0.3, 0.5, 0.9, 1.0])
    assert distillation.soften(p, 1.0) == pytest.approx(np.clip(p, 1e-6, 1 - 1e-6))
    softer = distillation.soften(p, 3.0)
    assert np.all(np.abs(softer - 0.5) <= np.abs(p - 0.5)) and np.all((softer > 0.5) == (p > 0.5))


def distinct_archive(tmp_path: Path, duplicates: dict[int, str]) -> Path:
    """The official layout with every labeled review's text its own, and unlabeled review i's
    text duplicates[i] where given (a copy of a labeled review's)."""
    files = movie_files(unsup=10)
    for split in ("train", "test"):
        for label, texts in (("pos", POSITIVE), ("neg", NEGATIVE)):
            for i in range(16):
                files[f"aclImdb/{split}/{label}/{i}_{7 if label == 'pos' else 2}.txt"] = (
                    f"{texts[i % len(texts)]} {split} {label} number {i}".encode()
                )
    for i, text in duplicates.items():
        files[f"aclImdb/train/unsup/{i}_0.txt"] = text.encode()
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "distinct.tar.gz"
    write_archive(path, files)
    return path


def test_no_validation_or_test_review_reaches_a_teacher_and_the_student_is_the_plain_classifier(
    tmp_path, tiny_cfg, monkeypatch, isolated_tracking
):
    # Unlabeled reviews 0 and 1 copy a test and a validation review: the transfer set drops them.
    probe = with_archive(tiny_cfg, distinct_archive(tmp_path / "probe", {}))
    probe = replace(probe, paths=replace(probe.paths, raw=str(tmp_path / "probe" / "raw")))
    download.download(probe)
    val_text = data.split_reviews(probe)[0]["val"][0][0]  # the labeled reviews are the same below
    archive = distinct_archive(tmp_path, {0: POSITIVE[0] + " test pos number 3", 1: val_text})
    cfg = replace(
        with_archive(tiny_cfg, archive),
        train=replace(
            tiny_cfg.train,
            teacher="blend",
            teacher_folds=2,
            teacher_epochs=1,
            teacher_weight=0.5,
            teacher_unlabeled=1.0,
        ),
    )
    for stage in (download.download, tokenize.tokenize, pad.pad_splits):
        stage(cfg)
    splits, _ = data.split_reviews(cfg, test=True, unlabeled=True)
    assert val_text in {text for text, _, _ in splits["val"]}
    held_out_texts = {text for name in ("val", "test") for text, _, _ in splits[name]}
    train_texts = {text for text, _, _ in splits["train"]}
    train_split = data.load(cfg, "train")

    ngram_inputs, lstm_fits = [], []
    real_fitted, real_fit_member = ngrams.fitted, training._fit_member

    def watched_fitted(b, texts, labels):
        model = real_fitted(b, texts, labels)
        ngram_inputs.append(("train", list(texts)))
        real_predict = model.predict_proba

        def watched_predict(scored):
            ngram_inputs.append(("score", list(scored)))
            return real_predict(scored)

        model.predict_proba = watched_predict
        return model

    def watched_fit_member(member_cfg, split, val, **kwargs):
        lstm_fits.append((kwargs["prefix"], split))
        return real_fit_member(member_cfg, split, val, **kwargs)

    monkeypatch.setattr(ngrams, "fitted", watched_fitted)
    monkeypatch.setattr(training, "_fit_member", watched_fit_member)
    result = train.train(cfg)

    # The n-gram teacher trains on training reviews only and labels training and unlabeled
    # reviews for the student; validation reviews it scores only to choose the blend weight.
    val_texts = [text for text, _, _ in splits["val"]]
    for kind, texts in ngram_inputs:
        if kind == "train":
            assert set(texts) <= train_texts and len(texts) < len(train_texts)  # one fold's complement
        elif texts != val_texts:
            assert held_out_texts.isdisjoint(texts)
    assert sum(kind == "train" for kind, _ in ngram_inputs) == 2
    # The LSTM teachers: two, each on the training reviews but one fold; then the student.
    teachers = [split for prefix, split in lstm_fits if prefix.startswith("teacher")]
    assert [prefix for prefix, _ in lstm_fits] == ["teacher0_", "teacher1_", ""]
    train_keys = set(zip(train_split.y.tolist(), train_split.review_ids.tolist()))
    folds = [set(zip(split.y.tolist(), split.review_ids.tolist())) for split in teachers]
    assert all(keys < train_keys for keys in folds) and folds[0] | folds[1] == train_keys
    assert len(folds[0]) + len(folds[1]) == len(train_keys)  # the complements of two disjoint folds
    raw = Path(cfg.paths.raw) / "aclImdb" / "train"
    _, labels, ids = data.read_reviews(raw)
    movie_of = dict(zip(zip(labels, ids), data.read_movies(raw, labels, ids)))
    assert {movie_of[key] for key in folds[0]}.isdisjoint(movie_of[key] for key in folds[1])  # whole movies
    # The student: the training reviews, then the unlabeled ones but the two copies.
    student = lstm_fits[-1][1]
    unlabeled = data.load(cfg, data.UNLABELED)
    n_train = len(train_split.y)
    assert len(student.y) == n_train + len(unlabeled.y) - 2
    assert set(student.review_ids[n_train:].tolist()) == set(unlabeled.review_ids.tolist()) - {0, 1}
    np.testing.assert_array_equal(student.x[:n_train], train_split.x)
    labeled_targets = student.y[:n_train]
    assert np.all((labeled_targets >= 0.5 * train_split.y) & (labeled_targets <= 0.5 + 0.5 * train_split.y))
    assert len(np.unique(student.y)) > 2  # probabilities, not labels

    run = mlflow.MlflowClient(isolated_tracking).get_run(result["run_id"])
    assert run.data.metrics["teacher_transfer_reviews"] == len(unlabeled.y) - 2
    assert {"teacher_val_accuracy", "teacher_out_of_fold_accuracy", "teacher0_val_accuracy", "teacher1_loss"} <= set(
        run.data.metrics
    )
    assert run.data.params["train.teacher"] == "blend"
    client = mlflow.MlflowClient(isolated_tracking)
    assert len(client.get_metric_history(run.info.run_id, "teacher0_val_accuracy")) == 1  # train.teacher_epochs
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == cfg.train.epochs == 2  # the student's
    # Saved and served as the plain classifier: the student's layers, no teacher's.
    evaluate.evaluate(cfg)
    with zipfile.ZipFile(Path(cfg.paths.model) / model_folder.MODEL_FILE) as saved:
        config_json = saved.read("config.json").decode()
    assert "teacher" not in config_json and '"name": "imdb_lstm"' in config_json
    from src.lib.model import build_model, load_model

    saved_model = load_model(Path(cfg.paths.model) / model_folder.MODEL_FILE)
    plain = build_model(cfg.model, cfg.data.num_words, name="imdb_lstm")
    assert [type(layer).__name__ for layer in saved_model.layers] == [type(layer).__name__ for layer in plain.layers]
    assert saved_model.count_params() == plain.count_params()
    served = model_folder.ReviewClassifier.from_folder(cfg.paths.model).predict_proba(["a wonderful film"])
    assert 0 < float(served[0]) < 1


def test_with_teacher_start_each_member_and_its_refit_begin_with_the_teacher_lstms_weights(
    tmp_path, tiny_cfg, monkeypatch, isolated_tracking
):
    cfg = with_archive(tiny_cfg, distinct_archive(tmp_path, {}))
    cfg = replace(
        cfg,
        train=replace(cfg.train, teacher="blend", teacher_epochs=1, teacher_start=True, ensemble=2, refit=True),
    )
    for stage in (download.download, tokenize.tokenize, pad.pad_splits):
        stage(cfg)
    built = []  # (name, the model, its weights as built, the teacher's weights then)
    real_compiled_model = training._compiled_model

    def watched_compiled_model(model_cfg, name, steps, start=None, initial=None):
        model, trainee = real_compiled_model(model_cfg, name, steps, start, initial)
        teacher_now = built[0][1].get_weights() if built else None
        built.append((name, model, [w.copy() for w in model.get_weights()], teacher_now))
        return model, trainee

    monkeypatch.setattr(training, "_compiled_model", watched_compiled_model)
    train.train(cfg)
    assert [name for name, *_ in built] == ["teacher_0", "member_0", "member_0", "member_1", "member_1"]
    teacher_model, teacher_start = built[0][1], built[0][2]
    teacher_end = teacher_model.get_weights()
    assert len(teacher_end) == len(teacher_start)
    assert any(not np.array_equal(end, begin) for end, begin in zip(teacher_end, teacher_start))  # it trained
    for _, _, weights, teacher_then in built[1:]:  # both members, fitted and refitted
        assert len(weights) == len(teacher_end)
        for student, teacher in zip(weights, teacher_end):
            np.testing.assert_array_equal(student, teacher)
        for before, after in zip(teacher_then, teacher_end):
            np.testing.assert_array_equal(before, after)  # the teacher, as its training left it


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.teacher=oracle"], "train.teacher must be one of none, blend"),
        (["train.teacher=blend", "train.teacher_weight=0.5"], "needs train.teacher_folds >= 2"),
        (["train.teacher=blend", "train.teacher_unlabeled=0"], "teaches nothing"),
        (["train.teacher=blend", "train.adversarial=vat"], "use train.adversarial=at"),
        (["train.teacher_temperature=0"], "train.teacher_temperature must be > 0"),
        (["train.teacher_unlabeled=1.5"], r"train.teacher_unlabeled must be in \[0, 1\]"),
        (["train.teacher_start=true"], "train.teacher_start needs train.teacher=blend and train.teacher_folds=1"),
        (["train.teacher=blend", "train.teacher_folds=2", "train.teacher_start=true"], "teacher_folds=1"),
    ],
)
def test_bad_teacher_settings_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message):
        config.compose(overrides)


def test_a_teacher_without_unlabeled_reviews_is_one_line(tmp_path, tiny_cfg):
    from tests.conftest import review_files

    archive = tmp_path / "labeled.tar.gz"
    write_archive(archive, review_files() | {k: v for k, v in movie_files().items() if "unsup" not in k})
    cfg = with_archive(tiny_cfg, archive)
    cfg = replace(cfg, train=replace(cfg.train, teacher="blend"))
    for stage in (download.download, tokenize.tokenize, pad.pad_splits):
        stage(cfg)
    with pytest.raises(UserError, match="needs unlabeled reviews"):
        train.train(cfg)

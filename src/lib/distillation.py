"""Distillation (train.teacher=blend): the LSTM learns from a teacher's probabilities beside the
labels, on the labeled training reviews and on unlabeled ones (Born-Again Networks, Furlanello
et al. 2018, with the n-gram model's view added).

The teacher is the blend stage's blend of an LSTM (trained as train.* says, for up to
train.teacher_epochs, without a teacher, refit or ensemble) and the baseline n-gram model
(baseline.*), its weight chosen on validation by the blend stage's rule (src.lib.blending). With
train.teacher_folds = K >= 2 the labeled training reviews are dealt into K folds of whole movies
(`folds`) and, for each fold, an LSTM and an n-gram model train on the other folds: a labeled
review's teacher probability comes from the pair that did not train on it (the n-gram model fits
its training reviews almost perfectly, the LSTM nearly so), and every other review is scored by
the K pairs' average. With K = 1 one pair trains on every training review and teaches the
unlabeled reviews only.

Validation and test reviews are never what a teacher trains on or what it labels for the
student: the transfer set is the unlabeled reviews of no validation or test movie
(src.lib.data), less any whose text is a validation or test review's. Validation plays its
usual part for every model: early stopping and the blend weight.

The student's targets: a labeled review's is (1 - train.teacher_weight) * label +
train.teacher_weight * teacher; an unlabeled review's is the teacher's. The teacher's logit is
divided by train.teacher_temperature first. The student is the plain classifier, trained as
train.* says (adversarial training on every review it learns from), from fresh weights or, with
train.teacher_start (K = 1), from the teacher LSTM's, and is what is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.lib import blending, config, data, ngrams
from src.lib.data import Split
from src.lib.errors import UserError
from src.lib.predictions import Predictions
from src.lib.text import standardize

PROBABILITY_FLOOR = 1e-6  # keeps a teacher's logit finite where it is certain


@dataclass(frozen=True)
class Reviews:
    """What a teacher reads beside the padded training and validation splits: the texts its
    n-gram model needs, each training review's movie, and the transfer set."""

    train_texts: list[str]  # the training split's, row by row
    train_movies: list[str] | None  # the training split's, row by row; None when the archive names none
    val_texts: list[str]
    transfer: Split  # the unlabeled reviews the teacher labels for the student (label data.NO_LABEL)
    transfer_texts: list[str]


@dataclass(frozen=True)
class View:
    """One kind of teacher model's probabilities."""

    labeled: np.ndarray | None  # per training review, from the fold's model that did not train on it; None: K = 1
    val: np.ndarray  # the models' average
    transfer: np.ndarray  # the models' average


def reviews(cfg: config.Config, train: Split, val: Split) -> Reviews:
    """The training, validation and transfer reviews, the transfer set as train.teacher_unlabeled
    says (a seeded share)."""
    splits, _ = data.split_reviews(cfg, test=True, unlabeled=True)
    folder = Path(cfg.paths.raw) / "aclImdb" / "train"
    labeled = splits["train"] + splits["val"]  # every labeled training review, read once
    labels, ids = [label for _, label, _ in labeled], [i for _, _, i in labeled]
    movies = data.read_movies(folder, labels, ids)

    def by_row(split: Split, name: str, values: dict) -> list:
        try:
            return [values[(int(label), int(i))] for label, i in zip(split.y, split.review_ids)]
        except KeyError:
            raise UserError(
                f"the padded {name} split holds reviews the archive's {name} split does not: re-run `dvc repro`"
            ) from None

    if len({(label, i) for label, i in zip(labels, ids)}) != len(ids):
        raise UserError(
            f"{folder}: two reviews of one label share a number (file names <number>_<rating>.txt): not the IMDB layout"
        )
    movie_of = dict(zip(zip(labels, ids), movies)) if movies is not None else None
    text_of = {name: {(label, i): text for text, label, i in splits[name]} for name in ("train", "val")}
    # A copy of a validation or test review is one too: compared as the models read them.
    held_out = {" ".join(standardize(text)) for name in ("val", "test") for text, _, _ in splits[name]}
    unlabeled_text = {review_id: text for text, _, review_id in splits[data.UNLABELED]}
    if len(unlabeled_text) != len(splits[data.UNLABELED]):
        raise UserError(f"{folder / 'unsup'}: two unlabeled reviews share a number: not the IMDB layout")
    unlabeled = data.load(cfg, data.UNLABELED)
    if set(map(int, unlabeled.review_ids)) - unlabeled_text.keys():
        raise UserError("the padded unlabeled split and the archive's unlabeled reviews differ: re-run `dvc repro`")
    candidates = np.array(
        [
            row
            for row, i in enumerate(unlabeled.review_ids)
            if " ".join(standardize(unlabeled_text[int(i)])) not in held_out
        ],
        dtype=np.int64,
    )
    count = round(len(candidates) * cfg.train.teacher_unlabeled)
    if cfg.train.teacher_unlabeled > 0 and count == 0:
        found = (
            f"train.teacher_unlabeled={cfg.train.teacher_unlabeled} of {len(candidates)} is none"
            if len(candidates)
            else "found none"
        )
        raise UserError(
            f"train.teacher needs unlabeled reviews (the archive's train/unsup, less those of a validation or test "
            f"movie or text) and {found}: use the official archive, a larger share, or train.teacher_unlabeled=0 "
            "with train.teacher_folds >= 2 and train.teacher_weight > 0"
        )
    keep = np.sort(np.random.default_rng(cfg.train.seed).choice(candidates, count, replace=False))
    transfer = unlabeled.take(keep)
    return Reviews(
        by_row(train, "train", text_of["train"]),
        by_row(train, "train", movie_of) if movie_of is not None else None,
        by_row(val, "val", text_of["val"]),
        transfer,
        [unlabeled_text[int(i)] for i in transfer.review_ids],
    )


def folds(labels: np.ndarray, count: int, seed: int, movies: list[str] | None = None) -> np.ndarray:
    """Each row's fold, 0 to count - 1. With `movies` (each row's), whole movies are dealt, each
    in a seeded order to the fold with the fewest reviews so far: a review's out-of-fold
    probability then comes from models that saw no review of its movie (as validation asks about
    unseen movies). Without, each label's rows are dealt in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    if movies is not None:
        names, movie_of = np.unique(np.asarray(movies), return_inverse=True)
        size = np.bincount(movie_of, minlength=len(names))
        movie_fold, load = np.zeros(len(names), dtype=np.int64), np.zeros(count, dtype=np.int64)
        for movie in rng.permutation(len(names)):
            movie_fold[movie] = int(np.argmin(load))
            load[movie_fold[movie]] += size[movie]
        fold = movie_fold[movie_of]
    else:
        for label in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == label))
            fold[rows] = np.arange(len(rows)) % count
    if count > 1:
        for k in range(count):
            if len(np.unique(labels[fold == k])) < 2 or len(np.unique(labels[fold != k])) < 2:
                raise UserError(
                    f"train.teacher_folds={count}: fold {k} or the rest lacks a label "
                    f"({len(labels)} training reviews): use fewer folds"
                )
    return fold


FitPredict = Callable[[int, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def out_of_fold(fold: np.ndarray, count: int, fit_predict: FitPredict) -> View:
    """fit_predict(k, rows to train on, held-out rows) trains one model and returns its
    probabilities on the held-out rows, on validation and on the transfer set. With count >= 2,
    model k trains on every fold but k and scores fold k; with 1, it trains on every row."""
    labeled = np.full(len(fold), np.nan, dtype=np.float32) if count > 1 else None
    val = transfer = 0.0
    for k in range(count):
        held = np.flatnonzero(fold == k) if count > 1 else np.empty(0, dtype=np.int64)
        rows = np.flatnonzero(fold != k) if count > 1 else np.arange(len(fold))
        p_held, p_val, p_transfer = fit_predict(k, rows, held)
        if labeled is not None:
            labeled[held] = p_held
        val = val + np.asarray(p_val, dtype=np.float64) / count
        transfer = transfer + np.asarray(p_transfer, dtype=np.float64) / count
    return View(labeled, np.asarray(val, dtype=np.float32), np.asarray(transfer, dtype=np.float32))


def ngram_view(b: config.BaselineConfig, reviews: Reviews, labels: np.ndarray, fold: np.ndarray, count: int) -> View:
    """The n-gram teacher's probabilities: one baseline model per fold (src.lib.ngrams)."""

    def fit_predict(k: int, rows: np.ndarray, held: np.ndarray):
        model = ngrams.fitted(b, [reviews.train_texts[i] for i in rows], labels[rows])

        def score(texts: list[str]) -> np.ndarray:
            return model.predict_proba(texts)[:, 1] if texts else np.empty(0, dtype=np.float32)

        return score([reviews.train_texts[i] for i in held]), score(reviews.val_texts), score(reviews.transfer_texts)

    return out_of_fold(fold, count, fit_predict)


def soften(p: np.ndarray, temperature: float) -> np.ndarray:
    """sigmoid(logit(p) / temperature): > 1 pulls the probabilities toward 1/2."""
    p = np.clip(np.asarray(p, dtype=np.float64), PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR)
    return 1 / (1 + np.exp(-np.log(p / (1 - p)) / temperature))


def student_split(
    cfg: config.Config, train: Split, val: Split, transfer: Split, lstm: View, ngram: View
) -> tuple[Split, dict]:
    """The student's training rows (the labeled training reviews, then the transfer set) with
    their targets, and the teacher's figures: its blend weight, validation accuracy, out-of-fold
    accuracy on the training reviews (K >= 2) and the transfer set's size."""
    t = cfg.train
    weight = blending.choose_weight(
        Predictions(lstm.val, val.y, val.review_ids),
        Predictions(ngram.val, val.y, val.review_ids),
        cfg.blend.weight_step,
    )

    def teacher(p_lstm: np.ndarray, p_ngram: np.ndarray) -> np.ndarray:
        return weight * p_lstm + (1 - weight) * p_ngram

    summary = {
        "teacher_blend_weight": weight,
        "teacher_val_accuracy": float(np.mean((teacher(lstm.val, ngram.val) >= 0.5) == val.y)),
        "teacher_transfer_reviews": len(transfer.x),
    }
    labeled = train.y.astype(np.float32)
    if lstm.labeled is not None:
        out_of_fold_teacher = teacher(lstm.labeled, ngram.labeled)
        summary["teacher_out_of_fold_accuracy"] = float(np.mean((out_of_fold_teacher >= 0.5) == train.y))
        labeled = (1 - t.teacher_weight) * labeled + t.teacher_weight * soften(
            out_of_fold_teacher, t.teacher_temperature
        )
    targets = np.concatenate([labeled, soften(teacher(lstm.transfer, ngram.transfer), t.teacher_temperature)])
    student = Split(
        np.concatenate([train.x, transfer.x]),
        targets.astype(np.float32),
        np.concatenate([train.review_ids, transfer.review_ids]),
    )
    return student, summary

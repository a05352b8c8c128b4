"""The dataset as the stages leave it: token and padded splits in .npz files (plain integer
arrays, never pickles), how the validation split is carved from the training reviews, and a
split loaded as a configuration asks for it (padded, its vocabulary cut)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.lib import config
from src.lib.artifacts import atomic_path
from src.lib.errors import UserError
from src.lib.text import OOV_ID, pad

SPLITS = ("train", "val", "test")
UNLABELED = "unsup"  # train/unsup's reviews but those of validation or test movies: what VAT and a teacher read
NO_LABEL = -1  # the label an unlabeled review carries in the token and padded files
LABELS = {"neg": 0, "pos": 1}  # the archive's folders of labeled reviews
SOURCE_FILE = "source.json"  # written by the download stage beside the reviews: which archive they came from
META_FILE = "meta.json"  # the padding settings the arrays were made with


def read_reviews(folder: Path) -> tuple[list[str], list[int], list[int]]:
    """(texts, labels, review ids) of all reviews under folder/{neg,pos}, in a stable order.
    Undecodable bytes become U+FFFD. The id is the number a file name starts with (`123_8.txt`)."""
    texts, labels, ids = [], [], []
    for name, label in LABELS.items():
        files = sorted((folder / name).glob("*.txt"))
        if not files:
            raise UserError(f"no reviews in {folder / name}: run the download stage (`dvc repro download`)")
        for path in files:
            texts.append(path.read_bytes().decode("utf-8", errors="replace"))
            labels.append(label)
            number = path.name.split("_", 1)[0]
            ids.append(int(number) if number.isdigit() else -1)
    return texts, labels, ids


def read_unlabeled(folder: Path) -> list[str]:
    """The unlabeled reviews under folder/unsup, in a stable order; none when the archive had none."""
    return [path.read_bytes().decode("utf-8", errors="replace") for path in sorted((folder / "unsup").glob("*.txt"))]


def read_unlabeled_movies(folder: Path, count: int) -> list[str] | None:
    """The movie of each of folder/unsup's `count` reviews (urls_unsup.txt, line i the movie of
    review i); None when the archive has no such file."""
    path = folder / "urls_unsup.txt"
    if not path.is_file():
        return None
    urls = path.read_text(encoding="utf-8").splitlines()
    if len(urls) < count:
        raise UserError(f"{path} names {len(urls)} movies for {count} unlabeled reviews: not the IMDB layout")
    return urls


def read_movies(folder: Path, labels: list[int], ids: list[int]) -> list[str] | None:
    """The movie (its IMDB page) of each review, from folder/urls_{neg,pos}.txt, whose line i
    is the movie of review i; None when the archive had no such files."""
    files = {label: folder / f"urls_{name}.txt" for name, label in LABELS.items()}
    if not all(path.is_file() for path in files.values()):
        return None
    urls = {label: path.read_text(encoding="utf-8").splitlines() for label, path in files.items()}
    if any(not 0 <= i < len(urls[label]) for label, i in zip(labels, ids)):
        raise UserError(f"{folder}: a review's number is not a line of its urls file: not the IMDB layout")
    return [urls[label][i] for label, i in zip(labels, ids)]


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object stops numpy from appending ".npz" to tmp
            np.savez(f, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it (`dvc repro`)")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def save_ragged(path: Path, sequences: list[list[int]], labels: list[int], review_ids: list[int]) -> None:
    """Variable-length sequences as one flat id array plus row offsets, with each row's label
    and review id (the number its file name starts with)."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.fromiter((i for s in sequences for i in s), dtype=np.int32, count=int(offsets[-1]))
    save_npz(
        path,
        ids=ids,
        offsets=offsets,
        labels=np.asarray(labels, dtype=np.int8),
        review_ids=np.asarray(review_ids, dtype=np.int32),
    )


def load_ragged(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    data = load_npz(path)
    ids, offsets = data["ids"], data["offsets"]
    sequences = [ids[start:end] for start, end in zip(offsets[:-1], offsets[1:])]
    return sequences, data["labels"]


def save_padded(path: Path, x: np.ndarray, y: np.ndarray, review_ids: np.ndarray) -> None:
    save_npz(path, x=x, y=y, review_ids=review_ids)


def load_review_ids(path: Path) -> np.ndarray:
    """The review ids of a token or padded split file, row by row."""
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it (`dvc repro`)")
    with np.load(path, allow_pickle=False) as data:  # members load lazily: only this one is read
        if "review_ids" not in data.files:
            raise UserError(f"{path} holds no review ids: re-run `dvc repro`")
        return data["review_ids"]


def load_padded(path: Path) -> tuple[np.ndarray, np.ndarray]:
    data = load_npz(path)
    return data["x"], data["y"]


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path} not found: run the stage that writes it (`dvc repro`)")
    return json.loads(path.read_text(encoding="utf-8"))


def stratified_split(labels: list[int], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val): val_fraction of each label, chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(idx) * val_fraction))
        if n_val == 0 or n_val == len(idx):
            raise UserError(
                f"data.val_fraction={val_fraction} leaves an empty train or validation split "
                f"for label {label} ({len(idx)} reviews)"
            )
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def contiguous_split(
    labels: list[int], ids: list[int], val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val): per label, a seeded window of val_fraction of the reviews with
    consecutive ids. aclImdb numbers a movie's reviews consecutively, so the window holds whole
    movies (but for the two at its edges): validation then asks, as the test split does, about
    movies training never saw, instead of rewarding a model for knowing their names."""
    rng = np.random.default_rng(seed)
    labels, ids = np.asarray(labels), np.asarray(ids)
    train_idx, val_idx = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        idx = idx[np.argsort(ids[idx], kind="stable")]
        n_val = int(round(len(idx) * val_fraction))
        if n_val == 0 or n_val == len(idx):
            raise UserError(
                f"data.val_fraction={val_fraction} leaves an empty train or validation split "
                f"for label {label} ({len(idx)} reviews)"
            )
        start = int(rng.integers(0, len(idx) - n_val + 1))
        val_idx.append(idx[start : start + n_val])
        train_idx.append(np.concatenate([idx[:start], idx[start + n_val :]]))
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def movie_split(labels: list[int], movies: list[str], val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, val): whole movies held out, so validation, like test, asks about
    movies training never saw. Movies are taken in a seeded order while each label's share of
    validation stays within val_fraction of that label's reviews, which keeps it stratified."""
    labels, movies = np.asarray(labels), np.asarray(movies)
    names, movie_of = np.unique(movies, return_inverse=True)
    per_movie = np.zeros((len(names), 2), dtype=np.int64)  # reviews of each movie, by label
    np.add.at(per_movie, (movie_of, labels), 1)
    per_label = per_movie.sum(axis=0)
    target = np.round(per_label * val_fraction).astype(np.int64)
    taken, held_out = np.zeros(2, dtype=np.int64), np.zeros(len(names), dtype=bool)
    for movie in np.random.default_rng(seed).permutation(len(names)):
        if np.all(taken + per_movie[movie] <= target):
            taken += per_movie[movie]
            held_out[movie] = True
    if np.any(taken == 0) or np.any(taken == per_label):
        raise UserError(
            f"data.val_fraction={val_fraction} leaves an empty train or validation split "
            f"when whole movies are held out ({len(names)} movies)"
        )
    val = held_out[movie_of]
    return np.flatnonzero(~val), np.flatnonzero(val)


def validation_split(
    data: config.DataConfig, labels: list[int], ids: list[int], movies: list[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices into the training reviews, as data.val_split says; `movies` (the
    movie of each review, from the archive's urls files) is None when the archive has none."""
    if data.val_split == "movie":
        if movies is None:
            raise UserError(
                "data.val_split=movie needs the archive's movie files (train/urls_pos.txt, urls_neg.txt), "
                "which this archive lacks: use the official archive, or data.val_split=contiguous"
            )
        return movie_split(labels, movies, data.val_fraction, data.split_seed)
    if data.val_split == "contiguous":
        return contiguous_split(labels, ids, data.val_fraction, data.split_seed)
    return stratified_split(labels, data.val_fraction, data.split_seed)


def split_reviews(
    cfg: config.Config, test: bool = True, unlabeled: bool = False
) -> tuple[dict[str, list[tuple[str, int, int]]], dict | None]:
    """The raw reviews as (text, label, review id) per split: train (the training reviews but
    validation), val (carved as data.val_split says), with `test` test, and with `unlabeled`
    unsup (train/unsup's reviews, label NO_LABEL, but those of a validation or test movie:
    validation stays as unseen as test); and how many movies train and val have and share, when
    the archive names them (None otherwise)."""
    raw = Path(cfg.paths.raw) / "aclImdb"
    texts, labels, ids = read_reviews(raw / "train")
    movies = read_movies(raw / "train", labels, ids)
    train_idx, val_idx = validation_split(cfg.data, labels, ids, movies)
    rows = list(zip(texts, labels, ids))
    splits = {"train": [rows[i] for i in train_idx], "val": [rows[i] for i in val_idx]}
    if test:
        splits["test"] = list(zip(*read_reviews(raw / "test")))
    if unlabeled:
        # The archive says its unlabeled reviews are of movies test does not have (on the
        # official archive, of no labeled review's movie): held to that here for any archive.
        unseen = {
            line
            for name in LABELS
            for path in [raw / "test" / f"urls_{name}.txt"]
            if path.is_file()
            for line in path.read_text(encoding="utf-8").splitlines()
        }
        splits[UNLABELED] = _unlabeled_rows(raw / "train", unseen | ({movies[i] for i in val_idx} if movies else set()))
    if movies is None:
        return splits, None
    train_movies, val_movies = {movies[i] for i in train_idx}, {movies[i] for i in val_idx}
    return splits, {"train": len(train_movies), "val": len(val_movies), "shared": len(train_movies & val_movies)}


def _unlabeled_rows(folder: Path, unseen_movies: set[str]) -> list[tuple[str, int, int]]:
    files = sorted((folder / "unsup").glob("*.txt"), key=lambda path: _review_number(path.name))
    unlabeled_movies = read_unlabeled_movies(folder, len(files)) if files else None
    rows = []
    for path in files:
        number = _review_number(path.name)
        if unlabeled_movies is not None and unlabeled_movies[number] in unseen_movies:
            continue
        rows.append((path.read_bytes().decode("utf-8", errors="replace"), NO_LABEL, number))
    return rows


def _review_number(name: str) -> int:
    number = name.split("_", 1)[0]
    if not number.isdigit():
        raise UserError(f"unlabeled review {name}: its name does not start with its number, as in the IMDB layout")
    return int(number)


def padding_settings(cfg: config.Config) -> dict:
    return {"maxlen": cfg.data.maxlen, "padding": cfg.data.padding, "truncating": cfg.data.truncating}


def load_split(cfg: config.Config, split: str):
    """(x, y) of a split padded and cut to the vocabulary as cfg says: the pad stage's arrays
    when they match cfg, else padded now from the token ids (a sweep trial or a command-line
    maxlen override)."""
    padded = Path(cfg.paths.padded)
    if _padded_as_configured(cfg):
        x, y = load_padded(padded / f"{split}.npz")
    else:
        sequences, y = load_ragged(Path(cfg.paths.tokens) / f"{split}.npz")
        x = pad(sequences, **padding_settings(cfg))
    return cut_vocabulary(x, cfg.data.num_words), y


def _padded_as_configured(cfg: config.Config) -> bool:
    meta = Path(cfg.paths.padded) / META_FILE
    return meta.is_file() and read_json(meta) == padding_settings(cfg)


def review_ids(cfg: config.Config, split: str) -> np.ndarray:
    """The review ids of load_split's rows, from the file load_split reads."""
    folder = cfg.paths.padded if _padded_as_configured(cfg) else cfg.paths.tokens
    return load_review_ids(Path(folder) / f"{split}.npz")


def cut_vocabulary(x: np.ndarray, num_words: int) -> np.ndarray:
    """Ids from num_words on become the unknown-word id. The tokenize stage numbers words by
    training-set frequency, so this is exactly what re-tokenizing with the smaller vocabulary
    would give: a sweep trial or a command line can lower data.num_words without it."""
    if x.size == 0 or x.max() < num_words:
        return x
    return np.where(x >= num_words, np.int32(OOV_ID), x)


@dataclass(frozen=True)
class Split:
    """Padded reviews, their labels and review ids, row by row."""

    x: np.ndarray
    y: np.ndarray
    review_ids: np.ndarray

    def subset(self, fraction: float, seed: int) -> Split:
        """A seeded, stratified `fraction` of the rows (a sweep trial's training reviews)."""
        if fraction >= 1:
            return self
        _, keep = stratified_split(self.y, fraction, seed)
        return self.take(keep)

    def take(self, rows: np.ndarray) -> Split:
        """These rows, in this order."""
        return Split(self.x[rows], self.y[rows], self.review_ids[rows])


def source_tags(cfg: config.Config) -> dict[str, str]:
    """The archive the reviews came from, as MLflow run tags (what the download stage recorded)."""
    source = Path(cfg.paths.raw) / SOURCE_FILE
    return {"dataset.sha256": read_json(source)["sha256"]} if source.is_file() else {}


def load(cfg: config.Config, split: str) -> Split:
    """A split as cfg asks for it (load_split), with its review ids."""
    x, y = load_split(cfg, split)
    return Split(x, y, review_ids(cfg, split))

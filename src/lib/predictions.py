"""Per-review predictions: every review's positive probability, its label and its id, as plain
arrays in one .npz per split (`test.npz` from the evaluate stage, `val.npz` from the train
stage), saved beside the reports and logged to the run in MLflow under `predictions/`.

They are what makes two runs comparable review by review (src.significance): two files describe
the same reviews exactly when their digests (of the labels and review ids) are equal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from src.lib.data import load_npz, save_npz
from src.lib.errors import UserError, first_line

DIRECTORY = "predictions"  # under paths.reports, and the artifact folder of the MLflow run
DIGEST_TAG = "predictions.{split}.digest"  # MLflow tag: which reviews the run's predictions are of


@dataclass(frozen=True)
class Predictions:
    probability: np.ndarray  # float32, the model's positive-class probability per review
    label: np.ndarray  # int8, 0 neg / 1 pos
    review_id: np.ndarray  # int32, the number the review's file name starts with (unique with the label)

    def __post_init__(self):
        if not len(self.probability) == len(self.label) == len(self.review_id):
            raise ValueError("probability, label and review_id must have one entry per review")

    @property
    def digest(self) -> str:
        """Which reviews, in which order: equal digests mean the same reviews, row by row."""
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.label, dtype=np.int8).tobytes())
        h.update(np.ascontiguousarray(self.review_id, dtype=np.int32).tobytes())
        return h.hexdigest()[:16]

    @property
    def accuracy(self) -> float:
        return float(np.mean((self.probability >= 0.5) == self.label))


def file_name(split: str) -> str:
    return f"{split}.npz"


def save(path: Path, predictions: Predictions) -> None:
    save_npz(
        path,
        probability=predictions.probability.astype(np.float32),
        label=predictions.label.astype(np.int8),
        review_id=predictions.review_id.astype(np.int32),
    )


def load(path: str | Path) -> Predictions:
    arrays = load_npz(Path(path))
    missing = {"probability", "label", "review_id"} - arrays.keys()
    if missing:
        raise UserError(f"{path} is not a predictions file (it lacks {', '.join(sorted(missing))})")
    return Predictions(arrays["probability"], arrays["label"], arrays["review_id"])


def log_to_active_run(split: str, predictions: Predictions) -> None:
    """The split's predictions as an artifact of the active MLflow run, and their digest as a tag."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / file_name(split)
        save(path, predictions)
        mlflow.log_artifact(str(path), artifact_path=DIRECTORY)
    mlflow.set_tag(DIGEST_TAG.format(split=split), predictions.digest)


def from_run(run_id: str, split: str) -> Predictions:
    """The split's predictions logged to an MLflow run (the tracking URI set by the caller)."""
    import tempfile

    import mlflow

    artifact = f"{DIRECTORY}/{file_name(split)}"
    with tempfile.TemporaryDirectory() as scratch:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=scratch)
        except Exception as exc:  # MLflow's errors for a missing artifact vary by store
            raise UserError(
                f"run {run_id} has no {artifact} (a run that saved no per-review predictions, "
                f"or not evaluated yet): {first_line(exc)}"
            ) from None
        return load(path)

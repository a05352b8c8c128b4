"""Is B better than A? Paired comparisons of two models' predictions on the same reviews.

Both sides scored the same reviews, so every statistic is paired review by review: the
accuracy difference B - A and the ROC AUC difference get 95% intervals from a bootstrap over
reviews (the same resampled reviews for A and B), and McNemar's exact test asks whether the
reviews only one side gets right split unevenly. A side may be several runs (seeds): their
probabilities are averaged, and the runs' own accuracies give a mean and standard deviation,
so seed noise and test-sample noise are both in view.
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from src.lib.errors import UserError
from src.lib.predictions import Predictions

ALPHA = 0.05         # significance level: the verdict's test and the intervals' 95%
RESAMPLES = 10_000   # bootstrap resamples of the reviews
SEED = 0             # of the bootstrap: the same inputs give the same intervals
_STREAMS = 8         # independent streams of resamples, spread over the CPUs
_CHUNK = 25          # resamples drawn at a time (memory: a few arrays of _CHUNK x reviews)

NO_DIFFERENCE = "no detectable difference at this sample size"


@dataclass(frozen=True)
class Side:
    """One side of a comparison: its runs' predictions averaged, and each run's accuracy."""
    predictions: Predictions
    run_accuracies: list[float]

    @property
    def accuracy_mean(self) -> float:
        return float(np.mean(self.run_accuracies))

    @property
    def accuracy_sd(self) -> float:
        return float(np.std(self.run_accuracies, ddof=1)) if len(self.run_accuracies) > 1 else 0.0


@dataclass(frozen=True)
class Comparison:
    reviews: int
    accuracy_a: float
    accuracy_b: float
    accuracy_difference: float             # B - A, as a fraction of the reviews
    accuracy_ci: tuple[float, float]       # 95% bootstrap interval of B - A
    only_a_right: int                      # reviews A gets right and B wrong
    only_b_right: int
    mcnemar_p: float                       # exact two-sided McNemar test on those two counts
    auc_a: float
    auc_b: float
    auc_difference: float
    auc_ci: tuple[float, float]
    resamples: int
    seed: int

    @property
    def verdict(self) -> str:
        """Better only when both the test and the interval say so."""
        low, high = self.accuracy_ci
        if self.mcnemar_p < ALPHA and (low > 0 or high < 0):
            return "B is better" if self.accuracy_difference > 0 else "A is better"
        return NO_DIFFERENCE

    def to_dict(self) -> dict:
        return {"reviews": self.reviews,
                "accuracy": {"a": self.accuracy_a, "b": self.accuracy_b, "difference": self.accuracy_difference,
                             "ci95": list(self.accuracy_ci)},
                "mcnemar": {"only_a_right": self.only_a_right, "only_b_right": self.only_b_right,
                            "p": self.mcnemar_p},
                "roc_auc": {"a": self.auc_a, "b": self.auc_b, "difference": self.auc_difference,
                            "ci95": list(self.auc_ci)},
                "bootstrap": {"resamples": self.resamples, "seed": self.seed},
                "verdict": self.verdict}


def combine(runs: list[Predictions], names: list[str]) -> Side:
    """Several runs' predictions of the same reviews as one side: probabilities averaged."""
    first = runs[0]
    for name, run in zip(names[1:], runs[1:]):
        if run.digest != first.digest:
            raise UserError(f"{name} was evaluated on other reviews than {names[0]}: a side's runs must share them")
    averaged = Predictions(np.mean([r.probability for r in runs], axis=0), first.label, first.review_id)
    return Side(averaged, [r.accuracy for r in runs])


def mcnemar_exact(only_a_right: int, only_b_right: int) -> float:
    """Two-sided exact McNemar p-value: under no difference, each discordant review is equally
    likely to favour either side (a fair coin), so the smaller count k is binomial(n, 1/2) and
    p = 2 P(X <= k), at most 1. Summed in whole numbers: exact for any n."""
    n = only_a_right + only_b_right
    k = min(only_a_right, only_b_right)
    if 2 * k == n:
        return 1.0
    term = tail = 1  # C(n, 0)
    for i in range(1, k + 1):
        term = term * (n - i + 1) // i  # C(n, i)
        tail += term
    return min(1.0, 2 * tail / 2 ** n)


class _ResampledAuc:
    """ROC AUC of two models' scores on the same resamples of the reviews, exactly as if each
    resample were scored from scratch (tied scores count a half), without sorting per resample.

    Resamples are rows of counts, how often each review was drawn, with the reviews as columns
    in `self.layout` order: positives first, then negatives in A's score order. A positive's
    share of the AUC is the drawn weight of the negatives scored below it, plus half of those
    tied with it: a cumulative sum along the sorted negatives, read at columns found once."""

    def __init__(self, labels: np.ndarray, score_a: np.ndarray, score_b: np.ndarray):
        positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
        negatives = negatives[np.argsort(score_a[negatives], kind="stable")]
        self.layout = np.concatenate([positives, negatives])
        self.split = len(positives)
        self.models = []
        for score, order in ((score_a, None), (score_b, np.argsort(score_b[negatives], kind="stable"))):
            ranked = score[negatives] if order is None else score[negatives][order]
            below = np.searchsorted(ranked, score[positives], side="left")       # strictly lower
            not_above = np.searchsorted(ranked, score[positives], side="right")  # lower or tied
            tied = np.flatnonzero(below != not_above)  # positives scored like some negatives
            self.models.append((order, below, tied, not_above[tied]))

    def __call__(self, counts: np.ndarray) -> list[np.ndarray]:
        positive_weight, negative_weight = counts[:, :self.split], counts[:, self.split:]
        pairs = positive_weight.sum(axis=1, dtype=np.float64) * negative_weight.sum(axis=1, dtype=np.float64)
        aucs = []
        for order, below, tied, not_above in self.models:
            # Column k: the weight of the first k sorted negatives (column 0: none), one row per resample.
            cumulative = _cumulative(negative_weight if order is None else negative_weight[:, order])
            lower = cumulative[:, below]
            if tied.size:  # a negative tied with a positive counts a half
                lower[:, tied] = 0.5 * (lower[:, tied] + cumulative[:, not_above])
            with np.errstate(invalid="ignore", divide="ignore"):  # a resample of one class has no AUC
                aucs.append(np.einsum("ij,ij->i", positive_weight, lower) / pairs)
        return aucs


_BLOCK = 32  # columns summed at a time by one small matrix product in _cumulative


def _cumulative(weights: np.ndarray) -> np.ndarray:
    """Row-wise sums of the first k columns of (rows, m) weights, k = 0..m: shape (rows, m + 1).

    The same numbers as a cumulative sum, computed by blocks: within a block of _BLOCK columns
    by a product with a triangle of ones (a matrix product, which the CPU runs many columns at
    a time, where a cumulative sum adds one column after another), then each block's total
    carried into the next. Counts are whole numbers, so the float sums are exact."""
    rows, m = weights.shape
    blocks = -(-(m + 1) // _BLOCK)
    padded = np.zeros((rows, blocks * _BLOCK), dtype=weights.dtype)
    padded[:, 1:m + 1] = weights  # column 0 stays 0: the sum of no columns
    triangle = np.triu(np.ones((_BLOCK, _BLOCK), dtype=weights.dtype))
    sums = (padded.reshape(rows * blocks, _BLOCK) @ triangle).reshape(rows, blocks, _BLOCK)
    sums[:, 1:, :] += np.cumsum(sums[:, :-1, -1], axis=1)[:, :, None]
    return sums.reshape(rows, blocks * _BLOCK)[:, :m + 1]


def _resample_counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """(resamples, n) float32 counts: how often each review is drawn in each resample of n reviews.
    Counted one resample at a time: the counts of one fit in the CPU's cache, those of all do not."""
    draws = rng.integers(0, n, size=(resamples, n), dtype=np.uint32 if n < 2**32 else np.int64)  # 32-bit draws are cheaper
    counts = np.empty((resamples, n), dtype=np.float32)
    for j in range(resamples):
        counts[j] = np.bincount(draws[j], minlength=n)
    return counts


def _resampled_differences(gain: np.ndarray, auc: _ResampledAuc | None, resamples: int,
                           stream: np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy differences B - A of `resamples` resamples of the reviews drawn from one
    stream, and the AUC differences (NaN without an AUC), _CHUNK resamples at a time."""
    n = len(gain)
    rng = np.random.default_rng(stream)
    accuracy, auc_differences = [], []
    for start in range(0, resamples, _CHUNK):
        counts = _resample_counts(rng, min(_CHUNK, resamples - start), n)
        accuracy.append(counts @ gain / n)
        if auc is None:
            auc_differences.append(np.full(len(counts), np.nan))
        else:
            resampled_a, resampled_b = auc(counts)
            auc_differences.append(resampled_b - resampled_a)
    return np.concatenate(accuracy), np.concatenate(auc_differences)


def _one_blas_thread() -> None:
    """In a worker process: its matrix products on one thread, as the workers share the CPUs."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


@functools.cache
def _workers() -> ProcessPoolExecutor | None:
    """One process per CPU, started (forked) on first use and kept for the next comparison:
    threads would wait on each other, as NumPy's counting holds the interpreter lock."""
    cpus = os.cpu_count() or 1
    if cpus < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    pool = ProcessPoolExecutor(min(cpus, _STREAMS), mp_context=multiprocessing.get_context("fork"),
                               initializer=_one_blas_thread)
    atexit.register(pool.shutdown)
    return pool


def _bootstrap(gain: np.ndarray, auc: _ResampledAuc | None, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """_resampled_differences of all resamples, in _STREAMS seeded streams of draws spread over
    the worker processes. The streams, not the CPUs, fix the result."""
    sizes = [size for size in (len(part) for part in np.array_split(np.arange(resamples), _STREAMS)) if size]
    streams = np.random.SeedSequence(seed).spawn(len(sizes))
    pool = _workers()
    if pool is not None and len(sizes) > 1:
        parts = list(pool.map(_resampled_differences, repeat(gain), repeat(auc), sizes, streams))
    else:
        parts = [_resampled_differences(gain, auc, size, stream) for size, stream in zip(sizes, streams)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def compare(a: Predictions, b: Predictions, *, resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    """B against A on the same reviews; UserError if they are not the same reviews."""
    if a.digest != b.digest:
        raise UserError(f"A and B were not evaluated on the same reviews (labels and review ids differ: "
                        f"digest {a.digest} against {b.digest}): compare runs of one dataset and split")
    n = len(a.label)
    labels = a.label.astype(bool)
    right_a = (a.probability >= 0.5) == labels
    right_b = (b.probability >= 0.5) == labels
    gain = right_b.astype(np.float32) - right_a.astype(np.float32)  # +1 B alone right, -1 A alone right
    both_classes = labels.any() and not labels.all()
    auc = _ResampledAuc(labels, a.probability, b.probability) if both_classes else None
    if auc:
        gain = gain[auc.layout]  # resample counts are over the reviews in the AUC's layout
        point_auc_a, point_auc_b = (float(x[0]) for x in auc(np.ones((1, n), dtype=np.float64)))
    else:
        point_auc_a = point_auc_b = float("nan")

    accuracy_differences, auc_differences = _bootstrap(gain, auc, resamples, seed)

    def interval(values: np.ndarray) -> tuple[float, float]:
        finite = values[np.isfinite(values)]  # a resample holding one class only has no AUC
        if not finite.size:
            return (float("nan"), float("nan"))
        low, high = np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2])
        return (float(low), float(high))

    only_a, only_b = int((gain == -1).sum()), int((gain == 1).sum())
    return Comparison(reviews=n, accuracy_a=float(right_a.mean()), accuracy_b=float(right_b.mean()),
                      accuracy_difference=(only_b - only_a) / n,
                      accuracy_ci=interval(accuracy_differences), only_a_right=only_a, only_b_right=only_b,
                      mcnemar_p=mcnemar_exact(only_a, only_b), auc_a=point_auc_a, auc_b=point_auc_b,
                      auc_difference=point_auc_b - point_auc_a, auc_ci=interval(auc_differences),
                      resamples=resamples, seed=seed)


def summary(c: Comparison) -> str:
    """One line: the difference in points, its interval and the test."""
    low, high = c.accuracy_ci
    return (f"B - A {100 * c.accuracy_difference:+.2f} points, 95% CI [{100 * low:+.2f}, {100 * high:+.2f}], "
            f"McNemar p = {c.mcnemar_p:.3g}")

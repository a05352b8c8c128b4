"""Is B better than A? Comparisons of predictions on the same reviews, run against run or
configuration against configuration.

One run per side (`compare`): both models scored the same reviews, so every statistic is paired
review by review: the accuracy difference B - A and the ROC AUC difference get 95% intervals from
a bootstrap over reviews (the same resampled reviews for A and B), and McNemar's exact test asks
whether the reviews only one side gets right split unevenly.

Several runs on a side (`compare_groups`): each side is a configuration and its runs are draws of
its training seed. The question is about the mean single run, and its uncertainty has two
sources, the seeds each side drew and the reviews the test set holds; a two-level bootstrap
counts both (each resample draws each side's runs with replacement, and the reviews once, shared
by both sides: Davison & Hinkley 1997, section 3.8; Bouthillier et al. 2021). The runs' averaged
probabilities are an ensemble: it is reported, never judged, since averaging rewards runs that
err on different reviews whether or not their configuration is better.

Everything runs in the calling process (vectorised NumPy, no worker processes): the sweep and the
registry compare in a process whose TensorFlow threads are alive, where a fork can deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.lib.errors import UserError
from src.lib.predictions import Predictions

ALPHA = 0.05  # significance level: the verdict's test and the intervals' 95%
RESAMPLES = 10_000  # bootstrap resamples of the reviews
SEED = 0  # of the bootstrap: the same inputs give the same intervals
_STREAMS = 8  # seeded streams of resamples, drawn one after another: they fix the draws
_CHUNK = 25  # resamples drawn at a time (memory: a few arrays of _CHUNK x reviews)

NO_DIFFERENCE = "no detectable difference at this sample size"
GROUP_AUC_RESAMPLES = 2_000  # of a comparison of groups, the first resamples that also score ROC AUC (each run's AUC costs as much as the accuracy of all)
FEW_SEEDS = 3  # a side with this many runs or fewer gets a sentence on how coarse its interval is


@dataclass(frozen=True)
class Comparison:
    reviews: int
    accuracy_a: float
    accuracy_b: float
    accuracy_difference: float  # B - A, as a fraction of the reviews
    accuracy_ci: tuple[float, float]  # 95% bootstrap interval of B - A
    only_a_right: int  # reviews A gets right and B wrong
    only_b_right: int
    mcnemar_p: float  # exact two-sided McNemar test on those two counts
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
        return {
            "reviews": self.reviews,
            "accuracy": {
                "a": self.accuracy_a,
                "b": self.accuracy_b,
                "difference": self.accuracy_difference,
                "ci95": list(self.accuracy_ci),
            },
            "mcnemar": {"only_a_right": self.only_a_right, "only_b_right": self.only_b_right, "p": self.mcnemar_p},
            "roc_auc": {"a": self.auc_a, "b": self.auc_b, "difference": self.auc_difference, "ci95": list(self.auc_ci)},
            "bootstrap": {"resamples": self.resamples, "seed": self.seed},
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class GroupComparison:
    """Configuration B against configuration A, each side a group of runs (training seeds):
    the mean single run of each, with a two-level bootstrap interval over seeds and reviews."""

    reviews: int
    accuracies_a: tuple[float, ...]  # each run's own accuracy
    accuracies_b: tuple[float, ...]
    accuracy_ci: tuple[float, float]  # 95% interval of B - A of the mean run: seeds and reviews resampled
    p: float  # two-sided: twice the smaller share of resampled differences on a side of 0
    aucs_a: tuple[float, ...]  # each run's own ROC AUC
    aucs_b: tuple[float, ...]
    auc_ci: tuple[float, float]
    ensemble_accuracy_a: float  # the side's runs' probabilities averaged: an ensemble, never judged
    ensemble_accuracy_b: float
    resamples: int
    seed: int

    @property
    def accuracy_a(self) -> float:
        return float(np.mean(self.accuracies_a))

    @property
    def accuracy_b(self) -> float:
        return float(np.mean(self.accuracies_b))

    @property
    def accuracy_difference(self) -> float:
        return self.accuracy_b - self.accuracy_a

    @property
    def auc_difference(self) -> float:
        return float(np.mean(self.aucs_b) - np.mean(self.aucs_a))

    @property
    def verdict(self) -> str:
        """Better only where the interval over seeds and reviews excludes no difference."""
        low, high = self.accuracy_ci
        if low > 0:
            return "B is better"
        if high < 0:
            return "A is better"
        return NO_DIFFERENCE

    @property
    def seeds_note(self) -> str:
        """In words, what the sides' numbers of runs leave out of the interval ('' when nothing)."""
        return few_seeds(len(self.accuracies_a), len(self.accuracies_b))

    def to_dict(self) -> dict:
        def sd(values):
            return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0

        return {
            "reviews": self.reviews,
            "method": "two-level bootstrap: runs within each side, reviews shared",
            "runs": {
                side: {
                    "accuracy_mean": float(np.mean(acc)),
                    "accuracy_sd": sd(acc),
                    "accuracies": list(acc),
                    "roc_auc_mean": float(np.mean(auc)),
                    "roc_aucs": list(auc),
                }
                for side, acc, auc in (("a", self.accuracies_a, self.aucs_a), ("b", self.accuracies_b, self.aucs_b))
            },
            "accuracy": {
                "a": self.accuracy_a,
                "b": self.accuracy_b,
                "difference": self.accuracy_difference,
                "ci95": list(self.accuracy_ci),
                "p": self.p,
            },
            "roc_auc": {
                "a": float(np.mean(self.aucs_a)),
                "b": float(np.mean(self.aucs_b)),
                "difference": self.auc_difference,
                "ci95": list(self.auc_ci),
            },
            "ensemble": {
                "a": self.ensemble_accuracy_a,
                "b": self.ensemble_accuracy_b,
                "difference": self.ensemble_accuracy_b - self.ensemble_accuracy_a,
            },
            "seeds_note": self.seeds_note,
            "bootstrap": {"resamples": self.resamples, "seed": self.seed},
            "verdict": self.verdict,
        }


_NUMBERS = {1: "one", 2: "two", 3: "three"}


def few_seeds(runs_a: int, runs_b: int) -> str:
    """A sentence on how few seeds the interval rests on, or '' when each side has more than FEW_SEEDS."""
    said = []
    for side, runs in (("A", runs_a), ("B", runs_b)):
        if runs == 1:
            said.append(f"{side} is a single run, so its seed-to-seed variation is not in the interval")
        elif runs <= FEW_SEEDS:
            said.append(f"{side} has only {_NUMBERS[runs]} seeds")
    if not said:
        return ""
    return "; ".join(said) + ": an interval over so few seeds is coarse, and more seeds per side would firm it up"


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
    return min(1.0, 2 * tail / 2**n)


class _ResampledAuc:
    """ROC AUC of several models' scores on the same resamples of the reviews, exactly as if each
    resample were scored from scratch (tied scores count a half), without sorting per resample.

    Resamples are rows of counts, how often each review was drawn, with the reviews as columns
    in `self.layout` order: positives first, then negatives in the first model's score order. A
    positive's share of the AUC is the drawn weight of the negatives scored below it, plus half
    of those tied with it: a cumulative sum along the sorted negatives, read at columns found once."""

    def __init__(self, labels: np.ndarray, *scores: np.ndarray):
        positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
        negatives = negatives[np.argsort(scores[0][negatives], kind="stable")]
        self.layout = np.concatenate([positives, negatives])
        self.split = len(positives)
        self.models = []
        for index, score in enumerate(scores):
            order = None if index == 0 else np.argsort(score[negatives], kind="stable")
            ranked = score[negatives] if order is None else score[negatives][order]
            below = np.searchsorted(ranked, score[positives], side="left")  # strictly lower
            not_above = np.searchsorted(ranked, score[positives], side="right")  # lower or tied
            tied = np.flatnonzero(below != not_above)  # positives scored like some negatives
            self.models.append((order, below, tied, not_above[tied]))

    def __call__(self, counts: np.ndarray) -> list[np.ndarray]:
        positive_weight, negative_weight = counts[:, : self.split], counts[:, self.split :]
        # Whole counts: float32 sums are exact (up to 2**24 reviews) and cheaper than float64 ones.
        pairs = positive_weight.sum(axis=1).astype(np.float64) * negative_weight.sum(axis=1).astype(np.float64)
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
    padded[:, 1 : m + 1] = weights  # column 0 stays 0: the sum of no columns
    triangle = np.triu(np.ones((_BLOCK, _BLOCK), dtype=weights.dtype))
    sums = (padded.reshape(rows * blocks, _BLOCK) @ triangle).reshape(rows, blocks, _BLOCK)
    sums[:, 1:, :] += np.cumsum(sums[:, :-1, -1], axis=1)[:, :, None]
    return sums.reshape(rows, blocks * _BLOCK)[:, : m + 1]


def _resample_counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """(resamples, n) float32 counts: how often each review is drawn in each resample of n reviews.
    Counted one resample at a time: the counts of one fit in the CPU's cache, those of all do not."""
    draws = rng.integers(
        0, n, size=(resamples, n), dtype=np.uint32 if n < 2**32 else np.int64
    )  # 32-bit draws are cheaper
    counts = np.empty((resamples, n), dtype=np.float32)
    for j in range(resamples):
        counts[j] = np.bincount(draws[j], minlength=n)
    return counts


def _over_resamples(n: int, resamples: int, seed: int, work) -> list:
    """work(counts, rng, place) for each chunk of resamples of n reviews, in draw order: counts
    are (at most _CHUNK, n) rows drawn from one of _STREAMS seeded streams, rng that stream's
    generator (for any further draws of the chunk's), place the share of the stream drawn before
    the chunk (0 for its first). All in this process, on this thread: worker threads were slower
    (NumPy's counting holds the interpreter lock), and a fork of a process running TensorFlow's
    threads can deadlock."""
    sizes = [size for size in (len(part) for part in np.array_split(np.arange(resamples), _STREAMS)) if size]
    done = []
    for size, stream in zip(sizes, np.random.SeedSequence(seed).spawn(len(sizes))):
        rng = np.random.default_rng(stream)
        done += [
            work(_resample_counts(rng, min(_CHUNK, size - start), n), rng, start / size)
            for start in range(0, size, _CHUNK)
        ]
    return done


def _bootstrap(gain: np.ndarray, auc: _ResampledAuc | None, resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The accuracy differences B - A of each resample of the reviews, and the AUC differences
    (NaN without an AUC)."""
    n = len(gain)

    def differences(counts: np.ndarray, *_) -> tuple[np.ndarray, np.ndarray]:
        if auc is None:
            return counts @ gain / n, np.full(len(counts), np.nan)
        resampled_a, resampled_b = auc(counts)
        return counts @ gain / n, resampled_b - resampled_a

    chunks = _over_resamples(n, resamples, seed, differences)
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks])


def _interval(values: np.ndarray) -> tuple[float, float]:
    """The central 95% of the resampled values (those that are defined: a resample holding one
    class only has no AUC)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return (float("nan"), float("nan"))
    low, high = np.quantile(finite, [ALPHA / 2, 1 - ALPHA / 2])
    return (float(low), float(high))


def compare(a: Predictions, b: Predictions, *, resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    """B against A on the same reviews; UserError if they are not the same reviews."""
    _same_reviews([a, b], ["A", "B"])
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
    only_a, only_b = int((gain == -1).sum()), int((gain == 1).sum())
    return Comparison(
        reviews=n,
        accuracy_a=float(right_a.mean()),
        accuracy_b=float(right_b.mean()),
        accuracy_difference=(only_b - only_a) / n,
        accuracy_ci=_interval(accuracy_differences),
        only_a_right=only_a,
        only_b_right=only_b,
        mcnemar_p=mcnemar_exact(only_a, only_b),
        auc_a=point_auc_a,
        auc_b=point_auc_b,
        auc_difference=point_auc_b - point_auc_a,
        auc_ci=_interval(auc_differences),
        resamples=resamples,
        seed=seed,
    )


def _same_reviews(runs: list[Predictions], names: list[str]) -> None:
    for name, run in zip(names[1:], runs[1:]):
        if run.digest != runs[0].digest:
            raise UserError(
                f"{names[0]} and {name} were not evaluated on the same reviews (labels and review ids "
                f"differ: digest {runs[0].digest} against {run.digest}): compare runs of one dataset and split"
            )


def compare_groups(
    a: list[Predictions], b: list[Predictions], *, resamples: int = RESAMPLES, seed: int = SEED
) -> GroupComparison:
    """Configuration B (its runs) against configuration A (its runs) on the same reviews: the
    difference of the mean single-run accuracies, with a 95% two-level bootstrap interval. Each
    resample draws len(a) of A's runs and len(b) of B's with replacement and the reviews once
    (the same for every run), and takes B's drawn mean minus A's. UserError if any two runs
    scored different reviews."""
    runs = [*a, *b]
    _same_reviews(runs, [f"A's run {i + 1}" for i in range(len(a))] + [f"B's run {i + 1}" for i in range(len(b))])
    n = len(runs[0].label)
    if n == 0:
        raise UserError("the runs' predictions hold no reviews: nothing to compare")
    labels = runs[0].label.astype(bool)
    right = np.array([(run.probability >= 0.5) == labels for run in runs], dtype=np.float32)  # (runs, reviews)
    accuracies = right.mean(axis=1, dtype=np.float64)
    auc = _ResampledAuc(labels, *(run.probability for run in runs)) if labels.any() and not labels.all() else None
    if auc:
        right = right[:, auc.layout]  # resample counts are over the reviews in the AUC's layout
        point_aucs = [float(x[0]) for x in auc(np.ones((1, n), dtype=np.float64))]
    else:
        point_aucs = [float("nan")] * len(runs)
    sign = np.r_[-np.ones(len(a)), np.ones(len(b))]

    auc_share = GROUP_AUC_RESAMPLES / resamples  # of each stream, the leading part that scores AUC too

    def differences(counts: np.ndarray, rng: np.random.Generator, place: float) -> tuple[np.ndarray, np.ndarray]:
        # Each row's weights: -1/len(a) per draw of each of A's runs, +1/len(b) per draw of B's,
        # so a row sums to B's drawn mean minus A's.
        weights = sign * np.hstack(
            [
                rng.multinomial(len(side), np.full(len(side), 1 / len(side)), size=len(counts)) / len(side)
                for side in (a, b)
            ]
        )
        accuracy = ((counts @ right.T) / n * weights).sum(axis=1)
        with_auc = auc is not None and place < auc_share
        return accuracy, ((np.column_stack(auc(counts)) * weights).sum(axis=1) if with_auc else None)

    chunks = _over_resamples(n, resamples, seed, differences)
    accuracy_differences = np.concatenate([c[0] for c in chunks])
    auc_differences = np.concatenate([c[1] for c in chunks if c[1] is not None] or [np.full(1, np.nan)])
    p = min(1.0, 2 * min(float(np.mean(accuracy_differences <= 0)), float(np.mean(accuracy_differences >= 0))))

    def ensemble(side: list[Predictions]) -> float:
        return float(np.mean((np.mean([run.probability for run in side], axis=0) >= 0.5) == labels))

    return GroupComparison(
        reviews=n,
        accuracies_a=tuple(map(float, accuracies[: len(a)])),
        accuracies_b=tuple(map(float, accuracies[len(a) :])),
        accuracy_ci=_interval(accuracy_differences),
        p=p,
        aucs_a=tuple(point_aucs[: len(a)]),
        aucs_b=tuple(point_aucs[len(a) :]),
        auc_ci=_interval(auc_differences),
        ensemble_accuracy_a=ensemble(a),
        ensemble_accuracy_b=ensemble(b),
        resamples=resamples,
        seed=seed,
    )


def summary(c: Comparison) -> str:
    """One line: the difference in points, its interval and the test."""
    low, high = c.accuracy_ci
    return (
        f"B - A {100 * c.accuracy_difference:+.2f} points, 95% CI [{100 * low:+.2f}, {100 * high:+.2f}], "
        f"McNemar p = {c.mcnemar_p:.3g}"
    )

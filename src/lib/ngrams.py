"""The n-gram models: NB-weighted logistic regression on binarized n-grams (Wang & Manning
2012) and TF-IDF + logistic regression, as scikit-learn pipelines from raw text to probability.
The baseline stage fits one as its bar; a distillation teacher (src.lib.distillation) fits one
per fold."""

from __future__ import annotations

import numpy as np

from src.lib import config
from src.lib.text import standardize


class LogCountRatio:
    """Scales binary n-gram features by r = log((p / |p|_1) / (q / |q|_1)), p and q the
    alpha-smoothed counts of each n-gram in positive and negative training reviews: an n-gram
    only positive reviews hold weighs positive, one both hold about zero."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def fit(self, x, y):
        y = np.asarray(y)
        p = self.alpha + np.asarray(x[y == 1].sum(axis=0)).ravel()
        q = self.alpha + np.asarray(x[y == 0].sum(axis=0)).ravel()
        self.ratio_ = np.log((p / p.sum()) / (q / q.sum())).astype(np.float32)
        return self

    def transform(self, x):
        return x.multiply(self.ratio_).tocsr()

    def fit_transform(self, x, y):
        return self.fit(x, y).transform(x)


def fitted(b: config.BaselineConfig, texts: list[str], labels: np.ndarray):
    """A scikit-learn pipeline (raw text -> probability) fitted on these reviews as the baseline
    config says."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    words = {
        "tokenizer": standardize,
        "token_pattern": None,
        "lowercase": False,
        "ngram_range": (1, b.ngram_max),
        "min_df": b.min_df,
        "dtype": np.float32,
    }
    if b.method == "nblr":
        # liblinear's dual solver: far fewer variables (reviews) than features (n-grams). It visits
        # the reviews in a random order: seeded, so every run fits the same model.
        steps = [
            CountVectorizer(binary=True, **words),
            LogCountRatio(b.nb_alpha),
            LogisticRegression(C=b.C, solver="liblinear", dual=True, max_iter=1000, random_state=0),
        ]
    else:
        steps = [TfidfVectorizer(sublinear_tf=b.sublinear_tf, **words), LogisticRegression(C=b.C, max_iter=1000)]
    return make_pipeline(*steps).fit(texts, labels)

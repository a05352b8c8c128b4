"""Two models' probabilities averaged with one weight chosen on validation: the blend stage's
rule (an LSTM with the baseline), and a distillation teacher's (src.lib.distillation).

    p = w * p_a + (1 - w) * p_b,  w from 0 to 1 in steps of about `step`
"""

from __future__ import annotations

import numpy as np

from src.lib import evaluation, predictions
from src.lib.errors import UserError


def choose_weight(lstm: predictions.Predictions, baseline: predictions.Predictions, step: float) -> float:
    """The LSTM's weight with the highest accuracy on these (validation) predictions, the lower
    log loss among equals, the smaller weight among exact equals."""
    if lstm.digest != baseline.digest:
        raise UserError(
            "the LSTM's and the baseline's validation predictions are of different reviews: "
            "re-run both on one split (`dvc repro`)"
        )
    y = lstm.label.astype(np.float64)
    weights = np.linspace(0, 1, round(1 / step) + 1)  # both ends: each model alone is a candidate
    scores = []
    for w in weights:
        p = w * lstm.probability + (1 - w) * baseline.probability
        scores.append((-float(np.mean((p >= evaluation.THRESHOLD) == lstm.label)), evaluation.log_loss(y, p)))
    return float(weights[min(range(len(weights)), key=lambda i: scores[i])])


def blended(lstm: predictions.Predictions, baseline: predictions.Predictions, weight: float) -> predictions.Predictions:
    if lstm.digest != baseline.digest:
        raise UserError(
            "the LSTM's and the baseline's test predictions are of different reviews: "
            "re-run both on one split (`dvc repro`)"
        )
    p = (weight * lstm.probability + (1 - weight) * baseline.probability).astype(np.float32)
    return predictions.Predictions(p, lstm.label, lstm.review_id)

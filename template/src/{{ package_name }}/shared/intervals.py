"""Bootstrap confidence intervals for the policy's metrics, vectorised and seeded.

Each split's rows are resampled with replacement :data:`RESAMPLES` times
(stratified by class for classification: every resample keeps each class's
row count), each metric is computed on every resample, and the interval is
the central :data:`CONFIDENCE` share of those values (the percentile
bootstrap). The seed is the project's (``seed`` in ``params.yaml``), so a
rerun writes the same intervals to the last bit and ``make verify`` passes.

No resample is ever materialised. Resampling ``n`` rows of which ``k`` fall
in some group puts ``Binomial(n, k / n)`` rows of that group in the resample,
so what the metrics need is drawn directly as counts:

- a classifier's labels: per actual class, the counts of each predicted
  class (a multinomial draw per class; exact);
- a binary classifier's scores: per class, the counts in each of at most
  :data:`MAX_GROUPS` score bins, the decision threshold a bin edge (exact for
  recall, precision, F1 and balanced accuracy; exact for ROC AUC and
  average precision while the split has at most that many distinct scores,
  within a bin's width beyond, the bins' bias removed by centring the
  interval on the exact value);
- a regressor's errors: the rows, in an order drawn once, fall into at most
  :data:`MAX_GROUPS` blocks that are resampled whole (exact while the split
  has at most that many rows; a block bootstrap of exchangeable rows beyond).

The cost grows with ``RESAMPLES * MAX_GROUPS``, not with the rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
MAX_GROUPS = 500

# A metric's interval: its low and high ends.
Interval = tuple[float, float]
# The project's seed and the split's place among the measured ones.
Seed = tuple[int, ...]
# Rows per score bin, bins by rising score (one row per resample).
Counts = np.ndarray


def _ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """``top / bottom``, 0 where ``bottom`` is 0 (scikit-learn's ``zero_division=0``)."""
    return np.divide(top, bottom, out=np.zeros(np.broadcast(top, bottom).shape), where=bottom != 0)


def interval(
    replicates: np.ndarray, exact: float, full: float, confidence: float = CONFIDENCE
) -> Interval:
    """The percentile interval of ``replicates``, moved by ``exact - full``.

    ``full`` is the metric computed the replicates' way on all the rows; where
    that way is exact the move is nil, where it bins it removes the bins' bias.
    """
    tail = (1 - confidence) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return float(low + exact - full), float(high + exact - full)


def _binary_metrics(
    positives: Counts, negatives: Counts, above: np.ndarray
) -> dict[str, np.ndarray]:
    n_pos = positives.sum(axis=-1)
    n_neg = negatives.sum(axis=-1)
    hits = positives[..., above].sum(axis=-1)
    false_alarms = negatives[..., above].sum(axis=-1)
    recall = _ratio(hits, n_pos)
    # Ranking metrics walk the bins from the highest score down.
    pos_down = positives[..., ::-1]
    neg_down = negatives[..., ::-1]
    hits_so_far = np.cumsum(pos_down, axis=-1)
    flagged_so_far = hits_so_far + np.cumsum(neg_down, axis=-1)
    precision_at = _ratio(hits_so_far, flagged_so_far)
    negatives_below = np.cumsum(negatives, axis=-1) - negatives
    ranked_above = (positives * (negatives_below + negatives / 2)).sum(axis=-1)
    return {
        "recall": recall,
        "precision": _ratio(hits, hits + false_alarms),
        "f1": _ratio(2 * hits, 2 * hits + false_alarms + (n_pos - hits)),
        "roc_auc": _ratio(ranked_above, n_pos * n_neg),
        "average_precision": _ratio((pos_down * precision_at).sum(axis=-1), n_pos),
        "balanced_accuracy": (recall + _ratio(n_neg - false_alarms, n_neg)) / 2,
    }


def binary(
    positive: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    exact: Mapping[str, float],
    seed: Seed,
) -> dict[str, Interval]:
    """Intervals of a binary classifier's metrics, from each row's class and score.

    ``positive`` says which rows are of the positive class; ``exact`` holds
    the metrics measured on all the rows. A split without both classes has
    no intervals: its ranking metrics are undefined.
    """
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return {}
    distinct, inverse = np.unique(scores, return_inverse=True)
    rank = inverse if distinct.size <= MAX_GROUPS else inverse * MAX_GROUPS // distinct.size
    # The threshold is a bin edge: rows above it never share a bin with rows below.
    _, bins = np.unique(rank * 2 + (scores >= threshold), return_inverse=True)
    size = int(bins.max()) + 1
    pos_counts = np.bincount(bins[positive], minlength=size)
    neg_counts = np.bincount(bins[~positive], minlength=size)
    above = np.zeros(size, dtype=bool)
    above[bins[scores >= threshold]] = True
    rng = np.random.default_rng(seed)
    resampled = _binary_metrics(
        rng.multinomial(n_pos, pos_counts / n_pos, size=RESAMPLES),
        rng.multinomial(n_neg, neg_counts / n_neg, size=RESAMPLES),
        above,
    )
    full = _binary_metrics(pos_counts[None, :], neg_counts[None, :], above)
    return {
        name: interval(values, exact[name], float(full[name][0]))
        for name, values in resampled.items()
        if name in exact
    }


def _class_metrics(matrices: np.ndarray, actual: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics of confusion matrices (..., actual, predicted) as scikit-learn computes them.

    Macro averages run over the labels that are actual or predicted; balanced
    accuracy over the actual classes only (``actual`` marks them).
    """
    hits = np.diagonal(matrices, axis1=-2, axis2=-1)
    support = matrices.sum(axis=-1)
    predicted = matrices.sum(axis=-2)
    recall = _ratio(hits, support)
    precision = _ratio(hits, predicted)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "f1_macro": f1.mean(axis=-1),
        "balanced_accuracy": recall[..., actual].mean(axis=-1),
        "accuracy": _ratio(hits.sum(axis=-1), support.sum(axis=-1)),
        "recall_macro": recall.mean(axis=-1),
        "precision_macro": precision.mean(axis=-1),
    }


def multiclass(
    target: np.ndarray, predicted: np.ndarray, exact: Mapping[str, float], seed: Seed
) -> dict[str, Interval]:
    """Intervals of a multiclass classifier's metrics, from each row's true and predicted label."""
    labels, codes = np.unique(np.concatenate([target, predicted]), return_inverse=True)
    actual_codes, predicted_codes = codes[: len(target)], codes[len(target) :]
    size = labels.size
    matrix = np.bincount(actual_codes * size + predicted_codes, minlength=size * size)
    matrix = matrix.reshape(size, size)
    support = matrix.sum(axis=1)
    rng = np.random.default_rng(seed)
    resampled = np.zeros((RESAMPLES, size, size), dtype=np.int64)
    for label in np.flatnonzero(support):
        resampled[:, label, :] = rng.multinomial(
            support[label], matrix[label] / support[label], size=RESAMPLES
        )
    actual = support > 0
    replicated = _class_metrics(resampled, actual)
    full = _class_metrics(matrix[None, :, :], actual)
    return {
        name: interval(values, exact[name], float(full[name][0]))
        for name, values in replicated.items()
        if name in exact
    }


def _regression_metrics(sums: np.ndarray) -> dict[str, np.ndarray]:
    """rmse, mae and r2 from sums of (rows, squared errors, absolute errors, y, y squared)."""
    rows, squared, absolute, total, total_squared = np.moveaxis(sums, -1, 0)
    spread = total_squared - _ratio(total**2, rows)
    return {
        "rmse": np.sqrt(_ratio(squared, rows)),
        "mae": _ratio(absolute, rows),
        "r2": 1 - _ratio(squared, spread),
    }


def regression(
    target: np.ndarray, predicted: np.ndarray, exact: Mapping[str, float], seed: Seed
) -> dict[str, Interval]:
    """Intervals of a regressor's metrics, from each row's actual and predicted value."""
    target = np.asarray(target, dtype=np.float64)
    errors = np.asarray(predicted, dtype=np.float64) - target
    if target.size < 2:
        return {}
    rng = np.random.default_rng(seed)
    groups = min(target.size, MAX_GROUPS)
    block = rng.permutation(target.size) % groups
    columns = (np.ones_like(target), errors**2, np.abs(errors), target, target**2)
    sums = np.stack([np.bincount(block, weights=column, minlength=groups) for column in columns])
    weights = rng.multinomial(groups, np.full(groups, 1 / groups), size=RESAMPLES)
    replicated = _regression_metrics(weights @ sums.T)
    full = _regression_metrics(sums.sum(axis=1))
    return {
        name: interval(values, exact[name], float(full[name]))
        for name, values in replicated.items()
        if name in exact
    }

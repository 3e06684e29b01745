"""Feature evidence: which raw columns the model leans on, and which look like leaks.

Two measures per raw feature column, both on the validation split, both seeded:

- **Permutation importance**: how much the model's score drops when the
  column's values are shuffled across rows (scikit-learn's
  ``permutation_importance``, through the inference pipeline (preprocessor and model),
  so a one-hot encoded column is shuffled as one).
- **Alone**: how well the column predicts the target on its own. Each value
  (a category, or one of :data:`BINS` quantile bins of a number, blanks a
  value of their own) is mapped to the target's mean over the training rows
  that hold it; that mapping is scored on the validation rows. A feature
  that alone predicts the target almost perfectly is a probable leak (an id,
  a field filled in after the event, a transform of the target), which the
  metrics policy's ``leak_check`` refuses until the column is excluded or
  allowed with a reason (:func:`..policy.check_leaks`).

Each reads at most :data:`IMPORTANCE_ROWS` or :data:`ALONE_ROWS` rows of a
split, drawn with the seed, so their cost does not grow with the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype
from sklearn.inspection import permutation_importance

# Rows of a split each measure reads at most: shuffling a column means running
# the preprocessor and the model again, scoring a column alone is cheap.
IMPORTANCE_ROWS = 5_000
ALONE_ROWS = 20_000
REPEATS = 5
BINS = 100
# How a column alone is scored: the target's values, the mapped column, and
# what each of its columns stands for (the classes, or the positive class).
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
# The target as numbers to average per value, and what each column stands for.
Encoder = Callable[[pd.Series], tuple[np.ndarray, np.ndarray]]


def sample(frame: pd.DataFrame, seed: int, limit: int) -> pd.DataFrame:
    """At most ``limit`` rows of ``frame``, drawn with ``seed`` (all of them if fewer)."""
    if len(frame) <= limit:
        return frame
    rows = np.sort(np.random.default_rng(seed).choice(len(frame), limit, replace=False))
    return frame.iloc[rows]


def importances(
    model: Any,
    validation: pd.DataFrame,
    features: list[str],
    target: str,
    scoring: Any,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Each raw feature's permutation importance on ``validation``: its mean and spread.

    ``model`` takes raw rows (the inference pipeline). The drop of ``scoring``
    (a scikit-learn scorer or its name) when the column is shuffled, over
    :data:`REPEATS` shuffles; most important first.
    """
    rows = sample(validation, seed, IMPORTANCE_ROWS)
    found = permutation_importance(
        model,
        rows[features],
        rows[target],
        scoring=scoring,
        n_repeats=REPEATS,
        random_state=seed,
    )
    means, spreads = found["importances_mean"], found["importances_std"]
    order = sorted(range(len(features)), key=lambda index: (-means[index], features[index]))
    return {
        features[index]: {"mean": float(means[index]), "std": float(spreads[index])}
        for index in order
    }


def _codes(train: pd.Series, other: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The column's values as codes shared by both splits, blanks and unseen values -1.

    Text and numbers with at most :data:`BINS` distinct values are coded by
    value (a value ``train`` lacks is unseen); other numbers by which of
    :data:`BINS` quantile bins of ``train`` they fall in.
    """
    numbers = train.to_numpy(dtype=float) if is_numeric_dtype(train) else None
    if numbers is not None and np.unique(numbers[~np.isnan(numbers)]).size > BINS:
        edges = np.unique(np.nanquantile(numbers, np.linspace(0, 1, BINS + 1)))
        inner = edges[1:-1]

        def code(values: pd.Series) -> np.ndarray:
            found = values.to_numpy(dtype=float)
            return np.where(np.isnan(found), -1, np.searchsorted(inner, found, side="right"))

        return code(train), code(other)
    categories = pd.Index(train.dropna().unique())
    return categories.get_indexer(train), categories.get_indexer(other)


def alone(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    features: list[str],
    target: str,
    encode: Encoder,
    score: Scorer,
    seed: int,
) -> dict[str, float]:
    """How well each feature alone predicts the target on ``validation``, best first.

    ``encode`` turns the target into the numbers whose mean per value is the
    prediction (the positive class as 1, or one column per class); ``score``
    scores that prediction against the validation target.
    """
    train = sample(train, seed, ALONE_ROWS)
    validation = sample(validation, seed, ALONE_ROWS)
    encoded, labels = encode(train[target])
    encoded = encoded.reshape(len(train), -1)
    overall = encoded.mean(axis=0)
    found = {}
    for column in features:
        seen, unseen = _codes(train[column], validation[column])
        size = int(max(seen.max(initial=0), unseen.max(initial=0))) + 2
        counts = np.bincount(seen + 1, minlength=size)
        sums = np.stack(
            [np.bincount(seen + 1, weights=part, minlength=size) for part in encoded.T], axis=1
        )
        means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], overall)
        predicted = means[unseen + 1]
        if predicted.shape[1] == 1:
            predicted = predicted[:, 0]
        found[column] = float(score(validation[target].to_numpy(), predicted, labels))
    return dict(sorted(found.items(), key=lambda item: (-item[1], item[0])))

"""Slices: the test split measured per value of the columns ``data.slices`` names.

A model can meet the policy overall and fail one region. The evaluate stage
measures every policy metric, with its bootstrap interval, on the rows of
each value of each slice column (``region=north``), with the same code as
for the whole split, and writes them to ``reports/slices.json``; the gate
checks the policy's slice floor on each slice with enough rows.

A slice on which a metric is undefined (a binary slice without a positive
row) is written with the reason, never as a number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from .intervals import Interval

# Values of one column measured at most; rarer values share one slice.
MAX_VALUES = 20
OTHER = "(other values)"
MISSING_VALUE = "(missing)"
# The metrics of some rows and their intervals, or why they are undefined there.
Measure = Callable[
    [np.ndarray, tuple[int, ...]], "tuple[dict[str, float], dict[str, Interval]] | str"
]


def groups(values: pd.Series) -> Iterator[tuple[str, np.ndarray]]:
    """Each value of a slice column and the rows that hold it, the most frequent first.

    Blanks are a slice of their own; past :data:`MAX_VALUES` values, the
    rarest share one slice, :data:`OTHER`.
    """
    labels = values.astype("string").fillna(MISSING_VALUE).to_numpy(dtype=object)
    counts = pd.Series(labels).value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    kept = [str(label) for label, _ in ordered[:MAX_VALUES]]
    for label in kept:
        yield label, np.flatnonzero(labels == label)
    rest = np.flatnonzero(~np.isin(labels, kept))
    if rest.size:
        yield OTHER, rest


def measure_slices(columns: pd.DataFrame, measure: Measure, seed: int) -> dict[str, Any]:
    """Every slice of ``columns`` (the test rows' slice columns) measured with ``measure``.

    ``measure`` takes the positions of a slice's rows and a seed; it returns
    the metrics and their intervals, or the reason they are undefined.
    Returns ``reports/slices.json``'s content: column, then value, then the
    slice's row count and its metrics and intervals (or ``undefined``).
    """
    found: dict[str, Any] = {}
    for position, column in enumerate(columns.columns):
        found[column] = {}
        for index, (value, rows) in enumerate(groups(columns[column])):
            measured = measure(rows, (seed, position, index))
            entry: dict[str, Any] = {"rows": int(rows.size)}
            if isinstance(measured, str):
                entry["undefined"] = measured
            else:
                metrics, ends = measured
                entry["metrics"] = metrics
                entry["intervals"] = {
                    name: {"low": low, "high": high} for name, (low, high) in ends.items()
                }
            found[column][value] = entry
    return found

"""The raw columns as the training split has them: ranges, categories, gaps.

The prepare stage learns this schema from the training split it writes and
commits it as ``reports/schema.json`` (the data card shows it); it then
checks the validation and test splits against it, and so can any later batch
of rows: values beyond a numeric column's training range, categories the
training rows never had, and a column's share of blanks, each named with
its count. Such rows are not refused (the preprocessor handles unseen
categories, a model extrapolates numbers): they are reported, because a
model is only known to work on data like its training data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd
from pandas.api.types import is_numeric_dtype

from .display import listing

# Categories a schema keeps per column at most (the most frequent): an id-like
# text column would otherwise make the file as long as the table.
MAX_CATEGORIES = 200
DIGITS = 6


def learn(train: pd.DataFrame, columns: list[str]) -> dict[str, Any]:
    """The schema of ``columns`` of the training split: one entry per column."""
    found: dict[str, Any] = {}
    for column in columns:
        values = train[column]
        entry: dict[str, Any] = {
            "missing_share": round(float(values.isna().mean()), DIGITS) if len(values) else 0.0
        }
        present = values.dropna()
        if is_numeric_dtype(values):
            entry["kind"] = "numeric"
            entry["min"] = float(present.min()) if len(present) else None
            entry["max"] = float(present.max()) if len(present) else None
        else:
            counts = present.astype(str).value_counts()
            entry["kind"] = "categorical"
            kept = sorted(counts.index[:MAX_CATEGORIES].tolist())
            entry["categories"] = kept
            entry["more_categories"] = int(max(len(counts) - MAX_CATEGORIES, 0))
        found[column] = entry
    return found


def departures(rows: pd.DataFrame, learned: Mapping[str, Any]) -> Iterator[str]:
    """How ``rows`` depart from the learned schema, one sentence per column that does."""
    for column, entry in learned.items():
        if column not in rows.columns:
            yield f"{column} is missing"
            continue
        values = rows[column].dropna()
        if entry["kind"] == "numeric" and entry["min"] is not None and len(values):
            numbers = pd.to_numeric(values, errors="coerce")
            below = int((numbers < entry["min"]).sum())
            above = int((numbers > entry["max"]).sum())
            if below or above:
                yield (
                    f"{column}: {rows_text(below + above)} outside the training range "
                    f"[{entry['min']:g}, {entry['max']:g}]"
                )
        elif entry["kind"] == "categorical" and not entry.get("more_categories"):
            unseen = values.astype(str)[~values.astype(str).isin(entry["categories"])]
            if len(unseen):
                names = listing(repr(name) for name in sorted(unseen.unique()))
                yield (
                    f"{column}: {rows_text(len(unseen))} with categories training never had "
                    f"({names})"
                )


def rows_text(count: int) -> str:
    """``1 row``, ``3 rows``."""
    return f"{count} row" if count == 1 else f"{count} rows"

"""Drift: how far a batch of rows has moved from the rows a model was trained on.

The evaluate stage keeps a *profile* of the training split inside the
inference pipeline (:func:`profile`, read back with :func:`reference`): per
numeric column the bin edges at the training split's deciles and the share
of rows in each bin, per categorical column each category's share, and per
column the share of missing values; and of the test split, the same for the
pipeline's scores and each decision's share. No training row is kept, only
these shares, so the model file carries no row of its data.

``make monitor`` counts a batch into the same bins, chunk by chunk
(:class:`Counter`), so memory stays flat on big files, and compares the
shares with the population stability index (:func:`psi`): a drift score that
does not grow with the batch's size, unlike a test's p-value, which flags a
negligible shift on a million rows. By the usual reading, below 0.1 is no
shift, 0.1 to 0.25 a moderate one, above 0.25 a major one; the policy's
``monitoring`` section sets where an alert fires. The index is SciPy's
relative entropy in both directions (``scipy.special.rel_entr``), with every
share floored at :data:`FLOOR` so that an empty bin does not make it infinite.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import rel_entr

# The reference's bins for a numeric column: its deciles.
BINS = 10
# A share below this counts as this (an empty bin would make the index infinite).
FLOOR = 1e-4
# Categories other than the training split's are counted in this bin.
NEW = "(new)"


def edges(values: pd.Series) -> list[float]:
    """The inner bin edges of a numeric column: its distinct deciles (ties merge bins)."""
    found = values.dropna().to_numpy(dtype=float)
    if not found.size:
        return []
    cuts = np.quantile(found, np.linspace(0, 1, BINS + 1)[1:-1])
    return sorted({float(cut) for cut in cuts})


def numeric_counts(values: pd.Series, cuts: list[float]) -> np.ndarray:
    """How many non-missing ``values`` fall in each bin (``x <= cut`` goes left)."""
    found = values.dropna().to_numpy(dtype=float)
    bins = np.searchsorted(np.asarray(cuts, dtype=float), found, side="left")
    return np.bincount(bins, minlength=len(cuts) + 1)


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (all zero when there are none)."""
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def psi(expected: np.ndarray | list[float], actual: np.ndarray | list[float]) -> float:
    """The population stability index of ``actual`` shares against ``expected`` ones."""
    before = np.maximum(np.asarray(expected, dtype=float), FLOOR)
    after = np.maximum(np.asarray(actual, dtype=float), FLOOR)
    return float(np.sum(rel_entr(after, before) + rel_entr(before, after)))


def missing_share(values: pd.Series) -> float:
    """The share of missing values (NaN, blank)."""
    return float(values.isna().mean()) if len(values) else 0.0


def column_profile(values: pd.Series, kind: str) -> dict[str, Any]:
    """One column's profile: its bins' or categories' shares, and its share of missing values."""
    if kind == "numeric":
        cuts = edges(values)
        present = values.dropna().to_numpy(dtype=float)
        return {
            "kind": kind,
            "edges": cuts,
            "shares": shares(numeric_counts(values, cuts)).tolist(),
            "missing": missing_share(values),
            "mean": float(present.mean()) if present.size else 0.0,
            "std": float(present.std()) if present.size else 0.0,
        }
    counts = values.dropna().astype(str).value_counts()
    total = int(counts.sum())
    return {
        "kind": kind,
        "categories": {
            str(name): int(count) / total for name, count in sorted(counts.items(), key=str)
        },
        "missing": missing_share(values),
    }


def profile(train: pd.DataFrame, columns: Mapping[str, str], test: pd.DataFrame) -> dict[str, Any]:
    """The reference a batch is compared with: the training split's columns, the test's outputs.

    ``train`` holds the raw feature ``columns`` (name to ``numeric`` or
    ``categorical``); ``test`` the pipeline's outputs on the test split (its
    ``score`` or ``prediction``, and its ``decision``).
    """
    outputs: dict[str, Any] = {}
    for name in ("score", "prediction"):
        if name in test:
            outputs[name] = column_profile(test[name], "numeric")
    if "decision" in test:
        outputs["decision"] = column_profile(test["decision"], "categorical")
    return {
        "rows": len(train),
        "columns": {name: column_profile(train[name], kind) for name, kind in columns.items()},
        "outputs": outputs,
        "test_rows": len(test),
    }


def reference(model: Any) -> dict[str, Any] | None:
    """The profile the evaluate stage kept in ``model`` (None for a model made before it)."""
    holder = getattr(model, "estimator", model)  # inside a threshold wrapper, or not
    return getattr(holder, "reference_", None)


def keep(model: Any, found: dict[str, Any]) -> None:
    """Keep the profile ``found`` in ``model``, where :func:`reference` reads it."""
    holder = getattr(model, "estimator", model)
    holder.__dict__["reference_"] = found


@dataclass
class Counter:
    """A batch's counts in a profile's bins, added to one chunk at a time."""

    profile: Mapping[str, Any]
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, values: pd.Series, name: str) -> None:
        """Count one chunk of one column (a feature, or an output) into its bins."""
        known = self.profile[name]
        self.missing[name] = self.missing.get(name, 0) + int(values.isna().sum())
        if known["kind"] == "numeric":
            found = numeric_counts(values, known["edges"])
            self.counts[name] = self.counts.get(name, 0) + found
            self.sums[name] = self.sums.get(name, 0.0) + float(values.dropna().sum())
            return
        held = self.categories.setdefault(name, {})
        for category, count in values.dropna().astype(str).value_counts().items():
            held[str(category)] = held.get(str(category), 0) + int(count)

    def compare(self, name: str) -> dict[str, Any]:
        """How column ``name`` of the batch compares with its profile.

        ``psi`` over the bins (for a categorical column, the categories and
        one bin for those the reference lacks), ``missing`` and the
        reference's ``missing_before``; a numeric column's mean and its shift
        in the reference's standard deviations; a categorical column's new
        categories, most frequent first, and their ``new_share``.
        """
        known = self.profile[name]
        missing = self.missing.get(name, 0)
        found: dict[str, Any] = {"missing_before": known["missing"]}
        if known["kind"] == "numeric":
            counts = self.counts.get(name, np.zeros(len(known["shares"]), dtype=int))
            present = int(counts.sum())
            found["missing"] = missing / max(missing + present, 1)
            mean = self.sums.get(name, 0.0) / present if present else 0.0
            spread = known["std"] or 1.0
            found.update(
                psi=psi(known["shares"], shares(counts)) if present else 0.0,
                mean=mean,
                mean_before=known["mean"],
                shift_sd=(mean - known["mean"]) / spread if present else 0.0,
            )
            return found
        held = self.categories.get(name, {})
        total = sum(held.values())
        found["missing"] = missing / max(missing + total, 1)
        before = dict(known["categories"])
        new = {category: count for category, count in held.items() if category not in before}
        after = [held.get(category, 0) / total if total else 0.0 for category in before]
        new_share = sum(new.values()) / total if total else 0.0
        found.update(
            psi=psi([*before.values(), 0.0], [*after, new_share]) if total else 0.0,
            new_share=new_share,
            new_categories=[
                category
                for category, _ in sorted(new.items(), key=lambda item: (-item[1], item[0]))
            ][:5],
        )
        return found

    def share_of(self, name: str) -> dict[str, float]:
        """Each category's share of a categorical column of the batch (decisions, say)."""
        held = self.categories.get(name, {})
        total = sum(held.values())
        return (
            {category: count / total for category, count in sorted(held.items())} if total else {}
        )

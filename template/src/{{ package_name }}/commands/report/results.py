"""Results as the report reads them: the workspace's or a git ref's, each metric beside the policy.

The evaluate stage writes the numbers (``reports/metrics.json``), the run's
record (``reports/run.json``) and the tables behind the curves
(``reports/plots/*.csv``). The plots are committed (``cache: false`` in
``dvc.yaml``), so a baseline's are read with ``git show REF:reports/...``,
like its metrics. Pass or fail is the gate's own verdict
(:func:`checks.evaluate_policy`), never a second reading of the thresholds.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ...shared import checks, policy, records
from ...shared.git import show_file
from ...shared.paths import FEATURES_PATH, METRICS_PATH, PLOTS_PATH, PROJECT_ROOT, SLICES_PATH

if TYPE_CHECKING:
    from ...shared.intervals import Interval

SPLITS = ("validation", "test")
# The files the evaluate stage writes beside the metrics, which the gate reads too.
BESIDE_PATHS = (SLICES_PATH, FEATURES_PATH)
# The tables the evaluate stage writes to reports/plots/ (each problem type some of them).
PLOT_NAMES = ("precision_recall", "roc", "confusion_matrix", "predictions")


@dataclass(frozen=True)
class Results:
    """One set of results: the workspace's, or those committed at a ref."""

    label: str
    metrics: dict[str, dict[str, float]]  # split -> metric -> value
    record: dict[str, Any]  # reports/run.json ({} when there is none)
    plots: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table
    # split -> metric -> bootstrap interval, and split -> metric -> the dummy baseline's value
    intervals: dict[str, dict[str, Interval]] = field(default_factory=dict)
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    slices: dict[str, Any] = field(default_factory=dict)  # reports/slices.json
    features: dict[str, Any] = field(default_factory=dict)  # reports/features.json


@dataclass(frozen=True)
class Row:
    """One metric of the results, with its policy rule and verdict when it has one."""

    name: str
    role: str  # primary, guardrail, baseline, or "" for a metric the policy does not judge
    values: dict[str, float]  # split -> value (absent when the split lacks it)
    check: checks.Check | None  # the gate's verdict on the test split
    intervals: dict[str, Interval] = field(default_factory=dict)  # split -> interval
    baseline: dict[str, float] = field(default_factory=dict)  # split -> the dummy's value


@dataclass(frozen=True)
class Part:
    """One part of where results come from, as words and a name to show as code."""

    words: str
    code: str = ""
    after: str = ""


# ------------------------------------------------------------------ reading


def _parse(
    metrics_text: str | None,
    record_text: str | None,
    plots: dict[str, str],
    label: str,
    beside: dict[str, str | None] | None = None,
) -> Results | None:
    """Results from the files' texts, or ``None`` when there are no metrics."""
    if metrics_text is None:
        return None
    metrics = {}
    for split in SPLITS:
        try:
            metrics[split] = policy.parse_metrics(metrics_text, f"{METRICS_PATH} ({label})", split)
        except policy.PolicyError:
            continue  # a split this results file does not have
    try:
        record = json.loads(record_text) if record_text else {}
    except json.JSONDecodeError:
        record = {}
    tables = {name: pd.read_csv(io.StringIO(text)) for name, text in plots.items()}
    try:
        measured = policy.parse_measured(metrics_text, label, beside=beside or {})
    except policy.PolicyError:
        measured = policy.Measured({}, {}, {})
    try:
        parsed = json.loads(metrics_text)
    except json.JSONDecodeError:
        parsed = {}
    return Results(
        label,
        metrics,
        record if isinstance(record, dict) else {},
        tables,
        {split: policy.intervals_of(parsed, split) for split in SPLITS},
        {split: policy.baseline_of(parsed, split) for split in SPLITS},
        dict(measured.slices),
        dict(measured.features),
    )


def read_workspace(root: Path = PROJECT_ROOT) -> Results | None:
    """The results in the working tree, or ``None`` before the pipeline first ran."""

    def text(path: Path) -> str | None:
        return path.read_text(encoding="utf-8") if path.is_file() else None

    plots = {name: text(root / PLOTS_PATH / f"{name}.csv") for name in PLOT_NAMES}
    return _parse(
        text(root / METRICS_PATH),
        text(root / records.RECORD_PATH),
        {name: value for name, value in plots.items() if value is not None},
        "workspace",
        {Path(path).name: text(root / path) for path in BESIDE_PATHS},
    )


def read_ref(ref: str, root: Path = PROJECT_ROOT) -> Results | None:
    """The results committed at ``ref``, labelled with it, or ``None`` when there are none.

    The revisions are those the gate tries for its baseline
    (:func:`policy.baseline_revisions`: ``origin/<ref>`` second).
    """
    for revision in policy.baseline_revisions(ref):
        metrics = show_file(root, revision, METRICS_PATH)
        if metrics is None:
            continue
        plots = {
            name: show_file(root, revision, f"{PLOTS_PATH}/{name}.csv") for name in PLOT_NAMES
        }
        found = {name: value for name, value in plots.items() if value is not None}
        record = show_file(root, revision, records.RECORD_PATH)
        beside = {Path(path).name: show_file(root, revision, path) for path in BESIDE_PATHS}
        return _parse(metrics, record, found, revision, beside)
    return None


def load_rules(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The metrics policy, read and validated by the gate's own loader."""
    return policy.load_project_policy(root)


# ------------------------------------------------------------------ verdicts


def rows(rules: dict[str, Any], results: Results) -> list[Row]:
    """Every metric of ``results``: the policy's first (with the gate's verdict), then the rest.

    The baseline rule and the slice floor are rows of their own (roles
    ``baseline`` and ``slices``), even for a metric that is also the primary
    one: each is a check of its own.
    """
    split = policy.GATE_SPLIT
    test = results.metrics.get(split, {})
    verdicts = checks.evaluate_policy(rules, test, results.intervals.get(split))
    judged = [rules["primary_metric"], *rules["guardrails"]]
    roles = ["primary"] + ["guardrail"] * len(rules["guardrails"])
    listed = [
        _row(results, rule["name"], role, check)
        for rule, role, check in zip(judged, roles, verdicts, strict=True)
    ]
    measured = policy.Measured(
        test,
        results.intervals.get(split, {}),
        results.baseline.get(split, {}),
        results.slices,
        results.features,
    )
    for check in checks.check_baseline(rules, measured):
        listed.append(_row(results, rules["baseline"]["metric"], "baseline", check))
    for check in checks.check_slices(rules, measured)[0]:
        listed.append(Row(check.label, "slices", {}, check))
    for check in checks.check_leaks(rules, measured)[0]:
        listed.append(Row(check.label, "leak check", {}, check))
    names = {row.name for row in listed}
    others = [name for split in SPLITS for name in results.metrics.get(split, {})]
    for name in dict.fromkeys(others):
        if name not in names:
            listed.append(_row(results, name, "", None))
    return listed


def _row(results: Results, name: str, role: str, check: checks.Check | None) -> Row:
    return Row(
        name,
        role,
        {split: values[name] for split, values in results.metrics.items() if name in values},
        check,
        {split: ends[name] for split, ends in results.intervals.items() if name in ends},
        {split: values[name] for split, values in results.baseline.items() if name in values},
    )


def passed(table: Sequence[Row]) -> bool:
    """Whether every check of the policy passes on the test split."""
    return all(row.check.passed for row in table if row.check is not None)


def source(results: Results) -> list[Part]:
    """Where results come from: the run, its commit and tracker."""
    record = results.record
    if not record:
        return [Part(f"no run record ({records.RECORD_PATH})")]
    parts = []
    if record.get("run_id"):
        parts.append(Part("run ", str(record["run_id"])))
    if record.get("experiment"):
        parts.append(Part("experiment ", str(record["experiment"])))
    if record.get("git_commit"):
        dirty = " with uncommitted changes" if record.get("git_dirty") else ""
        parts.append(Part("on commit ", str(record["git_commit"])[:12], dirty))
    if record.get("tracker"):
        parts.append(Part(f"tracked by {record['tracker']}"))
    return parts or [Part(f"an empty run record ({records.RECORD_PATH})")]


# ------------------------------------------------------------------ per class


def per_class(matrix: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class, from a confusion matrix.

    ``matrix`` counts rows per actual class (index) and predicted class (columns).
    """
    hits = pd.Series([matrix.loc[label, label] for label in matrix.index], index=matrix.index)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = (hits / predicted.where(predicted > 0)).fillna(0.0)
    recall = (hits / support.where(support > 0)).fillna(0.0)
    f1 = (2 * precision * recall / (precision + recall).where(precision + recall > 0)).fillna(0.0)
    return pd.DataFrame(
        {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}
    )


def confusion(table: pd.DataFrame) -> pd.DataFrame:
    """Count the ``actual``/``predicted`` rows of the evaluate stage into a square matrix."""
    labels = sorted(set(table["actual"]) | set(table["predicted"]), key=str)
    counts = pd.crosstab(table["actual"], table["predicted"])
    return counts.reindex(index=labels, columns=labels, fill_value=0)

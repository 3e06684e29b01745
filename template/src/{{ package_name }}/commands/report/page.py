"""The results as pages: the HTML report of ``make report``, and the docs' Markdown section.

The report's markup is ``page.html.j2``, beside this module (packaged with it):
this module only gathers what the page shows. The docs' section (the model
card and the metrics policy page, ``docs/hooks/``) is Markdown; its charts
are the same figures as the report's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from ...shared import checks, intervals, policy
from ...shared.display import MISSING, number
from ...shared.paths import (
    FEATURES_PATH,
    METRICS_PATH,
    REPORTS_DIR,
    SLICES_PATH,
    in_repository,
)
from .charts import Chart, charts
from .results import (
    SPLITS,
    Part,
    Results,
    Row,
    confusion,
    passed,
    per_class,
    rows,
    source,
)

TEMPLATE = "page.html.j2"


@dataclass(frozen=True)
class Compared:
    """One metric on one split: its value at the baseline and in the workspace."""

    name: str
    role: str
    check: checks.Check | None  # the gate's verdict on the workspace
    before_check: checks.Check | None  # and on the baseline
    before: float | None
    after: float | None
    interval: str = MISSING  # the workspace's bootstrap interval, as text
    dummy: float | None = None  # the workspace's dummy baseline


@dataclass(frozen=True)
class MetricsTable:
    """Every metric on one split; the split the gate judges shows the verdicts too."""

    split: str
    judged: bool
    rows: list[Compared]


@dataclass(frozen=True)
class ClassRow:
    """One class's metrics, from the confusion matrix."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class PerClass:
    """The per-class metrics of one set of results."""

    label: str
    rows: list[ClassRow]


@dataclass(frozen=True)
class ReportPage:
    """What the report shows; ``page.html.j2`` says how."""

    base_label: str
    reports_path: str
    gate_split: str
    sources: list[tuple[str, list[Part] | None]]  # label -> where its results come from
    has_base: bool
    passes: bool
    regression: checks.Check | None
    tables: list[MetricsTable]
    charts: list[Chart]
    per_class: list[PerClass]


@cache
def _template() -> Template:
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = number
    return environment.get_template(TEMPLATE, globals={"missing": MISSING})


def _macro(name: str) -> Callable[..., str]:
    """A macro of the template, to call from Python (its output is escaped markup)."""
    return getattr(_template().module, name)


# ------------------------------------------------------------------ make report


def _tables(current: list[Row], base: list[Row] | None) -> list[MetricsTable]:
    """Each split's metrics, the gate's split first, the baseline's beside the workspace's."""
    before = {row.name: row for row in base or []}
    tables = []
    for split in (policy.GATE_SPLIT, *(s for s in SPLITS if s != policy.GATE_SPLIT)):
        compared = []
        for row in current:
            old = before.get(row.name)
            compared.append(
                Compared(
                    row.name,
                    row.role,
                    row.check,
                    old.check if old else None,
                    old.values.get(split) if old else None,
                    row.values.get(split),
                    checks.interval_text(row.intervals.get(split)),
                    row.baseline.get(split),
                )
            )
        tables.append(MetricsTable(split, split == policy.GATE_SPLIT, compared))
    return tables


def _per_class(results: Results) -> PerClass:
    classes = per_class(confusion(results.plots["confusion_matrix"]))
    return PerClass(
        results.label,
        [
            ClassRow(str(label), row["precision"], row["recall"], row["f1"], int(row["support"]))
            for label, row in classes.iterrows()
        ],
    )


def report_page(
    workspace: Results, base: Results | None, base_ref: str, rules: dict[str, Any]
) -> ReportPage:
    """What the report shows: metrics side by side with the gate's verdicts, then the charts."""
    current = rows(rules, workspace)
    regression = None
    if base is not None:
        regression = checks.check_regression(
            rules,
            workspace.metrics.get(policy.GATE_SPLIT, {}),
            base.metrics.get(policy.GATE_SPLIT, {}),
            base_ref,
        )
    series = [base, workspace] if base is not None else [workspace]
    return ReportPage(
        base_label=base_ref,
        reports_path=in_repository(REPORTS_DIR),
        gate_split=policy.GATE_SPLIT,
        sources=[
            (base_ref, source(base) if base else None),
            ("workspace", source(workspace)),
        ],
        has_base=base is not None,
        passes=passed(current),
        regression=regression,
        tables=_tables(current, rows(rules, base) if base else None),
        charts=charts(series),
        per_class=[
            _per_class(results) for results in series if "confusion_matrix" in results.plots
        ],
    )


def render_html(
    workspace: Results, base: Results | None, base_ref: str, rules: dict[str, Any]
) -> str:
    """The whole report page, as ``page.html.j2`` writes it."""
    return str(_macro("report")(report_page(workspace, base, base_ref, rules)))


# ------------------------------------------------------------------ the docs


def source_text(results: Results) -> str:
    """Where results come from, in words: the run, its commit and tracker (Markdown)."""
    return ", ".join(
        f"{part.words}`{part.code}`{part.after}" if part.code else part.words + part.after
        for part in source(results)
    )


def slices_section(results: Results, rules: dict[str, Any]) -> list[str]:
    """The test split per slice (``reports/slices.json``): rows and each policy metric."""
    if not results.slices:
        return []
    names = [rules["primary_metric"]["name"], *(rule["name"] for rule in rules["guardrails"])]
    share = f"{intervals.CONFIDENCE:.0%}"
    lines = [
        "",
        f"Per slice, on the {policy.GATE_SPLIT} split (`{SLICES_PATH}`; {share} intervals):",
        "",
        "| slice | rows | " + " | ".join(f"`{name}`" for name in names) + " |",
        "| --- | --- |" + " --- |" * len(names),
    ]
    for label, entry in policy.slice_entries(results.slices):
        measured = entry.get("metrics") or {}
        ends = entry.get("intervals") or {}
        cells = []
        for name in names:
            value = measured.get(name)
            interval = ends.get(name)
            shown = number(value)
            if value is not None and isinstance(interval, dict):
                shown += f" [{number(interval.get('low'))}, {number(interval.get('high'))}]"
            cells.append(shown if value is not None else str(entry.get("undefined", MISSING)))
        lines.append(f"| `{label}` | {entry.get('rows', MISSING)} | " + " | ".join(cells) + " |")
    return lines


def evidence_section(results: Results) -> list[str]:
    """Each raw feature's permutation importance and score alone (``reports/features.json``)."""
    importance = results.features.get("importance") or {}
    alone = results.features.get("alone") or {}
    columns = importance.get("columns") or {}
    if not columns:
        return []
    scores = alone.get("columns") or {}
    lines = [
        "",
        f"Feature evidence, on the validation split (`{FEATURES_PATH}`): how much "
        f"`{importance.get('scoring', MISSING)}` drops when a column is shuffled "
        f"({importance.get('repeats', MISSING)} shuffles: mean and spread), and how well the "
        f"column alone predicts the target (`{alone.get('metric', MISSING)}`).",
        "",
        "| feature | importance | spread | alone |",
        "| --- | --- | --- | --- |",
    ]
    for column, found in columns.items():
        lines.append(
            f"| `{column}` | {number(found.get('mean'))} | {number(found.get('std'))} "
            f"| {number(scores.get(column))} |"
        )
    return lines


def markdown_section(results: Results | None, rules: dict[str, Any]) -> str:
    """The current results, in Markdown, for a docs page (the model card, the policy page)."""
    if results is None:
        return (
            f"No results yet: `{METRICS_PATH}` does not exist. Run `make repro` to "
            "train and evaluate the model, then build the docs again (`make docs`)."
        )
    table = rows(rules, results)
    verdict = "passes" if passed(table) else "**fails**"
    share = f"{intervals.CONFIDENCE:.0%}"
    lines = [
        f"From `{METRICS_PATH}`: {source_text(results)}. "
        f"On the {policy.GATE_SPLIT} split, the model {verdict} the metrics policy.",
        "",
        f"| metric | role | passes when | validation | test | {share} interval (test) "
        "| dummy baseline (test) | result (test) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table:
        bound = row.check.bound if row.check else MISSING
        result = MISSING if row.check is None else "pass" if row.check.passed else "**FAIL**"
        lines.append(
            f"| `{row.name}` | {row.role or MISSING} | {bound} | "
            f"{number(row.values.get('validation'))} | {number(row.values.get('test'))} "
            f"| {checks.interval_text(row.intervals.get('test'))} "
            f"| {number(row.baseline.get('test'))} | {result} |"
        )
    lines += slices_section(results, rules)
    lines += evidence_section(results)
    figure = _macro("figure")
    for chart in charts([results]):
        lines += ["", str(figure(chart))]
    if "confusion_matrix" in results.plots:
        classes = _per_class(results)
        lines += [
            "",
            "Per class, on the test split (from the confusion matrix):",
            "",
            "| class | precision | recall | f1 | support |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| `{row.label}` | {number(row.precision)} | {number(row.recall)} "
                f"| {number(row.f1)} | {row.support} |"
                for row in classes.rows
            ),
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------ make monitor


def render_monitoring(report: dict[str, Any]) -> str:
    """The page of ``make monitor`` for one batch (its JSON report, as written)."""
    return str(_macro("monitoring")(report))

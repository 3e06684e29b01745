"""Results as a reviewer reads them: metrics beside the policy, curves as SVG charts.

The evaluate stage writes the numbers (``reports/metrics.json``), the run's
record (``reports/run.json``) and the tables behind the curves
(``reports/plots/*.csv``); this module turns them into something to look at,
in two places that must agree:

- the docs: the model card and the metrics policy page show the current
  results at every build (``docs/hooks/``, :func:`markdown_section`);
- ``make report`` (``python -m <package>.report [--base REF]``): one
  self-contained HTML page, ``reports/report.html``, comparing the workspace
  with the results committed at a baseline ref, the curves overlaid.

Pass or fail is the gate's own verdict (:func:`policy.evaluate_policy`), never
a second reading of the thresholds. The plots are committed (``cache: false``
in ``dvc.yaml``), so a baseline's are read with ``git show REF:reports/...``.

Charts are drawn with matplotlib, imported only when a chart is drawn (the
pipeline's stages never import this module). They are deterministic (the same
data gives the same bytes), have a transparent background, and draw text and
axes in ``currentColor``: inline in a page, they take its text colour, so they
read in light and dark themes alike.
"""

from __future__ import annotations

import argparse
import html
import io
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from . import policy, runs
from .config import PROJECT_ROOT, REPORTS_DIR

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRICS_PATH = "reports/metrics.json"
PLOTS_PATH = "reports/plots"
REPORT_FILE = REPORTS_DIR / "report.html"
SPLITS = ("validation", "test")
# Colours readable on Material's light (white) and dark (slate) backgrounds.
WORKSPACE_COLOUR = "#4a90d9"
BASELINE_COLOUR = "#e8853a"
# Matplotlib draws text and axes in this colour; the SVG then says currentColor instead.
_INK = "#010203"
_FIGSIZE = (6.0, 4.0)  # inches: 432 x 288 pt
_MAX_POINTS = 1000  # a scatter plot keeps at most this many points (every n-th row)
# The tables the evaluate stage writes to reports/plots/ (each problem type some of them).
PLOT_NAMES = ("precision_recall", "roc", "confusion_matrix", "predictions")


@dataclass(frozen=True)
class Results:
    """One set of results: the workspace's, or those committed at a ref."""

    label: str
    metrics: dict[str, dict[str, float]]  # split -> metric -> value
    record: dict[str, Any]  # reports/run.json ({} when there is none)
    plots: dict[str, pd.DataFrame] = field(default_factory=dict)  # name -> table


@dataclass(frozen=True)
class Row:
    """One metric of the results, with its policy rule and verdict when it has one."""

    name: str
    role: str  # primary, guardrail, or "" for a metric the policy does not judge
    values: dict[str, float]  # split -> value (absent when the split lacks it)
    check: policy.Check | None  # the gate's verdict on the test split


@dataclass(frozen=True)
class Chart:
    """One chart, as an SVG document to inline in HTML."""

    name: str
    title: str
    svg: str


# ------------------------------------------------------------------ reading


def _parse(
    metrics_text: str | None, record_text: str | None, plots: dict[str, str], label: str
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
    return Results(label, metrics, record if isinstance(record, dict) else {}, tables)


def read_workspace(root: Path = PROJECT_ROOT) -> Results | None:
    """The results in the working tree, or ``None`` before the pipeline first ran."""

    def text(path: Path) -> str | None:
        return path.read_text(encoding="utf-8") if path.is_file() else None

    plots = {name: text(root / PLOTS_PATH / f"{name}.csv") for name in PLOT_NAMES}
    return _parse(
        text(root / METRICS_PATH),
        text(root / runs.RECORD_PATH),
        {name: value for name, value in plots.items() if value is not None},
        "workspace",
    )


def read_ref(ref: str, root: Path = PROJECT_ROOT) -> Results | None:
    """The results committed at ``ref``, labelled with it, or ``None`` when there are none.

    The revisions are those the gate tries for its baseline
    (:func:`policy.baseline_revisions`: ``origin/<ref>`` second).
    """
    for revision in policy.baseline_revisions(ref):
        metrics = runs.show_file(root, revision, METRICS_PATH)
        if metrics is None:
            continue
        plots = {
            name: runs.show_file(root, revision, f"{PLOTS_PATH}/{name}.csv") for name in PLOT_NAMES
        }
        found = {name: value for name, value in plots.items() if value is not None}
        record = runs.show_file(root, revision, runs.RECORD_PATH)
        return _parse(metrics, record, found, revision)
    return None


def load_rules(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The metrics policy, read and validated by the gate's own loader."""
    return policy.load_policy(root / policy.POLICY_FILE.name, root / policy.SCHEMA_FILE.name)


# ------------------------------------------------------------------ verdicts


def rows(rules: dict[str, Any], results: Results) -> list[Row]:
    """Every metric of ``results``: the policy's first (with the gate's verdict), then the rest."""
    test = results.metrics.get(policy.GATE_SPLIT, {})
    checks = policy.evaluate_policy(rules, test)
    judged = [rules["primary_metric"], *rules["guardrails"]]
    roles = ["primary"] + ["guardrail"] * len(rules["guardrails"])
    listed = [
        Row(rule["name"], role, _values(results, rule["name"]), check)
        for rule, role, check in zip(judged, roles, checks, strict=True)
    ]
    names = {row.name for row in listed}
    others = [name for split in SPLITS for name in results.metrics.get(split, {})]
    for name in dict.fromkeys(others):
        if name not in names:
            listed.append(Row(name, "", _values(results, name), None))
    return listed


def _values(results: Results, name: str) -> dict[str, float]:
    return {split: values[name] for split, values in results.metrics.items() if name in values}


def passed(table: Sequence[Row]) -> bool:
    """Whether every check of the policy passes on the test split."""
    return all(row.check.passed for row in table if row.check is not None)


def value_text(value: float | None) -> str:
    """A metric as the pages show it (the gate's four decimals)."""
    return "-" if value is None else f"{value:.4f}"


def source_text(results: Results) -> str:
    """Where results come from, in words: the run, its commit and tracker (Markdown)."""
    record = results.record
    if not record:
        return f"no run record ({runs.RECORD_PATH})"
    parts = []
    if record.get("run_id"):
        parts.append(f"run `{record['run_id']}`")
    if record.get("experiment"):
        parts.append(f"experiment `{record['experiment']}`")
    if record.get("git_commit"):
        dirty = " with uncommitted changes" if record.get("git_dirty") else ""
        parts.append(f"on commit `{str(record['git_commit'])[:12]}`{dirty}")
    if record.get("tracker"):
        parts.append(f"tracked by {record['tracker']}")
    return ", ".join(parts) or f"an empty run record ({runs.RECORD_PATH})"


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


# ------------------------------------------------------------------ charts


def _draw(name: str, draw: Callable[[Figure], None], size: tuple[float, float] = _FIGSIZE) -> str:
    """Draw a chart and return it as inline SVG (no XML prolog, no date, ink in currentColor).

    matplotlib is imported here, when a chart is drawn, and nowhere else.
    """
    import matplotlib
    from matplotlib.figure import Figure

    buffer = io.StringIO()
    with matplotlib.rc_context(
        {
            # Ids derive from the content and this salt, not from chance: the same
            # data gives the same bytes, and two charts of a page never share an id.
            "svg.hashsalt": f"reproducible-{name}",
            "svg.fonttype": "none",  # text stays text, in the page's font
            "font.size": 10,
            "text.color": _INK,
            "axes.edgecolor": _INK,
            "axes.labelcolor": _INK,
            "xtick.color": _INK,
            "ytick.color": _INK,
            "axes.facecolor": "none",
            "figure.facecolor": "none",
            "axes.grid": True,
            "grid.color": _INK,
            "grid.alpha": 0.15,
            "legend.frameon": False,
        }
    ):
        figure = Figure(figsize=size, layout="constrained")
        draw(figure)
        # No date, no creator: the bytes depend on the data alone.
        metadata = {"Date": None, "Creator": None, "Format": None, "Type": None}
        figure.savefig(buffer, format="svg", metadata=metadata, transparent=True)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :].replace(_INK, "currentColor")
    return svg.replace("<svg ", f'<svg class="results-chart" data-chart="{name}" ', 1)


def _colour(index: int, count: int) -> str:
    """The workspace (last series) in blue, a baseline before it in orange."""
    return WORKSPACE_COLOUR if index == count - 1 else BASELINE_COLOUR


def _line_style(index: int, count: int) -> str:
    return "-" if index == count - 1 else "--"


def _cut_point(
    table: pd.DataFrame, threshold: float, columns: tuple[str, str]
) -> tuple[float, float] | None:
    """The curve's point where scores are cut at ``threshold`` (the lowest threshold >= it)."""
    at_or_above = table[table["threshold"] >= threshold]
    if at_or_above.empty:
        return None
    row = at_or_above.loc[at_or_above["threshold"].idxmin()]
    return float(row[columns[0]]), float(row[columns[1]])


def _curve(
    series: Sequence[Results], name: str, columns: tuple[str, str], labels: tuple[str, str]
) -> str | None:
    """A curve of the test split per series, the decision threshold marked when known."""
    drawn = [results for results in series if name in results.plots]
    if not drawn:
        return None

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        for index, results in enumerate(drawn):
            table = results.plots[name]
            colour = _colour(index, len(drawn))
            label = results.label if len(drawn) > 1 else None
            axes.plot(
                table[columns[0]],
                table[columns[1]],
                color=colour,
                linestyle=_line_style(index, len(drawn)),
                linewidth=1.8,
                label=label,
                drawstyle="steps-post" if name == "precision_recall" else "default",
            )
            threshold = results.metrics.get(policy.GATE_SPLIT, {}).get("decision_threshold")
            point = None if threshold is None else _cut_point(table, threshold, columns)
            if point is not None:
                axes.plot(
                    *point,
                    marker="o",
                    markersize=8,
                    color=colour,
                    markeredgecolor=_INK,
                    linestyle="none",
                    label=f"decision threshold {threshold:.3f}"
                    + (f" ({results.label})" if label else ""),
                )
        if name == "roc":
            axes.plot([0, 1], [0, 1], color=_INK, alpha=0.35, linewidth=1, linestyle=":")
        axes.set(xlim=(0, 1.01), ylim=(0, 1.03), xlabel=labels[0], ylabel=labels[1])
        if axes.get_legend_handles_labels()[1]:
            axes.legend(loc="lower left" if name == "precision_recall" else "lower right")

    return _draw(name, draw)


def precision_recall_chart(series: Sequence[Results]) -> str | None:
    """Precision against recall on the test split."""
    return _curve(series, "precision_recall", ("recall", "precision"), ("recall", "precision"))


def roc_chart(series: Sequence[Results]) -> str | None:
    """True against false positive rate on the test split."""
    return _curve(series, "roc", ("fpr", "tpr"), ("false positive rate", "true positive rate"))


def confusion_chart(series: Sequence[Results]) -> str | None:
    """One confusion matrix per series, side by side; cells shaded by the share of their row."""
    drawn = [results for results in series if "confusion_matrix" in results.plots]
    if not drawn:
        return None
    from matplotlib.colors import LinearSegmentedColormap

    shades = LinearSegmentedColormap.from_list(
        "share", [(0.29, 0.56, 0.85, 0.06), (0.29, 0.56, 0.85, 1.0)]
    )

    def draw(figure: Figure) -> None:
        for index, results in enumerate(drawn):
            matrix = confusion(results.plots["confusion_matrix"])
            share = matrix.div(matrix.sum(axis=1).where(lambda total: total > 0), axis=0)
            share = share.fillna(0.0)
            axes = figure.add_subplot(1, len(drawn), index + 1)
            axes.grid(visible=False)
            axes.pcolormesh(share.to_numpy(), cmap=shades, vmin=0, vmax=1, edgecolors="none")
            for row, actual in enumerate(matrix.index):
                for column, predicted in enumerate(matrix.columns):
                    axes.text(
                        column + 0.5,
                        row + 0.5,
                        str(int(matrix.loc[actual, predicted])),
                        ha="center",
                        va="center",
                        color="white" if share.loc[actual, predicted] > 0.55 else _INK,
                    )
            ticks = [position + 0.5 for position in range(len(matrix))]
            axes.set_xticks(ticks, [str(label) for label in matrix.columns])
            axes.set_yticks(ticks, [str(label) for label in matrix.index])
            axes.invert_yaxis()
            axes.set(xlabel="predicted", ylabel="actual", aspect="equal")
            if len(drawn) > 1:
                axes.set_title(results.label)

    width = _FIGSIZE[0] if len(drawn) == 1 else _FIGSIZE[0] * 1.6
    return _draw("confusion_matrix", draw, (width, _FIGSIZE[1]))


def _thinned(table: pd.DataFrame) -> pd.DataFrame:
    """Every n-th row, so that a scatter plot stays small."""
    step = max(1, math.ceil(len(table) / _MAX_POINTS))
    return table.iloc[::step]


def predictions_chart(series: Sequence[Results]) -> str | None:
    """Predicted against actual values on the test split; the diagonal is a perfect model."""
    drawn = [results for results in series if "predictions" in results.plots]
    if not drawn:
        return None

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        low, high = math.inf, -math.inf
        for index, results in enumerate(drawn):
            table = _thinned(results.plots["predictions"])
            low = min(low, table["actual"].min(), table["predicted"].min())
            high = max(high, table["actual"].max(), table["predicted"].max())
            axes.scatter(
                table["actual"],
                table["predicted"],
                s=9,
                alpha=0.55,
                color=_colour(index, len(drawn)),
                edgecolors="none",
                label=results.label if len(drawn) > 1 else None,
            )
        axes.plot([low, high], [low, high], color=_INK, alpha=0.5, linewidth=1, linestyle=":")
        axes.set(xlabel="actual", ylabel="predicted")
        if len(drawn) > 1:
            axes.legend(loc="upper left", markerscale=2.5)

    return _draw("predictions", draw)


def residuals_chart(series: Sequence[Results]) -> str | None:
    """How far predictions miss (predicted - actual) on the test split, as a histogram."""
    drawn = [results for results in series if "predictions" in results.plots]
    if not drawn:
        return None

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        residuals = [results.plots["predictions"]["residual"] for results in drawn]
        low = min(values.min() for values in residuals)
        high = max(values.max() for values in residuals)
        bins = [low + (high - low) * step / 40 for step in range(41)] if high > low else 40
        for index, (results, values) in enumerate(zip(drawn, residuals, strict=True)):
            axes.hist(
                values,
                bins=bins,
                histtype="step" if len(drawn) > 1 else "stepfilled",
                linewidth=1.8,
                alpha=1.0 if len(drawn) > 1 else 0.8,
                color=_colour(index, len(drawn)),
                label=results.label if len(drawn) > 1 else None,
            )
        axes.axvline(0, color=_INK, alpha=0.5, linewidth=1, linestyle=":")
        axes.set(xlabel="residual (predicted - actual)", ylabel="rows")
        if len(drawn) > 1:
            axes.legend(loc="upper right")

    return _draw("residuals", draw)


# Every chart, by name: its title and how it is drawn. A chart whose table the
# results lack (regression has no ROC curve) is left out.
CHARTS: dict[str, tuple[str, Callable[[Sequence[Results]], str | None]]] = {
    "precision_recall": ("Precision-recall curve (test split)", precision_recall_chart),
    "roc": ("ROC curve (test split)", roc_chart),
    "confusion_matrix": ("Confusion matrix (test split)", confusion_chart),
    "predictions": ("Predicted against actual values (test split)", predictions_chart),
    "residuals": ("Residuals (test split)", residuals_chart),
}


def charts(series: Sequence[Results]) -> list[Chart]:
    """Every chart the results have tables for; several series are overlaid in each."""
    found = []
    for name, (title, draw) in CHARTS.items():
        svg = draw(series)
        if svg is not None:
            found.append(Chart(name, title, svg))
    return found


def figure_html(chart: Chart) -> str:
    """A chart as an HTML figure with its caption, for the docs and the report."""
    return (
        f'<figure class="results-figure">\n{chart.svg.strip()}\n'
        f"<figcaption>{html.escape(chart.title)}</figcaption>\n</figure>"
    )


# ------------------------------------------------------------------ the docs


def markdown_section(results: Results | None, rules: dict[str, Any]) -> str:
    """The current results, in Markdown, for a docs page (the model card, the policy page)."""
    if results is None:
        return (
            "No results yet: `reports/metrics.json` does not exist. Run `make repro` to "
            "train and evaluate the model, then build the docs again (`make docs`)."
        )
    table = rows(rules, results)
    verdict = "passes" if passed(table) else "**fails**"
    lines = [
        f"From `{METRICS_PATH}`: {source_text(results)}. "
        f"On the {policy.GATE_SPLIT} split, the model {verdict} the metrics policy.",
        "",
        "| metric | role | passes when | validation | test | result (test) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in table:
        bound = row.check.bound if row.check else "-"
        result = "-" if row.check is None else "pass" if row.check.passed else "**FAIL**"
        lines.append(
            f"| `{row.name}` | {row.role or '-'} | {bound} | "
            f"{value_text(row.values.get('validation'))} | {value_text(row.values.get('test'))} "
            f"| {result} |"
        )
    for chart in charts([results]):
        lines += ["", figure_html(chart)]
    if "confusion_matrix" in results.plots:
        classes = per_class(confusion(results.plots["confusion_matrix"]))
        lines += [
            "",
            "Per class, on the test split (from the confusion matrix):",
            "",
            "| class | precision | recall | f1 | support |",
            "| --- | --- | --- | --- | --- |",
            *(
                f"| `{label}` | {value_text(row['precision'])} | {value_text(row['recall'])} "
                f"| {value_text(row['f1'])} | {int(row['support'])} |"
                for label, row in classes.iterrows()
            ),
        ]
    return "\n".join(lines)


# ------------------------------------------------------------------ make report

_CSS = """
:root { color-scheme: light dark; --muted: #6b7280; --line: #d0d4da; --bad: #c62828; }
@media (prefers-color-scheme: dark) {
  :root { --muted: #9aa3ae; --line: #3a4049; --bad: #ff7a7a; }
}
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 75rem; padding: 0 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { border-bottom: 1px solid var(--line); padding: 0.3rem 0.8rem; text-align: left; }
td.number { font-variant-numeric: tabular-nums; text-align: right; }
.fail { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
.charts { display: flex; flex-wrap: wrap; gap: 1.5rem; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 0.9em; }
svg.results-chart { max-width: 100%; height: auto; }
"""


def _cell(text: str, css: str = "") -> str:
    return f'<td class="{css}">{text}</td>' if css else f"<td>{text}</td>"


def _verdict_cell(check: policy.Check | None) -> str:
    if check is None:
        return _cell("-", "muted")
    return _cell("pass") if check.passed else _cell("FAIL", "fail")


def _change(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "-"
    return f"{after - before:+.4f}"


def _metrics_table(
    split: str, workspace: list[Row], base: list[Row] | None, base_label: str
) -> list[str]:
    judged = split == policy.GATE_SPLIT
    before = {row.name: row for row in base or []}
    heads = ["metric", "role", "passes when", base_label, "workspace", "change"]
    if judged:
        heads += [f"result ({base_label})", "result (workspace)"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr>"]
    for row in workspace:
        old = before.get(row.name)
        old_value = old.values.get(split) if old else None
        new_value = row.values.get(split)
        cells = [
            _cell(f"<code>{html.escape(row.name)}</code>"),
            _cell(row.role or "-"),
            _cell(html.escape(row.check.bound) if row.check else "-"),
            _cell(value_text(old_value), "number"),
            _cell(value_text(new_value), "number"),
            _cell(_change(old_value, new_value), "number"),
        ]
        if judged:
            cells += [_verdict_cell(old.check if old else None), _verdict_cell(row.check)]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return [*lines, "</table>"]


def _source_html(results: Results | None) -> str:
    """:func:`source_text` in HTML (its Markdown code spans as ``<code>``)."""
    if results is None:
        return "no results"
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(source_text(results)))


def render_html(
    workspace: Results, base: Results | None, base_ref: str, rules: dict[str, Any]
) -> str:
    """The whole report page: metrics side by side with the gate's verdicts, then the charts."""
    current = rows(rules, workspace)
    before = rows(rules, base) if base else None
    title = f"Results: workspace against {base_ref}"
    body = [
        f"<h1>{html.escape(title)}</h1>",
        '<p class="muted">Written by <code>make report</code> from <code>reports/</code>; the '
        f"baseline is read with <code>git show {html.escape(base_ref)}:reports/...</code>.</p>",
        "<ul>",
        f"<li>{html.escape(base_ref)}: {_source_html(base)}</li>",
        f"<li>workspace: {_source_html(workspace)}</li>",
        "</ul>",
    ]
    if base is None:
        body.append(
            f"<p>No results are committed at <code>{html.escape(base_ref)}</code>: "
            "the workspace is shown alone.</p>"
        )
    verdict = "passes" if passed(current) else '<span class="fail">fails</span>'
    body.append(f"<p>On the test split, the workspace {verdict} the metrics policy.</p>")
    if base is not None:
        regression = policy.check_regression(
            rules,
            workspace.metrics.get(policy.GATE_SPLIT, {}),
            base.metrics.get(policy.GATE_SPLIT, {}),
            base_ref,
        )
        if regression is not None:
            result = "pass" if regression.passed else '<span class="fail">FAIL</span>'
            body.append(
                f"<p>Regression rule: <code>{html.escape(regression.label)}</code> is "
                f"{value_text(regression.value)}, needs {html.escape(regression.bound)}: "
                f"{result}.</p>"
            )
    for split in (policy.GATE_SPLIT, *(s for s in SPLITS if s != policy.GATE_SPLIT)):
        body.append(f"<h2>Metrics, {split} split</h2>")
        body += _metrics_table(split, current, before, base_ref)
    series = [base, workspace] if base is not None else [workspace]
    drawn = charts(series)
    if drawn:
        body += ["<h2>Charts</h2>", '<div class="charts">']
        body += [figure_html(chart) for chart in drawn]
        body.append("</div>")
    for results in series:
        if "confusion_matrix" in results.plots:
            body += _per_class_html(results)
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _per_class_html(results: Results) -> list[str]:
    classes = per_class(confusion(results.plots["confusion_matrix"]))
    lines = [
        f"<h2>Per class, test split ({html.escape(results.label)})</h2>",
        "<table>",
        "<tr><th>class</th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr>",
    ]
    for label, row in classes.iterrows():
        cells = [_cell(f"<code>{html.escape(str(label))}</code>")]
        cells += [_cell(value_text(row[name]), "number") for name in ("precision", "recall", "f1")]
        cells.append(_cell(str(int(row["support"])), "number"))
        lines.append("<tr>" + "".join(cells) + "</tr>")
    return [*lines, "</table>"]


def write_report(base_ref: str, output: Path = REPORT_FILE, root: Path = PROJECT_ROOT) -> int:
    """Write the report comparing the workspace with ``base_ref``; return the exit status."""
    workspace = read_workspace(root)
    if workspace is None:
        print(
            f"error: no {METRICS_PATH} in the workspace: run `make repro` first", file=sys.stderr
        )
        return 1
    rules = load_rules(root)
    base = read_ref(base_ref, root)
    if base is None:
        print(f"no results committed at {base_ref}: the report shows the workspace alone")
    label = base.label if base else base_ref
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(workspace, base, label, rules), encoding="utf-8")
    print(f"wrote {output.relative_to(root) if output.is_relative_to(root) else output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the workspace's results with a baseline ref, as one HTML page."""
    parser = argparse.ArgumentParser(
        prog="report", description="Compare the workspace's results with a baseline git ref."
    )
    parser.add_argument(
        "--base", metavar="REF", help="git ref to compare with (default: the policy's baseline)"
    )
    parser.add_argument("--output", type=Path, default=REPORT_FILE, help="HTML file to write")
    args = parser.parse_args(argv)
    try:
        base = args.base or load_rules()["regression"]["baseline_ref"]
        return write_report(base, args.output)
    except policy.PolicyError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

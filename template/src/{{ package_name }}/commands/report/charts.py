"""The results' charts, drawn with matplotlib as SVG to inline in a page.

matplotlib is imported only when a chart is drawn, never on importing this
package (the pipeline's stages do not import it at all). Charts are
deterministic (the same data gives the same bytes), have a transparent
background, and draw text and axes in ``currentColor``: inline in a page, they
take its text colour, so they read in light and dark themes alike. Several
series (a baseline, then the workspace) are overlaid in each chart.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from ...shared import policy
from .results import Results, confusion

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Colours readable on Material's light (white) and dark (slate) backgrounds.
WORKSPACE_COLOUR = "#4a90d9"
BASELINE_COLOUR = "#e8853a"
# Matplotlib draws text and axes in this colour; the SVG then says currentColor instead.
_INK = "#010203"
_FIGSIZE = (6.0, 4.0)  # inches: 432 x 288 pt
_MAX_POINTS = 1000  # a scatter plot keeps at most this many points (every n-th row)


@dataclass(frozen=True)
class Chart:
    """One chart, as an SVG document to inline in HTML."""

    name: str
    title: str
    svg: str


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

"""How the project's commands show things: one table, one number, one list, one way each."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# What a table shows where a value is missing (not measured, not recorded).
MISSING = "-"


def yaml_problem(error: Exception) -> str:
    """Where a YAML parser stopped, as `` (line N: what)``, or nothing when it does not say."""
    mark = getattr(error, "problem_mark", None)
    return f" (line {mark.line + 1}: {getattr(error, 'problem', '')})" if mark else ""


def number(value: float | None, digits: int = 4) -> str:
    """A metric as every command shows it: ``digits`` decimals, or :data:`MISSING`."""
    return MISSING if value is None else f"{value:.{digits}f}"


def table(
    rows: Sequence[Sequence[str]], *, max_width: int | None = None, squeeze: int | None = None
) -> str:
    """Render rows (the first is the header) as columns aligned with two spaces.

    With ``max_width``, column ``squeeze`` is narrowed so that lines fit (never
    below its header), and the cells too long for it end in ``…``.
    """
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    if max_width is not None and squeeze is not None:
        others = sum(widths) - widths[squeeze] + 2 * (len(widths) - 1)
        widths[squeeze] = max(min(widths[squeeze], max_width - others), len(rows[0][squeeze]))
    return "\n".join(
        "  ".join(
            _fit(cell, width).ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    )


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def listing(items: Iterable[str], limit: int = 3) -> str:
    """``a, b and c``; past ``limit`` items, ``a, b, c and 4 more``."""
    items = list(items)
    if len(items) > limit:
        return f"{', '.join(items[:limit])} and {len(items) - limit} more"
    if len(items) > 1:
        return f"{', '.join(items[:-1])} and {items[-1]}"
    return "".join(items)

"""The gate's checks: each rule of the metrics policy applied to measured results.

``make policy`` (:mod:`..commands.gate`) and ``make promote`` run
:func:`gate_checks` on the test split's results (:class:`..policy.Measured`):
the primary metric and each guardrail against their thresholds, the margin
over the dummy baseline, the slice floor, the leak check, and the
regression rule against the metrics committed at a baseline git ref. The
report and ``make experiments`` show the same :class:`Check` rows, so no two
commands disagree on a verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .display import MISSING, listing, number, table
from .git import show_file
from .policy import Measured, baseline_metrics, baseline_revisions, slice_entries

if TYPE_CHECKING:
    from .intervals import Interval

# Room for float rounding, so that a metric exactly on its bound passes.
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Check:
    """One row of the gate's report."""

    label: str
    value: float | None
    bound: str
    passed: bool
    interval: Interval | None = None


def check_slices(policy: Mapping[str, Any], measured: Measured) -> tuple[list[Check], str]:
    """The slice floor on every slice with enough rows, as one check naming the worst.

    Returns the check (none when the policy has no floor or no slice has
    enough rows) and a note naming the slices not judged and why.
    """
    rule = policy.get("slices")
    if not rule:
        return [], ""
    name, direction, floor = rule["metric"], rule["direction"], rule["threshold"]
    judged: list[tuple[str, float, Interval | None, bool]] = []
    small, undefined = [], []
    for label, entry in slice_entries(measured.slices):
        rows = int(entry.get("rows", 0))
        value = (entry.get("metrics") or {}).get(name)
        ends = (entry.get("intervals") or {}).get(name)
        interval = (ends["low"], ends["high"]) if isinstance(ends, Mapping) else None
        if rows < rule["min_rows"]:
            small.append(f"{label} ({rows} rows)")
        elif value is None:
            undefined.append(f"{label} ({entry.get('undefined', f'no {name}')})")
        else:
            compared = value
            if rule.get("compare") == "interval" and interval is not None:
                compared = interval[1] if direction == "maximize" else interval[0]
            judged.append((label, value, interval, meets(compared, direction, floor)))
    notes = []
    if small:
        notes.append(f"slices under {rule['min_rows']} rows not judged: {listing(small)}")
    if undefined:
        notes.append(f"{name} undefined on {listing(undefined)}")
    if not judged:
        notes.append("no slice measured with enough rows: slice floor skipped")
        return [], "; ".join(notes)
    failing = [slice_ for slice_ in judged if not slice_[3]]
    sign = 1 if direction == "maximize" else -1
    label, value, interval, _ = (failing or sorted(judged, key=lambda item: sign * item[1]))[0]
    more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
    where = f"{name} on {label}{more}" if failing else f"{name} on every slice (worst {label})"
    bound = f"{'>=' if direction == 'maximize' else '<='} {floor:.4f}"
    return [Check(where, value, bound, not failing, interval)], "; ".join(notes)


def meets(value: float, direction: str, threshold: float) -> bool:
    """Return whether ``value`` is on the right side of ``threshold``."""
    if math.isnan(value):
        return False
    if direction == "maximize":
        return value >= threshold - _TOLERANCE
    return value <= threshold + _TOLERANCE


def check_bound(
    label: str,
    bound: Mapping[str, Any],
    metrics: Mapping[str, float],
    intervals: Mapping[str, Interval] | None = None,
) -> Check:
    """Check one metric against its threshold (a missing metric fails)."""
    sign = ">=" if bound["direction"] == "maximize" else "<="
    shown_bound = f"{sign} {bound['threshold']:.4f}"
    value = metrics.get(bound["name"])
    interval = (intervals or {}).get(bound["name"])
    if value is None:
        return Check(label, None, shown_bound, passed=False)
    passed = meets(value, bound["direction"], bound["threshold"])
    return Check(label, value, shown_bound, passed, interval)


def check_regression(
    policy: Mapping[str, Any],
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
    ref: str,
    intervals: Mapping[str, Interval] | None = None,
) -> Check | None:
    """Check the primary metric against its baseline value, if the baseline has it.

    With ``regression.compare: interval``, the drop counts only when the
    interval's better end is still more than ``max_drop`` worse than the
    baseline: a drop within the measurement's noise passes.
    """
    primary = policy["primary_metric"]
    before = baseline.get(primary["name"])
    if before is None:
        return None
    max_drop = policy["regression"]["max_drop"]
    maximize = primary["direction"] == "maximize"
    limit = {
        "name": primary["name"],
        "direction": primary["direction"],
        "threshold": before - max_drop if maximize else before + max_drop,
    }
    label = f"{primary['name']} vs {ref}"
    check = check_bound(label, limit, metrics, intervals)
    if policy["regression"].get("compare") == "interval" and check.interval is not None:
        best_end = check.interval[1] if maximize else check.interval[0]
        passed = meets(best_end, primary["direction"], limit["threshold"])
        return Check(f"{label} (interval)", check.value, check.bound, passed, check.interval)
    return check


def check_baseline(policy: Mapping[str, Any], measured: Measured) -> list[Check]:
    """The model against the dummy baseline measured beside it, when the policy asks for it."""
    rule = policy.get("baseline")
    if not rule:
        return []
    name, margin = rule["metric"], rule["min_improvement"]
    maximize = rule["direction"] == "maximize"
    label = f"{name} vs dummy baseline"
    before = measured.baseline.get(name)
    if before is None:
        return [Check(label, measured.metrics.get(name), "baseline not measured", passed=False)]
    limit = {
        "name": name,
        "direction": rule["direction"],
        "threshold": before + margin if maximize else before - margin,
    }
    return [check_bound(label, limit, measured.metrics, measured.intervals)]


def evaluate_policy(
    policy: Mapping[str, Any],
    metrics: Mapping[str, float],
    intervals: Mapping[str, Interval] | None = None,
) -> list[Check]:
    """Check the primary metric and every guardrail against their thresholds."""
    primary = policy["primary_metric"]
    checks = [check_bound(f"{primary['name']} (primary)", primary, metrics, intervals)]
    checks += [
        check_bound(f"{guardrail['name']} (guardrail)", guardrail, metrics, intervals)
        for guardrail in policy["guardrails"]
    ]
    return checks


def interval_text(interval: Interval | None, digits: int = 4) -> str:
    """A bootstrap interval as every command shows it: ``[low, high]``, or :data:`MISSING`."""
    if interval is None:
        return MISSING
    return f"[{number(interval[0], digits)}, {number(interval[1], digits)}]"


def format_table(checks: Sequence[Check]) -> str:
    """Render the checks as a small aligned table (with the intervals, when measured)."""
    with_intervals = any(check.interval is not None for check in checks)
    rows = [("metric", "value", *(("interval",) if with_intervals else ()), "bound", "result")]
    rows += [
        (
            check.label,
            number(check.value),
            *((interval_text(check.interval),) if with_intervals else ()),
            check.bound,
            "pass" if check.passed else "FAIL",
        )
        for check in checks
    ]
    return table(rows)


def show(checks: Sequence[Check], note: str = "") -> str:
    """Print the checks' table (and why a rule was skipped); return :func:`failure_summary`."""
    print(format_table(checks))
    if note:
        print(note)
    return failure_summary(checks)


def failure_summary(checks: Sequence[Check]) -> str:
    """Why the checks failed, in one line (empty when every check passed)."""
    return "; ".join(
        f"{check.label} is {number(check.value)}, needs {check.bound}"
        for check in checks
        if not check.passed
    )


def regression_checks(
    policy: Mapping[str, Any],
    metrics: Mapping[str, float],
    metrics_path: Path,
    ref: str,
    intervals: Mapping[str, Interval] | None = None,
) -> tuple[list[Check], str]:
    """Return the regression check against ``ref``, or none and the reason it was skipped."""
    if not ref:
        return [], "regression rule skipped (--no-baseline)"
    baseline = baseline_metrics(metrics_path, ref)
    if baseline is None:
        return [], f"no baseline at {ref}: regression rule skipped"
    check = check_regression(policy, metrics, baseline, ref, intervals)
    if check is None:
        name = policy["primary_metric"]["name"]
        return [], f"baseline at {ref} has no {name}: regression rule skipped"
    return [check], ""


def check_leaks(policy: Mapping[str, Any], measured: Measured) -> tuple[list[Check], str]:
    """Every feature that alone predicts the target almost perfectly, unless allowed.

    ``measured.features`` is ``reports/features.json``; a column whose score
    alone reaches the policy's ``leak_check.threshold`` is a probable leak,
    and refuses the model until it is excluded (``data.excluded`` in
    ``params.yaml``) or allowed in the policy with a reason.
    """
    rule = policy.get("leak_check")
    if not rule:
        return [], ""
    scores = (measured.features.get("alone") or {}).get("columns") or {}
    if not scores:
        return [], "no feature evidence measured (reports/features.json): leak check skipped"
    allowed = rule.get("allowed") or {}
    metric = (measured.features.get("alone") or {}).get("metric", "score")
    suspects = {
        column: score
        for column, score in scores.items()
        if isinstance(score, int | float) and score >= rule["threshold"] - _TOLERANCE
    }
    found = []
    for column, score in suspects.items():
        label = f"{column} alone ({metric})"
        if column in allowed:
            found.append(Check(f"{label}, allowed", score, "allowed", passed=True))
        else:
            bound = f"< {rule['threshold']:.4f}"
            found.append(Check(f"probable leak: {label}", score, bound, passed=False))
    if not found:
        column, score = max(scores.items(), key=lambda item: item[1])
        bound = f"< {rule['threshold']:.4f}"
        found.append(Check(f"no leak (best alone: {column})", score, bound, passed=True))
    refused = [check for check in found if not check.passed]
    note = (
        "a probable leak is refused until its column is excluded (data.excluded in "
        "params.yaml) or allowed with a reason (leak_check.allowed in metrics_policy.yaml)"
    )
    return found, note if refused else ""


def gate_checks(
    policy: Mapping[str, Any], measured: Measured, metrics_path: Path, ref: str
) -> tuple[list[Check], str]:
    """Every check of the gate: thresholds, the dummy baseline, and the regression rule.

    Returns the checks and why the regression rule was skipped (empty when it ran).
    """
    against, note = regression_checks(
        policy, measured.metrics, metrics_path, ref, measured.intervals
    )
    checks = evaluate_policy(policy, measured.metrics, measured.intervals)
    per_slice, slice_note = check_slices(policy, measured)
    leaks, leak_note = check_leaks(policy, measured)
    notes = "\n".join(text for text in (slice_note, leak_note, note) if text)
    found = [*checks, *check_baseline(policy, measured), *per_slice, *leaks, *against]
    return found, notes


def resource_checks(
    policy: Mapping[str, Any], current: Mapping[str, Any], record_path: Path, ref: str
) -> list[Check]:
    """Each bounded stage's wall time and peak memory against the run record at ``ref``.

    ``current`` holds the workspace's figures per stage; the baseline's are
    in the run record (``record_path``, as committed at ``ref``). The policy's
    ``resources`` section names the stages and the largest increase (0.5: up
    to 1.5 times the baseline's); a stage that took less than ``min_seconds``
    at the baseline is too quick for its time to be judged. Nothing is
    checked without the section, a ref, or figures on both sides
    (:mod:`.resources`).
    """
    rule = policy.get("resources")
    if not rule or not ref:
        return []
    before: dict[str, Any] = {}
    folder = record_path.resolve().parent
    for revision in baseline_revisions(ref):
        text = show_file(folder, revision, f"./{record_path.name}")
        if text is not None:
            try:
                before = json.loads(text).get("resources") or {}
            except (ValueError, AttributeError):
                before = {}
            break
    return compare_resources(rule, current, before, ref)


def compare_resources(
    rule: Mapping[str, Any], current: Mapping[str, Any], before: Mapping[str, Any], label: str
) -> list[Check]:
    """The policy's ``resources`` rule on ``current`` figures against ``before`` (``label``'s)."""
    limit = 1 + float(rule["max_increase"])
    found = []
    for stage in rule["stages"]:
        now, then = current.get(stage) or {}, before.get(stage) or {}
        for key, unit, floor in (
            ("seconds", "s", float(rule.get("min_seconds", 0))),
            ("peak_mb", "MB", 0.0),
        ):
            value, base = now.get(key), then.get(key)
            if value is None or not base or base < floor:
                continue
            bound = f"<= {limit * base:.4g} ({limit:g}x {base:g} {unit})"
            found.append(Check(f"{stage} {key} vs {label}", value, bound, value <= limit * base))
    return found

"""The metrics policy's rules: what ``metrics_policy.yaml`` asks of a model's metrics.

The policy is the team's written agreement on what a better model means: a
primary metric with a threshold, guardrails that must hold at the same time,
a margin over a dummy baseline, a regression rule against the metrics
committed at a baseline git ref, and the rule experiments are ranked by on
the validation split (:func:`selection_rule`).
``make policy`` (:mod:`..commands.gate`) and ``make promote`` check metrics
with these rules, and show the result with :func:`format_table` and
:func:`failure_summary`.

The baseline is read with ``git show REF:reports/metrics.json``: the metrics
file is committed to git (DVC leaves it uncached), so this reads exactly what
``dvc metrics diff REF`` would, without paying for importing DVC.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from .display import MISSING, listing, number, table, yaml_problem
from .git import show_file
from .paths import (
    METRICS_FILE,
    POLICY_FILE,
    POLICY_SCHEMA_FILE,
    PROJECT_ROOT,
    SLICES_FILE,
    shown,
)

if TYPE_CHECKING:
    from .intervals import Interval

# The gate judges the test split, on which nothing was chosen; experiments are
# compared on the validation split (see metrics_policy.yaml's evaluation).
GATE_SPLIT = "test"
# Room for float rounding, so that a metric exactly on its bound passes.
_TOLERANCE = 1e-9


class PolicyError(Exception):
    """A policy, schema or metrics file that cannot be used (reported in one line)."""


# What the evaluate stage writes beside each split's metrics (reports/metrics.json).
INTERVALS_KEY = "intervals"
BASELINE_KEY = "baseline"


@dataclass(frozen=True)
class Check:
    """One row of the gate's report."""

    label: str
    value: float | None
    bound: str
    passed: bool
    interval: Interval | None = None


@dataclass(frozen=True)
class Selection:
    """How experiments are ranked on the validation split (``selection`` in the policy).

    ``order`` is the selection metric then each tie break, as ``(name,
    direction)``; ``declared`` is false for a policy written before it had a
    ``selection`` section, ranked by its primary metric then its guardrails.
    """

    order: tuple[tuple[str, str], ...]
    within_noise: str
    declared: bool

    @property
    def metric(self) -> str:
        """The metric experiments are ranked by."""
        return self.order[0][0]

    @property
    def direction(self) -> str:
        """Which way the selection metric is better."""
        return self.order[0][1]


@dataclass(frozen=True)
class Measured:
    """A split's metrics, their intervals, the dummy baseline's metrics, and the slices'.

    ``slices`` is ``reports/slices.json`` as read (the test split's slices).
    """

    metrics: Mapping[str, float]
    intervals: Mapping[str, Interval]
    baseline: Mapping[str, float]
    slices: Mapping[str, Any] = field(default_factory=dict)


def _read_text(path: Path, what: str, hint: str = "") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{what} not found: {shown(path)}{hint}") from None
    except OSError as error:
        raise PolicyError(f"cannot read {what} {shown(path)}: {error.strerror}") from None


def _position(document: Any, error: jsonschema.ValidationError) -> tuple[int, int]:
    """Where an error sits in the file, so that the first problem is reported first."""
    keys = list(document) if isinstance(document, dict) else []
    top = error.absolute_path[0] if error.absolute_path else None
    return (keys.index(top) if top in keys else -1, len(error.absolute_path))


def load_policy(
    path: Path = POLICY_FILE, schema_path: Path = POLICY_SCHEMA_FILE
) -> dict[str, Any]:
    """Load the policy and validate it against its JSON Schema.

    Raises:
        PolicyError: the file is missing, is not YAML, or breaks the schema.
    """
    try:
        policy = yaml.safe_load(_read_text(path, "metrics policy"))
    except yaml.YAMLError as error:
        raise PolicyError(f"{shown(path)} is not valid YAML{yaml_problem(error)}") from None
    try:
        schema = json.loads(_read_text(schema_path, "metrics policy schema"))
    except json.JSONDecodeError as error:
        raise PolicyError(f"{shown(schema_path)} is not valid JSON ({error.msg})") from None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError:
        raise PolicyError(f"{shown(schema_path)} is not a valid JSON Schema") from None
    problems = list(jsonschema.Draft202012Validator(schema).iter_errors(policy))
    if problems:
        first = min(problems, key=lambda problem: _position(policy, problem))
        where = ".".join(str(part) for part in first.absolute_path) or "top level"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise PolicyError(f"{shown(path)}: {where}: {first.message}{more}")
    guardrails = [guardrail["name"] for guardrail in policy["guardrails"]]
    if policy["primary_metric"]["name"] in guardrails:
        raise PolicyError(f"{shown(path)}: a guardrail repeats the primary metric")
    if len(set(guardrails)) != len(guardrails):
        raise PolicyError(f"{shown(path)}: a metric appears twice in guardrails")
    selection = policy.get("selection") or {}
    breaks = [rule["name"] for rule in selection.get("tie_break") or []]
    if selection.get("metric") in breaks:
        raise PolicyError(f"{shown(path)}: selection.tie_break repeats the selection metric")
    if len(set(breaks)) != len(breaks):
        raise PolicyError(f"{shown(path)}: a metric appears twice in selection.tie_break")
    return policy


def selection_rule(policy: Mapping[str, Any]) -> Selection:
    """The policy's selection rule; without a ``selection`` section, the primary metric's.

    A policy from before the section ranks by its primary metric, ties going
    to the guardrails in order, and takes the best value even within noise.
    """
    declared = policy.get("selection")
    if declared:
        order = [(declared["metric"], declared["direction"])]
        order += [(rule["name"], rule["direction"]) for rule in declared.get("tie_break") or []]
        return Selection(tuple(order), declared.get("within_noise", "best_value"), True)
    rules = [policy["primary_metric"], *policy["guardrails"]]
    return Selection(
        tuple((rule["name"], rule["direction"]) for rule in rules), "best_value", False
    )


def load_project_policy(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """The policy of the project at ``root`` (its ``metrics_policy.yaml`` and schema)."""
    return load_policy(root / POLICY_FILE.name, root / POLICY_SCHEMA_FILE.name)


def parse_metrics(text: str, source: str, split: str = GATE_SPLIT) -> dict[str, float]:
    """Parse a metrics file and return one split's metrics (names to numbers).

    The evaluate stage writes one object per split (``validation``, ``test``).
    A flat object of numbers, as projects wrote before they measured both
    splits, holds test metrics only.

    Raises:
        PolicyError: the text is not such an object, or lacks ``split``.
    """
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as error:
        raise PolicyError(f"{source} is not valid JSON ({error.msg})") from None
    if not isinstance(metrics, dict):
        raise PolicyError(f"{source} must hold a JSON object of metric names to numbers")
    if isinstance(metrics.get(split), dict):
        metrics = metrics[split]
    elif any(isinstance(value, dict) for value in metrics.values()) or split != GATE_SPLIT:
        splits = ", ".join(k for k, v in metrics.items() if isinstance(v, dict)) or "none"
        raise PolicyError(f"{source} has no {split} metrics (splits: {splits})")
    return numbers(metrics)


def parse_intervals(text: str, split: str = GATE_SPLIT) -> dict[str, Interval]:
    """One split's bootstrap intervals from a metrics file's text (none when it has none).

    The evaluate stage writes them under ``intervals.<split>.<metric>`` as
    ``{"low": ..., "high": ...}``; metrics files from before it had none.
    """
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return intervals_of(metrics, split)


def intervals_of(metrics: Any, split: str) -> dict[str, Interval]:
    """One split's intervals from a parsed metrics file (none when it has none)."""
    found = metrics.get(INTERVALS_KEY) if isinstance(metrics, Mapping) else None
    values = found.get(split) if isinstance(found, Mapping) else None
    if not isinstance(values, Mapping):
        return {}
    intervals = {}
    for name, ends in values.items():
        if isinstance(ends, Mapping):
            low, high = numbers(ends).get("low"), numbers(ends).get("high")
            if low is not None and high is not None:
                intervals[name] = (low, high)
    return intervals


def baseline_of(metrics: Any, split: str = GATE_SPLIT) -> dict[str, float]:
    """One split's metrics of the dummy baseline, from a parsed metrics file."""
    found = metrics.get(BASELINE_KEY) if isinstance(metrics, Mapping) else None
    values = found.get(split) if isinstance(found, Mapping) else None
    return numbers(values) if isinstance(values, Mapping) else {}


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of a metrics mapping that are numbers (booleans are not), as floats."""
    return {
        name: float(value)
        for name, value in values.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }


def load_metrics(path: Path = METRICS_FILE, split: str = GATE_SPLIT) -> dict[str, float]:
    """Load one split's latest metrics, written by the pipeline's evaluate stage."""
    text = _read_text(path, "metrics file", hint=" (run `make repro` first)")
    return parse_metrics(text, shown(path), split)


def parse_measured(
    text: str, source: str, split: str = GATE_SPLIT, slices_text: str | None = None
) -> Measured:
    """One split's metrics, intervals and dummy baseline from a file's text, and its slices."""
    metrics = parse_metrics(text, source, split)
    parsed = json.loads(text)
    try:
        per_slice = json.loads(slices_text) if slices_text else {}
    except json.JSONDecodeError:
        raise PolicyError(f"{SLICES_FILE.name} beside {source} is not valid JSON") from None
    return Measured(
        metrics,
        intervals_of(parsed, split),
        baseline_of(parsed, split),
        per_slice if isinstance(per_slice, dict) else {},
    )


def load_measured(path: Path = METRICS_FILE, split: str = GATE_SPLIT) -> Measured:
    """One split's latest metrics, intervals and dummy baseline, and the slices beside them."""
    text = _read_text(path, "metrics file", hint=" (run `make repro` first)")
    slices_file = path.with_name(SLICES_FILE.name)
    slices_text = slices_file.read_text(encoding="utf-8") if slices_file.is_file() else None
    return parse_measured(text, shown(path), split, slices_text)


def slice_entries(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each slice of a parsed ``reports/slices.json`` as ``column=value`` and its entry."""
    for column, values in document.items():
        if isinstance(values, Mapping):
            for value, entry in values.items():
                if isinstance(entry, Mapping):
                    yield f"{column}={value}", entry


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


def baseline_revisions(ref: str) -> tuple[str, ...]:
    """The revisions that may hold baseline ``ref``, in the order to try them.

    CI clones often have ``origin/main`` but no local ``main``, so the
    remote-tracking branch comes second. A ref git would read as an option
    gives none.
    """
    if ref.startswith("-"):
        return ()
    return (ref, f"origin/{ref}")


def baseline_metrics(metrics_path: Path, ref: str) -> dict[str, float] | None:
    """Return the metrics committed at ``ref``, or ``None`` if there are none there.

    The file is looked up at the same place in the repository as
    ``metrics_path``, at each of :func:`baseline_revisions`. A missing ref, a
    missing file or no git repository all mean "no baseline", which skips the
    regression rule rather than failing it.
    """
    folder = metrics_path.resolve().parent
    for revision in baseline_revisions(ref):
        text = show_file(folder, revision, f"./{metrics_path.name}")
        if text is not None:
            try:
                return parse_metrics(text, f"{metrics_path.name} at {revision}")
            except PolicyError:
                return None
    return None


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


def interval_text(interval: Interval | None) -> str:
    """A bootstrap interval as every command shows it: ``[low, high]``, or :data:`MISSING`."""
    if interval is None:
        return MISSING
    return f"[{number(interval[0])}, {number(interval[1])}]"


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
    notes = "\n".join(text for text in (slice_note, note) if text)
    return [*checks, *check_baseline(policy, measured), *per_slice, *against], notes

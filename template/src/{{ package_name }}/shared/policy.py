"""The metrics policy, and the measured results it judges, as files on disk.

The policy is the team's written agreement on what a better model means: a
primary metric with a threshold, guardrails that must hold at the same time,
a margin over a dummy baseline, a floor for every slice, a leak check, a
regression rule against the metrics committed at a baseline git ref, and the
rule experiments are ranked by on the validation split (:func:`selection_rule`).
This module reads ``metrics_policy.yaml`` (validated against its schema) and
the results the evaluate stage writes (:class:`Measured`); :mod:`.checks`
applies the one to the other for ``make policy`` and ``make promote``.

The baseline is read with ``git show REF:reports/metrics.json``: the metrics
file is committed to git (DVC leaves it uncached), so this reads exactly what
``dvc metrics diff REF`` would, without paying for importing DVC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from .display import yaml_problem
from .git import show_file
from .paths import (
    FEATURES_FILE,
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


class PolicyError(Exception):
    """A policy, schema or metrics file that cannot be used (reported in one line)."""


# What the evaluate stage writes beside each split's metrics (reports/metrics.json).
INTERVALS_KEY = "intervals"
BASELINE_KEY = "baseline"
# The files the evaluate stage writes beside the metrics, which the gate reads too.
BESIDE = (SLICES_FILE.name, FEATURES_FILE.name)


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

    ``slices`` and ``features`` are ``reports/slices.json`` (the test split's
    slices) and ``reports/features.json`` (the feature evidence) as read.
    """

    metrics: Mapping[str, float]
    intervals: Mapping[str, Interval]
    baseline: Mapping[str, float]
    slices: Mapping[str, Any] = field(default_factory=dict)
    features: Mapping[str, Any] = field(default_factory=dict)


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


def positive_label(root: Path = PROJECT_ROOT) -> Any:
    """The class binary metrics are about: the policy's ``evaluation.positive_label`` (or 1)."""
    return load_project_policy(root)["evaluation"].get("positive_label", 1)


def find_label(value: Any, labels: Iterable[Any], column: str) -> Any:
    """The label of ``labels`` (the target ``column``'s) that ``value`` names.

    Raises:
        PolicyError: none does; the message lists the labels the column holds.
    """
    found = list(labels)
    for label in found:
        if str(label) == str(value):  # 1 names 1 and "1"; "Yes" names "Yes"; true names True
            return label
    hint = ""
    if isinstance(value, bool):
        hint = (
            f" YAML reads a bare {'Yes' if value else 'No'} as {str(value).lower()}: write "
            'the label in quotes (positive_label: "Yes").'
        )
    held = ", ".join(repr(label) for label in sorted(found, key=str))
    raise PolicyError(
        f"{POLICY_FILE.name}: evaluation.positive_label is {value!r}, not a label "
        f"of the target column {column!r}, which holds {held}.{hint}"
    )


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
    text: str,
    source: str,
    split: str = GATE_SPLIT,
    beside: Mapping[str, str | None] | None = None,
) -> Measured:
    """One split's metrics, intervals and dummy baseline, and the files ``beside`` them.

    ``beside`` maps the names of ``reports/slices.json`` and
    ``reports/features.json`` to their texts (``None`` where there is none).
    """
    metrics = parse_metrics(text, source, split)
    parsed = json.loads(text)
    found: dict[str, dict[str, Any]] = {}
    for name in BESIDE:
        other = (beside or {}).get(name)
        try:
            content = json.loads(other) if other else {}
        except json.JSONDecodeError:
            raise PolicyError(f"{name} beside {source} is not valid JSON") from None
        found[name] = content if isinstance(content, dict) else {}
    return Measured(
        metrics,
        intervals_of(parsed, split),
        baseline_of(parsed, split),
        found[SLICES_FILE.name],
        found[FEATURES_FILE.name],
    )


def load_measured(path: Path = METRICS_FILE, split: str = GATE_SPLIT) -> Measured:
    """One split's latest metrics, intervals and dummy baseline, and the files beside them."""
    text = _read_text(path, "metrics file", hint=" (run `make repro` first)")
    beside = {}
    for name in BESIDE:
        other = path.with_name(name)
        beside[name] = other.read_text(encoding="utf-8") if other.is_file() else None
    return parse_measured(text, shown(path), split, beside)


def slice_entries(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Each slice of a parsed ``reports/slices.json`` as ``column=value`` and its entry."""
    for column, values in document.items():
        if isinstance(values, Mapping):
            for value, entry in values.items():
                if isinstance(entry, Mapping):
                    yield f"{column}={value}", entry


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

"""The metrics gate: check the latest metrics against ``metrics_policy.yaml``.

The policy is the team's written agreement on what a better model means: a
primary metric with a threshold, guardrails that must hold at the same time,
and a regression rule against the metrics committed at a baseline git ref.
Run it as ``python -m <package>.policy`` (or ``make policy``); it prints one
row per check and exits non-zero when any check fails, so CI can block a
merge on it.

The baseline is read with ``git show REF:reports/metrics.json``: the metrics
file is committed to git (DVC leaves it uncached), so this reads exactly what
``dvc metrics diff REF`` would, without paying for importing DVC.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .config import METRICS_FILE, PROJECT_ROOT

POLICY_FILE = PROJECT_ROOT / "metrics_policy.yaml"
SCHEMA_FILE = PROJECT_ROOT / "metrics_policy.schema.json"

# The gate judges the test split, on which nothing was chosen; experiments are
# compared on the validation split (see metrics_policy.yaml's evaluation).
GATE_SPLIT = "test"
# Room for float rounding, so that a metric exactly on its bound passes.
_TOLERANCE = 1e-9


class PolicyError(Exception):
    """A policy, schema or metrics file that cannot be used (reported in one line)."""


@dataclass(frozen=True)
class Check:
    """One row of the gate's report."""

    label: str
    value: float | None
    bound: str
    passed: bool


def _display(path: Path) -> str:
    """Return ``path`` relative to the working directory when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _read_text(path: Path, what: str, hint: str = "") -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{what} not found: {_display(path)}{hint}") from None
    except OSError as error:
        raise PolicyError(f"cannot read {what} {_display(path)}: {error.strerror}") from None


def _position(document: Any, error: jsonschema.ValidationError) -> tuple[int, int]:
    """Where an error sits in the file, so that the first problem is reported first."""
    keys = list(document) if isinstance(document, dict) else []
    top = error.absolute_path[0] if error.absolute_path else None
    return (keys.index(top) if top in keys else -1, len(error.absolute_path))


def load_policy(path: Path = POLICY_FILE, schema_path: Path = SCHEMA_FILE) -> dict[str, Any]:
    """Load the policy and validate it against its JSON Schema.

    Raises:
        PolicyError: the file is missing, is not YAML, or breaks the schema.
    """
    try:
        policy = yaml.safe_load(_read_text(path, "metrics policy"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}: {getattr(error, 'problem', '')})" if mark else ""
        raise PolicyError(f"{_display(path)} is not valid YAML{where}") from None
    try:
        schema = json.loads(_read_text(schema_path, "metrics policy schema"))
    except json.JSONDecodeError as error:
        raise PolicyError(f"{_display(schema_path)} is not valid JSON ({error.msg})") from None
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError:
        raise PolicyError(f"{_display(schema_path)} is not a valid JSON Schema") from None
    problems = list(jsonschema.Draft202012Validator(schema).iter_errors(policy))
    if problems:
        first = min(problems, key=lambda problem: _position(policy, problem))
        where = ".".join(str(part) for part in first.absolute_path) or "top level"
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise PolicyError(f"{_display(path)}: {where}: {first.message}{more}")
    guardrails = [guardrail["name"] for guardrail in policy["guardrails"]]
    if policy["primary_metric"]["name"] in guardrails:
        raise PolicyError(f"{_display(path)}: a guardrail repeats the primary metric")
    if len(set(guardrails)) != len(guardrails):
        raise PolicyError(f"{_display(path)}: a metric appears twice in guardrails")
    return policy


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
    return parse_metrics(text, _display(path), split)


def _git_show(folder: Path, revision: str) -> str | None:
    """Return a file's content at a revision, or ``None`` if git cannot show it."""
    try:
        shown = subprocess.run(
            ["git", "show", revision], cwd=folder, capture_output=True, text=True, check=False
        )
    except OSError:  # no git on this machine
        return None
    return shown.stdout if shown.returncode == 0 else None


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
        text = _git_show(folder, f"{revision}:./{metrics_path.name}")
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


def check_bound(label: str, bound: dict[str, Any], metrics: dict[str, float]) -> Check:
    """Check one metric against its threshold (a missing metric fails)."""
    sign = ">=" if bound["direction"] == "maximize" else "<="
    shown_bound = f"{sign} {bound['threshold']:.4f}"
    value = metrics.get(bound["name"])
    if value is None:
        return Check(label, None, shown_bound, passed=False)
    return Check(label, value, shown_bound, meets(value, bound["direction"], bound["threshold"]))


def check_regression(
    policy: dict[str, Any], metrics: dict[str, float], baseline: dict[str, float], ref: str
) -> Check | None:
    """Check the primary metric against its baseline value, if the baseline has it."""
    primary = policy["primary_metric"]
    before = baseline.get(primary["name"])
    if before is None:
        return None
    max_drop = policy["regression"]["max_drop"]
    if primary["direction"] == "maximize":
        limit = {"name": primary["name"], "direction": "maximize", "threshold": before - max_drop}
    else:
        limit = {"name": primary["name"], "direction": "minimize", "threshold": before + max_drop}
    return check_bound(f"{primary['name']} vs {ref}", limit, metrics)


def evaluate_policy(policy: dict[str, Any], metrics: dict[str, float]) -> list[Check]:
    """Check the primary metric and every guardrail against their thresholds."""
    primary = policy["primary_metric"]
    checks = [check_bound(f"{primary['name']} (primary)", primary, metrics)]
    checks += [
        check_bound(f"{guardrail['name']} (guardrail)", guardrail, metrics)
        for guardrail in policy["guardrails"]
    ]
    return checks


def _value(check: Check) -> str:
    """The value as the report shows it."""
    return "missing" if check.value is None else f"{check.value:.4f}"


def format_table(checks: Sequence[Check]) -> str:
    """Render the checks as a small aligned table."""
    rows = [("metric", "value", "bound", "result")]
    rows += [
        (check.label, _value(check), check.bound, "pass" if check.passed else "FAIL")
        for check in checks
    ]
    widths = [max(len(cell) for cell in column) for column in zip(*rows, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def regression_checks(
    policy: dict[str, Any], metrics: dict[str, float], metrics_path: Path, ref: str
) -> tuple[list[Check], str]:
    """Return the regression check against ``ref``, or none and the reason it was skipped."""
    if not ref:
        return [], "regression rule skipped (--no-baseline)"
    baseline = baseline_metrics(metrics_path, ref)
    if baseline is None:
        return [], f"no baseline at {ref}: regression rule skipped"
    check = check_regression(policy, metrics, baseline, ref)
    if check is None:
        name = policy["primary_metric"]["name"]
        return [], f"baseline at {ref} has no {name}: regression rule skipped"
    return [check], ""


def run_gate(
    policy_path: Path, metrics_path: Path, schema_path: Path, baseline_ref: str | None
) -> int:
    """Print the report and return the exit status (0 when every check passes)."""
    policy = load_policy(policy_path, schema_path)
    metrics = load_metrics(metrics_path)
    ref = policy["regression"]["baseline_ref"] if baseline_ref is None else baseline_ref
    against_baseline, note = regression_checks(policy, metrics, metrics_path, ref)
    checks = [*evaluate_policy(policy, metrics), *against_baseline]
    print(format_table(checks))
    if note:
        print(note)
    failed = [check for check in checks if not check.passed]
    if failed:
        reasons = [f"{check.label} is {_value(check)}, needs {check.bound}" for check in failed]
        print(f"metrics policy failed: {'; '.join(reasons)}", file=sys.stderr)
        return 1
    print(f"metrics policy passed ({len(checks)} checks)")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line (paths default to the project's own files)."""
    parser = argparse.ArgumentParser(
        prog="policy", description="Check the latest metrics against the metrics policy."
    )
    parser.add_argument("--policy", type=Path, default=POLICY_FILE, help="policy file")
    parser.add_argument("--metrics", type=Path, default=METRICS_FILE, help="metrics file")
    parser.add_argument("--schema", type=Path, default=SCHEMA_FILE, help="policy's JSON Schema")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument(
        "--baseline-ref",
        metavar="REF",
        help="git ref whose committed metrics are the baseline (default: the policy's)",
    )
    baseline.add_argument(
        "--no-baseline",
        dest="baseline_ref",
        action="store_const",
        const="",
        help="skip the regression rule",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gate; a file that cannot be used is one line on stderr and exit status 2."""
    args = parse_args(argv)
    try:
        return run_gate(args.policy, args.metrics, args.schema, args.baseline_ref)
    except PolicyError as error:
        print("error:", *str(error).split(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

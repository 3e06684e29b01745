"""``make policy``: check the latest metrics against ``metrics_policy.yaml``.

It prints one row per check and exits non-zero when any check fails, so CI
can block a merge on it. The rules themselves are in :mod:`..shared.policy`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..shared import checks, policy, records, resources
from ..shared.paths import (
    METRICS_FILE,
    POLICY_FILE,
    POLICY_SCHEMA_FILE,
    RECORD_FILE,
    RESOURCES_FILE,
)


def run_gate(
    policy_path: Path, metrics_path: Path, schema_path: Path, baseline_ref: str | None
) -> int:
    """Print the report and return the exit status (0 when every check passes)."""
    rules = policy.load_policy(policy_path, schema_path)
    measured = policy.load_measured(metrics_path)
    ref = rules["regression"]["baseline_ref"] if baseline_ref is None else baseline_ref
    verdicts, note = checks.gate_checks(rules, measured, metrics_path, ref)
    failed = checks.show(verdicts, note)
    record = metrics_path.with_name(RECORD_FILE.name)
    usage = checks.resource_checks(rules, workspace_resources(record), record, ref)
    if usage:
        enforced = bool(rules["resources"].get("enforce"))
        print(
            f"Each stage's time and memory against {ref} (resources in the policy; "
            f"{'enforced' if enforced else 'shown, not enforced'}):"
        )
        over = checks.show(usage)
        if over and enforced:
            failed = "; ".join(text for text in (failed, over) if text)
    if failed:
        print(f"metrics policy failed: {failed}", file=sys.stderr)
        return 1
    print(f"metrics policy passed ({len(verdicts)} checks)")
    return 0


def workspace_resources(record: Path) -> dict[str, Any]:
    """Each stage's figures in the workspace: its run record's, then any stage run since.

    A stage DVC reran whose outputs did not change leaves the record as it
    was; its figures are in the workspace's scratch file (:mod:`..shared.resources`).
    """
    recorded = (records.read_record(record) or {}).get("resources") or {}
    return {**recorded, **resources.read(record.with_name(RESOURCES_FILE.name))}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line (paths default to the project's own files)."""
    parser = argparse.ArgumentParser(
        prog="policy", description="Check the latest metrics against the metrics policy."
    )
    parser.add_argument("--policy", type=Path, default=POLICY_FILE, help="policy file")
    parser.add_argument("--metrics", type=Path, default=METRICS_FILE, help="metrics file")
    parser.add_argument(
        "--schema", type=Path, default=POLICY_SCHEMA_FILE, help="policy's JSON Schema"
    )
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
    except policy.PolicyError as error:
        print("error:", *str(error).split(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

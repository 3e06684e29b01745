"""Rebuild a past run from its commit and compare everything with what it recorded.

``make reproduce RUN=<ref>`` takes a tracker run id, a DVC experiment name, a
commit or a tag, and:

1. resolves it to a commit and the run record committed there;
2. checks that commit out in a temporary git worktree (the workspace, its
   branch and its stash are never touched), creates the commit's locked
   environment there (``uv sync --locked``) and fetches the pipeline's inputs
   from the DVC remote;
3. runs the whole pipeline (``dvc repro --force``), on the host or, with
   ``--in-image``, inside the runtime image built from that commit's
   Dockerfile and ``uv.lock`` (steps 2 and 3 are :mod:`.rebuild`);
4. compares every output hash with the commit's ``dvc.lock``, and every metric
   with the committed ``reports/metrics.json`` and with what the tracker
   recorded for the run;
5. prints one table, records the result on the original run (a git note under
   ``refs/notes/reproductions``, and a tag on the tracker's run where the
   tracker can take one), and exits 1 when anything differs.

Nothing is logged as a new run: the pipeline runs with tracking disabled.
A reference that cannot be used (unknown, before the pipeline existed, inputs
the remote lacks) exits 2 with a message naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..shared import display, policy, records, tracking
from ..shared.git import git, show_file
from ..shared.lock import output_hashes
from ..shared.paths import LOCK_PATH, METRICS_PATH, PROJECT_ROOT
from . import rebuild
from .arguments import failed
from .rebuild import ReproduceError

EXIT_DIFFERS = 1
EXIT_UNUSABLE = 2
NOTES_REF = "reproductions"
# metrics.json keeps 6 decimals, trackers the unrounded value: the last digit may differ.
METRIC_DIGITS = 6
METRIC_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Target:
    """The run to reproduce: its commit and everything the commit recorded."""

    ref: str
    commit: str
    record: Mapping[str, Any] | None
    lock: Mapping[str, Any]
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Row:
    """One line of the comparison: an output's hash or a metric's value."""

    what: str
    recorded: str
    tracker: str
    reproduced: str
    same: bool
    detail: str = ""


def flat_metrics(text: str | None) -> dict[str, float]:
    """The numbers of a metrics file, under the dotted names the trackers use."""
    if text is None:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return policy.numbers(tracking.flatten(parsed)) if isinstance(parsed, dict) else {}


def find_target(ref: str, root: Path = PROJECT_ROOT) -> Target:
    """Resolve ``ref`` to the commit to rebuild and what it recorded.

    Raises:
        ReproduceError: nothing matches ``ref``, or its commit never ran the pipeline.
    """
    try:
        commit = records.find_commit(ref, root)
    except records.RunNotFoundError as error:
        raise ReproduceError(str(error)) from None
    lock_text = show_file(root, commit, LOCK_PATH)
    if lock_text is None:
        raise ReproduceError(
            f"{ref} (commit {commit[:12]}) has no {LOCK_PATH}: it predates the pipeline "
            f"or never ran it. `git log -- {LOCK_PATH}` lists the commits that can be reproduced."
        )
    return Target(
        ref=ref,
        commit=commit,
        record=records.record_at(commit, root),
        lock=yaml.safe_load(lock_text) or {},
        metrics=flat_metrics(show_file(root, commit, METRICS_PATH)),
    )


def short(md5: str | None) -> str:
    """A hash as the table shows it (directories keep their ``.dir`` suffix)."""
    if md5 is None:
        return display.MISSING
    return f"{md5[:10]}.dir" if md5.endswith(".dir") else md5[:10]


def compare_outputs(recorded: Mapping[str, Any], reproduced: Mapping[str, Any]) -> list[Row]:
    """One row per output: the hash ``dvc.lock`` recorded and the one the rerun wrote."""
    before = output_hashes(dict(recorded))
    after = output_hashes(dict(reproduced))
    rows = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        rows.append(Row(path, short(old), "", short(new), same=old == new))
    return rows


def _number(value: float | None) -> str:
    return display.number(value, METRIC_DIGITS)


def _close(recorded: float | None, reproduced: float | None) -> bool:
    if recorded is None or reproduced is None:
        return False
    return abs(reproduced - recorded) <= METRIC_TOLERANCE


def compare_metrics(
    committed: Mapping[str, float],
    tracked: Mapping[str, float] | None,
    reproduced: Mapping[str, float],
) -> list[Row]:
    """One row per metric: committed, tracked (when the tracker was asked) and reproduced.

    A difference is shown with its size, so a float that moved in its last
    digits on another machine reads differently from a changed model.
    """
    rows = []
    for name in sorted(committed.keys() | reproduced.keys()):
        before, after = committed.get(name), reproduced.get(name)
        in_tracker = None if tracked is None else tracked.get(name)
        same = _close(before, after)
        detail = ""
        if before is not None and after is not None and not same:
            detail = f"by {after - before:+.2e}"
        if tracked is not None and same and not _close(in_tracker, after):
            same, detail = False, "tracker differs"
        rows.append(
            Row(
                name,
                _number(before),
                "" if tracked is None else _number(in_tracker),
                _number(after),
                same,
                detail,
            )
        )
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Render the comparison as an aligned table."""
    lines = [("output or metric", "recorded", "tracker", "reproduced", "result")]
    lines += [
        (
            row.what,
            row.recorded,
            row.tracker or display.MISSING,
            row.reproduced,
            "same" if row.same else " ".join(["DIFFERS", row.detail]).strip(),
        )
        for row in rows
    ]
    return display.table(lines)


def tracker_metrics(target: Target) -> tuple[dict[str, float] | None, str]:
    """What the tracker recorded for the run, or ``None`` and why it was not asked."""
    record = target.record or {}
    run_id, tracker = record.get("run_id"), record.get("tracker")
    if not run_id:
        return None, f"{target.ref} has no run record with a run id: tracker not asked"
    if tracker != tracking.TRACKER:
        return None, f"run {run_id} was logged to {tracker}; this project uses {tracking.TRACKER}"
    try:
        metrics = tracking.recorded_metrics(str(run_id), target.commit)
    except tracking.TrackingError as error:
        return None, f"tracker not asked: {error}"
    if metrics is None:
        return None, f"{tracking.TRACKER} cannot be queried for run {run_id} from here"
    return metrics, ""


def record_reproduction(
    root: Path, target: Target, result: Mapping[str, Any], *, in_tracker: bool
) -> list[str]:
    """Attach the result to the original run: a git note on its commit, a tag in the tracker.

    The tracker is tagged only when it was reachable and holds the run (``in_tracker``).
    """
    notes = []
    note = json.dumps(result, sort_keys=True)
    added = git(root, "notes", f"--ref={NOTES_REF}", "append", "-m", note, target.commit)
    if added.returncode == 0:
        shown = f"git notes --ref={NOTES_REF} show {target.commit[:12]}"
        notes.append(f"result recorded on commit {target.commit[:12]} ({shown})")
    else:
        notes.append(f"could not record a git note: {added.stderr.strip()}")
    run_id = (target.record or {}).get("run_id")
    if in_tracker and run_id:
        tags = {f"reproduction.{key}": str(value) for key, value in result.items()}
        try:
            where = tracking.annotate_run(str(run_id), tags)
        except tracking.TrackingError as error:
            where = None
            notes.append(f"could not tag run {run_id}: {error}")
        if where:
            notes.append(where)
    return notes


def reproduce(
    ref: str,
    root: Path = PROJECT_ROOT,
    *,
    in_image: bool = False,
    engine: str = "",
    build_options: Sequence[str] = (),
    keep: bool = False,
) -> int:
    """Rebuild the run ``ref`` names, print the comparison and return the exit status."""
    target = find_target(ref, root)
    print(f"Reproducing {ref}: commit {target.commit[:12]}", flush=True)
    notes = []
    workspace = records.git_state(root)
    if workspace["git_dirty"] and workspace["git_commit"] == target.commit:
        notes.append(f"the workspace has uncommitted changes: they are not part of {ref}")
    rebuilt = rebuild.rebuild(
        root,
        target.commit,
        target.lock,
        ref,
        in_image=in_image,
        engine=engine,
        build_options=build_options,
        keep=keep,
    )
    notes += rebuilt.notes
    tracked, why = tracker_metrics(target)
    if why:
        notes.append(why)
    rows = compare_outputs(target.lock, rebuilt.lock)
    rows += compare_metrics(target.metrics, tracked, flat_metrics(rebuilt.metrics_text))
    print()
    print(format_table(rows))
    differing = [row.what for row in rows if not row.same]
    result = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),  # UTC
        "result": "differs" if differing else "same",
        "differs": differing,
        "where": rebuilt.where,
        "python": rebuilt.python,
    }
    notes += record_reproduction(root, target, result, in_tracker=tracked is not None)
    for note in notes:
        print(f"note: {note}")
    if differing:
        print(
            f"{ref} did not reproduce: {len(differing)} of {len(rows)} differ "
            f"({', '.join(differing)}).",
            file=sys.stderr,
        )
        return EXIT_DIFFERS
    print(f"{ref} reproduced: all {len(rows)} outputs and metrics are the same ({rebuilt.where}).")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="reproduce",
        description="Rebuild a past run in a clean worktree and compare it with its record.",
    )
    parser.add_argument("ref", help="tracker run id, DVC experiment name, commit or tag")
    parser.add_argument(
        "--in-image",
        action="store_true",
        help="run the pipeline inside the runtime image built from the commit's Dockerfile",
    )
    parser.add_argument(
        "--engine",
        choices=rebuild.ENGINES,
        default="",
        help="container engine for --in-image (default: CONTAINER_ENGINE, else the first found)",
    )
    parser.add_argument(
        "--build-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for the image build, as the engine takes it (repeatable), e.g. "
        "--build-option=--build-arg=PYTHON_IMAGE=<mirror>/python:3.12",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the worktree afterwards, to inspect it"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Reproduce a run (``make reproduce RUN=<ref>``)."""
    args = parse_args(argv)
    try:
        return reproduce(
            args.ref,
            in_image=args.in_image,
            engine=args.engine,
            build_options=args.build_option,
            keep=args.keep,
        )
    except ReproduceError as error:
        return failed(error, EXIT_UNUSABLE)


if __name__ == "__main__":
    sys.exit(main())

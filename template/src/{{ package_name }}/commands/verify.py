"""``make verify``: rerun the whole pipeline and check every output against ``dvc.lock``.

The rerun checks the recorded run rather than making a new one: the tracker
logs nothing and ``reports/run.json`` keeps naming the run it verified.

It never overwrites a file: before anything runs, the workspace's outputs
are compared with ``dvc.lock`` (``dvc status``), and an output changed since
(a model edited by hand, a report rewritten) stops it, named, with the ways
to keep it or drop it. Nothing runs and every file stays as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..shared.lock import locked_outs, read_lock
from ..shared.paths import LOCK_FILE, PROJECT_ROOT
from ..shared.tracking import DISABLED_ENV

# Output path -> (stage that writes it, its MD5 as recorded by DVC).
LockedOutputs = dict[str, tuple[str, str | None]]


def locked_outputs(lock: dict[str, Any]) -> LockedOutputs:
    """Every output recorded in a parsed ``dvc.lock``, with its stage and hash."""
    return {path: (out["stage"], out.get("md5")) for path, out in locked_outs(lock).items()}


def differing_outputs(recorded: LockedOutputs, reproduced: LockedOutputs) -> list[str]:
    """Return the outputs whose reproduced hash is not the recorded one (or is missing)."""
    every = recorded.keys() | reproduced.keys()
    return sorted(path for path in every if recorded.get(path) != reproduced.get(path))


def changed_outputs(root: Path) -> dict[str, str]:
    """Each output whose workspace file differs from ``dvc.lock``, with its stage.

    From ``dvc status``: an output ``modified`` since the lock was written.
    A missing output is not listed: rerunning it overwrites nothing.
    """
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or "dvc status failed")
    found: dict[str, str] = {}
    for stage, changes in (json.loads(done.stdout or "{}") or {}).items():
        for change in changes if isinstance(changes, list) else []:
            if not isinstance(change, dict):
                continue
            for path, state in (change.get("changed outs") or {}).items():
                if state == "modified":
                    found[path] = stage
    return dict(sorted(found.items()))


def refusal(changed: dict[str, str]) -> str:
    """Why ``make verify`` will not run over ``changed`` outputs, and what to do instead."""
    paths = " ".join(changed)
    named = "\n".join(f"  {path} (stage {stage})" for path, stage in changed.items())
    return (
        f"make verify stops: {len(changed)} output(s) differ from dvc.lock, and rerunning "
        f"the pipeline would overwrite them:\n{named}\n"
        f"To keep them as a run of their own: `uv run dvc commit --force {paths}`, then "
        "commit dvc.lock (or copy them elsewhere first).\n"
        f"To drop them: `uv run dvc checkout {paths}` brings back what dvc.lock records "
        "(`git checkout -- <path>` for a report git keeps).\n"
        "Nothing was run: every file is as it was."
    )


def verify_pipeline(root: Path) -> int:
    """Re-run every stage and compare each output with ``dvc.lock``; return an exit code.

    A forced run rebuilds everything from the raw data, so any hidden source of
    randomness or any environment difference shows up as a differing hash.
    """
    lock_file = root / LOCK_FILE.name
    if not lock_file.is_file():
        print("No dvc.lock yet: run the pipeline first (make repro).", file=sys.stderr)
        return 1
    recorded = locked_outputs(read_lock(lock_file))
    try:
        changed = changed_outputs(root)
    except RuntimeError as error:
        print(f"error: dvc status: {error}", file=sys.stderr)
        return 2
    if changed:
        print(refusal(changed), file=sys.stderr)
        return 1
    rerun = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--force"],
        cwd=root,
        env={**os.environ, DISABLED_ENV: "1"},
    )
    if rerun.returncode != 0:
        print("The pipeline failed before its outputs could be compared.", file=sys.stderr)
        return rerun.returncode
    reproduced = locked_outputs(read_lock(lock_file))
    differing = differing_outputs(recorded, reproduced)
    for path in sorted(recorded.keys() | reproduced.keys()):
        stage = (recorded.get(path) or reproduced[path])[0]
        print(f"{'DIFFERS' if path in differing else 'same':<8}{path} (stage {stage})")
    if differing:
        print(
            f"{len(differing)} output(s) differ from dvc.lock: {', '.join(differing)}.\n"
            "dvc.lock now records the new hashes: `git diff dvc.lock` shows them, and\n"
            "`git checkout dvc.lock && dvc checkout` brings back the recorded outputs.",
            file=sys.stderr,
        )
        return 1
    print(f"All {len(recorded)} outputs match dvc.lock bit for bit.")
    return 0


def main() -> None:
    """Verify that the pipeline reproduces ``dvc.lock`` (``make verify``)."""
    raise SystemExit(verify_pipeline(PROJECT_ROOT))


if __name__ == "__main__":
    main()

"""``make verify``: rerun the whole pipeline and check every output against ``dvc.lock``.

The rerun checks the recorded run rather than making a new one: the tracker
logs nothing and ``reports/run.json`` keeps naming the run it verified.
"""

from __future__ import annotations

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

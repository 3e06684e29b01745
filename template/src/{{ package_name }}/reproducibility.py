"""Seeding and verification: what makes a run repeatable.

Run as a module (``make verify``), it re-runs the whole pipeline and checks
that every output is bit-identical to the one recorded in ``dvc.lock``. The
rerun checks the recorded run rather than making a new one: the tracker logs
nothing and ``reports/run.json`` keeps naming the run it verified.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .config import PROJECT_ROOT

if TYPE_CHECKING:
    import numpy as np

# Set by `make verify` (and `make reproduce`) for the stages it reruns: the
# tracker logs no run and reports/run.json keeps naming the recorded one.
TRACKING_DISABLED_ENV = "TRACKING_DISABLED"

# Output path -> (stage that writes it, its MD5 as recorded by DVC).
LockedOutputs = dict[str, tuple[str, str | None]]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's and NumPy's global generators and return a fresh ``Generator``.

    Prefer passing the returned generator (or ``seed`` itself, as
    ``random_state``) explicitly: global state is only seeded as a safety net
    for libraries that still read it. NumPy is imported here, by the stages
    that seed, not by ``make verify`` or the tracker's check before a run.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global state, on purpose
    return np.random.default_rng(seed)


def locked_outputs(lock: dict[str, Any]) -> LockedOutputs:
    """Map every output recorded in a parsed ``dvc.lock`` to its stage and hash."""
    return {
        out["path"]: (stage_name, out.get("md5"))
        for stage_name, stage in (lock.get("stages") or {}).items()
        for out in stage.get("outs", [])
    }


def differing_outputs(recorded: LockedOutputs, reproduced: LockedOutputs) -> list[str]:
    """Return the outputs whose reproduced hash is not the recorded one (or is missing)."""
    every = recorded.keys() | reproduced.keys()
    return sorted(path for path in every if recorded.get(path) != reproduced.get(path))


def read_lock(root: Path) -> LockedOutputs:
    """Read the outputs recorded in ``root/dvc.lock``."""
    with (root / "dvc.lock").open(encoding="utf-8") as stream:
        return locked_outputs(yaml.safe_load(stream) or {})


def verify_pipeline(root: Path) -> int:
    """Re-run every stage and compare each output with ``dvc.lock``; return an exit code.

    A forced run rebuilds everything from the raw data, so any hidden source of
    randomness or any environment difference shows up as a differing hash.
    """
    if not (root / "dvc.lock").is_file():
        print("No dvc.lock yet: run the pipeline first (make repro).", file=sys.stderr)
        return 1
    recorded = read_lock(root)
    rerun = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--force"],
        cwd=root,
        env={**os.environ, TRACKING_DISABLED_ENV: "1"},
    )
    if rerun.returncode != 0:
        print("The pipeline failed before its outputs could be compared.", file=sys.stderr)
        return rerun.returncode
    reproduced = read_lock(root)
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

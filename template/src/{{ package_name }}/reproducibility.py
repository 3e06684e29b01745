"""Seeding, fingerprints and verification: what makes a run repeatable and traceable.

The fingerprint is written next to the metrics of every run and sent to the
experiment tracker, so any result can be traced back to the exact code
(git commit), environment (Python, platform, ``uv.lock``) and data it came from.

Run as a module (``make verify``), it re-runs the whole pipeline and checks
that every output is bit-identical to the one recorded in ``dvc.lock``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import PROJECT_ROOT

_CHUNK_SIZE = 1 << 20
# Output path -> (stage that writes it, its MD5 as recorded by DVC).
LockedOutputs = dict[str, tuple[str, str | None]]


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's and NumPy's global generators and return a fresh ``Generator``.

    Prefer passing the returned generator (or ``seed`` itself, as
    ``random_state``) explicitly: global state is only seeded as a safety net
    for libraries that still read it.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global state, on purpose
    return np.random.default_rng(seed)


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file, read in chunks so large files fit in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def path_sha256(path: Path) -> str:
    """Return the SHA-256 of a file, or of a folder's files (names and contents)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file_sha256(file).encode())
    return digest.hexdigest()


def git_state(root: Path) -> dict[str, Any]:
    """Return the current commit and whether the work tree has uncommitted changes.

    Both are ``None`` outside a git repository (for example in a Docker image
    built without ``.git``).
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit, "git_dirty": dirty}


def environment_fingerprint(root: Path, data_paths: Iterable[Path] = ()) -> dict[str, Any]:
    """Describe the code, environment and data a run used.

    Args:
        root: the project root (holds ``uv.lock`` and ``.git``).
        data_paths: files or folders whose content the run depends on.
    """
    lockfile = root / "uv.lock"
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "uv_lock_sha256": file_sha256(lockfile) if lockfile.is_file() else None,
        **git_state(root),
        "data_sha256": {
            Path(p).as_posix(): path_sha256(root / p) for p in data_paths if (root / p).exists()
        },
    }


def write_fingerprint(fingerprint: dict[str, Any], path: Path) -> None:
    """Write a fingerprint as stable, human-readable JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fingerprint, indent=2, sort_keys=True) + "\n", encoding="utf-8")


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
    rerun = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force"], cwd=root)
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

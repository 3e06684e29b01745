"""Seeding and fingerprints: what makes a run repeatable and traceable.

The fingerprint is written next to the metrics of every run and sent to the
experiment tracker, so any result can be traced back to the exact code
(git commit), environment (Python, platform, ``uv.lock``) and data it came from.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK_SIZE = 1 << 20


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

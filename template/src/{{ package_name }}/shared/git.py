"""Git, run the one way every command of the project runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``git args`` in ``root`` and return what it did (a missing git is exit status 127)."""
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except OSError as error:  # no git on this machine
        return subprocess.CompletedProcess(["git", *args], 127, "", str(error))


def output(root: Path, *args: str) -> str | None:
    """The output of ``git args`` in ``root``, or ``None`` when git fails."""
    done = git(root, *args)
    return done.stdout if done.returncode == 0 else None


def show_file(root: Path, revision: str, path: str) -> str | None:
    """A file's content at ``revision`` (``path`` from the repository root), or ``None``."""
    return output(root, "show", f"{revision}:{path}")

"""Migration: re-lock ``uv.lock`` after ``copier update`` when ``pyproject.toml`` outgrew it.

copier.yml runs it after every `copier update`, whatever version the project
starts from, so an update leaves a project whose environment installs: its
own Makefile cannot know the update changed its dependencies (a project made
before 0.6.0 has no re-lock in ``make update-template``), and every
``uv run --locked`` would stop at "the lockfile needs to be updated".

``uv lock --check`` says whether the lock still fits; when it does not,
``uv lock`` re-locks it, keeping every pin the new ``pyproject.toml`` still
allows. A ``pyproject.toml`` left with conflict markers, or no uv on the
PATH, is said on stderr with the fix; the update itself never fails here.
Running it again changes nothing. It uses only the standard library.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def say(message: str) -> None:
    print(f"[update] {message}", file=sys.stderr, flush=True)


def main() -> int:
    """Re-lock when the lock no longer fits ``pyproject.toml``; always 0."""
    if not Path("pyproject.toml").is_file() or not Path("uv.lock").is_file():
        return 0
    uv = shutil.which("uv")
    if uv is None:
        say("uv is not on the PATH: run `uv lock` once it is, before `make setup`.")
        return 0
    if subprocess.run([uv, "lock", "--check"], capture_output=True).returncode == 0:
        return 0
    done = subprocess.run([uv, "lock"], capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["uv lock failed"])[-1]
        say(
            f"uv.lock no longer fits pyproject.toml, and `uv lock` failed ({last}): "
            "resolve pyproject.toml's conflicts, then run `uv lock`."
        )
        return 0
    say("uv.lock re-locked for the updated pyproject.toml (every pin it allows kept).")
    return 0


if __name__ == "__main__":
    sys.exit(main())

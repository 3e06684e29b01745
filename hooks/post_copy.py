"""Post-copy task: bring a freshly generated project to a working state.

Runs in the destination folder after `copier copy --trust`. It does what
`make setup` does in the generated project, plus the first commit:

1. `git init` when the destination is not inside a git repository yet;
2. `uv lock` when there is no `uv.lock`, then `uv sync --locked`;
3. a first commit of everything (only in a repository this task created);
4. `pre-commit install`.

Every step is idempotent and skipped when already done, so running it twice,
or after `make setup`, changes nothing. A missing tool stops only the steps
that need it, with a message that names the fix; the files are already
rendered, so `make setup` can finish the job later.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml  # a dependency of copier, so present in the interpreter running this task

FIRST_COMMIT_MESSAGE = "Generate project from the reproducible-ML template"


def say(message: str) -> None:
    print(f"[setup] {message}", file=sys.stderr, flush=True)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def inside_git_repository() -> bool:
    return run("git", "rev-parse", "--git-dir", check=False).returncode == 0


def has_commits() -> bool:
    return run("git", "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0


def git_identity_args() -> list[str]:
    """Use the user's git identity, or the template answers when git has none."""
    if run("git", "config", "user.email", check=False).stdout.strip():
        return []
    answers = _answers()
    name = answers.get("author_name") or "Project template"
    email = answers.get("author_email") or "template@localhost"
    return ["-c", f"user.name={name}", "-c", f"user.email={email}"]


def _answers() -> dict[str, object]:
    path = Path(".copier-answers.yml")
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def ensure_python(version: str) -> bool:
    if run("uv", "python", "find", version, check=False).returncode == 0:
        return True
    say(f"Python {version} not found; asking uv to install it...")
    if run("uv", "python", "install", version, check=False).returncode == 0:
        return True
    say(
        f"Python {version} (from .python-version) is not installed and uv could not "
        f"download it. Install Python {version}, or regenerate the project with "
        "another python_version; then run `make setup`."
    )
    return False


def sync_environment() -> bool:
    if shutil.which("uv") is None or run("uv", "--version", check=False).returncode != 0:
        say("uv is not installed: install it (https://docs.astral.sh/uv/), then run `make setup`.")
        return False
    if not ensure_python(Path(".python-version").read_text(encoding="utf-8").strip()):
        return False
    if not Path("uv.lock").exists():
        say("Locking dependencies (uv lock)...")
        result = run("uv", "lock", check=False)
        if result.returncode != 0:
            say(f"`uv lock` failed; fix the cause, then run `make setup`:\n{result.stderr}")
            return False
    say("Creating .venv from uv.lock (uv sync --locked)...")
    result = run("uv", "sync", "--locked", check=False)
    if result.returncode != 0:
        say(f"`uv sync --locked` failed; fix the cause, then run `make setup`:\n{result.stderr}")
        return False
    return True


def main() -> int:
    if shutil.which("git") is None:
        say("git is not installed: install it, then run `git init` and `make setup`.")
        return 0
    created_repository = False
    if not inside_git_repository():
        # main: the branch the CI files run on and the policy gate compares with
        run("git", "init", "--quiet", "--initial-branch=main")
        created_repository = True
        say("Initialised a git repository.")

    synced = sync_environment()

    if created_repository and not has_commits():
        run("git", "add", "--all")
        run("git", *git_identity_args(), "commit", "--quiet", "-m", FIRST_COMMIT_MESSAGE)
        say("Made the first commit.")

    if synced:
        result = run("uv", "run", "--no-sync", "pre-commit", "install", check=False)
        if result.returncode == 0:
            say("Installed the git hooks (pre-commit).")
        else:
            say(f"`pre-commit install` failed; run `make setup` later:\n{result.stderr}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Doctor: check that the project still follows its own reproducibility checklist.

``make doctor`` runs each check below and prints one line per check: ``ok``,
``warn`` (it could not be checked from here) or ``FAIL`` with what to do
about it. It exits with status 1 when any check fails, so CI can run it.

The checks are those of ``docs/guides/reproducibility.md`` that take seconds:
the lock is fresh, ``dvc.lock`` matches the pipeline, the metrics policy is
valid, the git hooks are installed, git holds nothing that DVC or a tracker
owns and no ``.env``, no run was left open by a process that died, and the
template the project came from has no newer version. The commands run at the
same time, so the whole takes about as long as the slowest of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..shared import policy, tracking
from ..shared.git import git
from ..shared.lock import output_hashes, read_lock, read_yaml
from ..shared.paths import (
    DVC_YAML_FILE,
    LOCK_FILE,
    POLICY_FILE,
    PROJECT_ROOT,
)

SECRETS_FILE = ".env"
PRE_COMMIT_MARK = "pre-commit.com"  # in the hook script `pre-commit install` writes
UPDATE_AVAILABLE = "New template version available"  # what `copier check-update` prints


@dataclass(frozen=True)
class Finding:
    """The result of one check: ``ok``, ``warn`` or ``fail``, and one line on what to do."""

    status: str
    message: str


Check = Callable[[Path], Finding]


def ok(message: str) -> Finding:
    return Finding("ok", message)


def fail(message: str) -> Finding:
    return Finding("fail", message)


def warn(message: str) -> Finding:
    return Finding("warn", message)


def command(args: Sequence[str], root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``root`` and capture what it prints (never raises on failure)."""
    return subprocess.run(
        list(args), cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )


def last_line(text: str) -> str:
    """The last non-empty line of ``text``: where tools put the error that matters."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def without_make_lines(text: str) -> str:
    """``text`` without make's own ``make: ***`` lines, which only repeat that a target failed."""
    return "\n".join(line for line in text.splitlines() if not line.startswith("make: "))


def git_files(root: Path, *pathspecs: str, ignored: bool = False) -> list[str]:
    """The files git tracks in ``root`` (matching ``pathspecs``, when given).

    With ``ignored``, only those that the project's ``.gitignore`` files say to
    keep out of git (every tracker's local store among them, whatever the
    tracker now: after a switch, the old one's runs must stay out too).
    """
    flags = ["--ignored", "--exclude-standard"] if ignored else []
    done = git(root, "ls-files", "-z", "--cached", *flags, "--", *pathspecs)
    return [name for name in done.stdout.split("\0") if name]


def check_lock(root: Path) -> Finding:
    """``uv.lock`` matches ``pyproject.toml``."""
    uv = shutil.which("uv")
    if uv is None:
        return warn("uv is not on PATH: the lock could not be checked")
    done = command([uv, "lock", "--check"], root)
    if done.returncode != 0:
        return fail("uv.lock does not match pyproject.toml: run `uv lock` and commit uv.lock")
    return ok("uv.lock matches pyproject.toml")


def check_pipeline(root: Path) -> Finding:
    """``dvc.lock`` matches the code, parameters and data (``dvc status`` is clean)."""
    done = command([sys.executable, "-m", "dvc", "status", "--json"], root)
    if done.returncode != 0:
        return fail(f"`dvc status` failed ({last_line(done.stderr)})")
    changed = json.loads(done.stdout or "{}")
    if changed:
        return fail(
            f"dvc.lock is out of date for {', '.join(sorted(changed))}: "
            "run `make repro` and commit dvc.lock and reports/"
        )
    return ok("dvc.lock matches the pipeline's code, parameters and data")


def check_policy(root: Path) -> Finding:
    """The metrics policy is valid against its schema."""
    try:
        policy.load_project_policy(root)
    except policy.PolicyError as error:
        return fail(f"{error}: fix it (docs/metrics-policy.md describes every field)")
    return ok(f"{POLICY_FILE.name} is valid")


def check_hooks(root: Path) -> Finding:
    """The git hooks are installed, so every commit passes them."""
    if os.environ.get("CI"):  # set by GitHub, GitLab and Bitbucket: CI runs the hooks itself
        return warn("the git hooks are not checked in CI, which runs pre-commit on every file")
    done = git(root, "rev-parse", "--git-path", "hooks/pre-commit")
    hook = root / done.stdout.strip()
    try:
        installed = done.returncode == 0 and PRE_COMMIT_MARK in hook.read_text(errors="replace")
    except OSError:
        installed = False
    if not installed:
        return fail("the git hooks are not installed: run `make setup`")
    return ok("the git hooks are installed")


def stage_outputs(pipeline: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The outputs of ``dvc.yaml``'s stages that DVC caches, and those it leaves to git."""
    cached: set[str] = set()
    in_git: set[str] = set()
    for stage in (pipeline.get("stages") or {}).values():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind) or []:
                path, options = (
                    (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
                )
                (cached if (options or {}).get("cache", True) else in_git).add(path)
    return cached, in_git


def dvc_outputs(root: Path) -> set[str]:
    """Every path DVC owns: cached stage outputs (dvc.yaml, dvc.lock) and ``.dvc`` files' outs."""
    owned, in_git = stage_outputs(read_yaml(root / DVC_YAML_FILE.name) or {})
    owned |= set(output_hashes(read_lock(root / LOCK_FILE.name))) - in_git
    for name in git_files(root, "*.dvc"):
        folder = Path(name).parent
        document = read_yaml(root / name) or {}
        owned |= {(folder / out["path"]).as_posix() for out in document.get("outs") or []}
    return owned


def owned_by(name: str, owners: Iterable[str]) -> bool:
    """Whether the file ``name`` is one of ``owners`` or inside one of their folders."""
    return any(
        name == owner.rstrip("/") or name.startswith(owner.rstrip("/") + "/") for owner in owners
    )


def check_tracked_outputs(root: Path) -> Finding:
    """git tracks no file that DVC owns or that ``.gitignore`` keeps out (a tracker's store)."""
    owners = dvc_outputs(root)
    found = {name for name in git_files(root) if owned_by(name, owners)}
    found |= set(git_files(root, ignored=True)) - {SECRETS_FILE}  # .env: check_secrets
    found = sorted(found)
    if found:
        shown = ", ".join(found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        return fail(
            f"git tracks files DVC or a tracker owns: {shown}; "
            "run `git rm -r --cached <file>` (the file stays) and commit"
        )
    return ok("git tracks no file DVC or a tracker owns")


def check_secrets(root: Path) -> Finding:
    """``.env`` (this machine's settings and secrets) is not in git."""
    if git_files(root, SECRETS_FILE):
        return fail(
            f"{SECRETS_FILE} is committed: run `git rm --cached {SECRETS_FILE}`, commit, "
            "and change every secret it held (it stays in git history)"
        )
    return ok(f"{SECRETS_FILE} is not in git")


def check_open_runs(root: Path) -> Finding:
    """No run stays RUNNING after its process died (those found are marked FAILED)."""
    del root  # the tracker knows where its store is
    try:
        closed = tracking.close_dead_runs()
    except tracking.TrackingError as error:
        return fail(f"could not look for runs left open: {error}")
    if closed:
        return ok(
            f"{len(closed)} run(s) left RUNNING by a dead process now FAILED: {'; '.join(closed)}"
        )
    return ok("no run was left open by a process that died")


def check_template(root: Path) -> Finding:
    """The template the project came from has no newer version (``make check-update``)."""
    make = shutil.which("make")
    if make is None:
        return warn("make is not on PATH: `make check-update` could not run")
    done = command([make, "--silent", "--no-print-directory", "check-update"], root)
    if done.returncode != 0:
        return warn(
            "could not ask the template for a newer version (offline, or its source is "
            f"unreachable): {last_line(without_make_lines(done.stderr + done.stdout))}"
        )
    if UPDATE_AVAILABLE in done.stdout:
        version = last_line(done.stdout)
        return fail(f"{version} Read its CHANGELOG, then run `make update-template`")
    return ok("the project is on the template's newest version")


CHECKS: tuple[Check, ...] = (
    check_lock,
    check_pipeline,
    check_policy,
    check_hooks,
    check_tracked_outputs,
    check_secrets,
    check_open_runs,
    check_template,
)


def diagnose(root: Path, checks: Sequence[Check]) -> list[Finding]:
    """Run ``checks`` on the project at ``root``, at the same time, in their order."""
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return list(pool.map(lambda check: check(root), checks))


def main(root: Path = PROJECT_ROOT) -> int:
    """Print one line per check and a summary; return 1 when any check failed."""
    findings = diagnose(root, CHECKS)
    for finding in findings:
        label = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}[finding.status]
        print(f"{label}  {finding.message}")
    failed = sum(finding.status == "fail" for finding in findings)
    if failed:
        print(f"doctor: {failed} of {len(findings)} checks failed", file=sys.stderr)
        return 1
    print(f"doctor: all {len(findings)} checks pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Rendering and running generated projects, shared by the template's tests."""

from __future__ import annotations

import csv
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from packaging.version import Version

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"

# The questions (copier.yml without its settings and computed values) and the
# catalogue of facts they share: trackers, problem types and their metrics.
COPIER_YML: dict[str, Any] = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
QUESTIONS: dict[str, dict[str, Any]] = {
    name: spec
    for name, spec in COPIER_YML.items()
    if not name.startswith("_") and spec.get("when") is not False
}
CATALOGUE: dict[str, Any] = COPIER_YML["catalogue"]["default"]
TRACKERS = list(CATALOGUE["trackers"])
PROBLEM_TYPES = list(CATALOGUE["problem_types"])
PYTHON_VERSIONS = list(QUESTIONS["python_version"]["choices"])
# The metrics each problem type offers as primary_metric and the evaluate stage
# writes to reports/metrics.json.
METRICS = {kind: list(spec["metrics"]) for kind, spec in CATALOGUE["problem_types"].items()}

# The files of the report's subpackage (src/<package>/commands/report/): its
# modules and the HTML template its pages are written from.
REPORT_FILES = {"__init__.py", "__main__.py", "charts.py", "page.html.j2", "page.py", "results.py"}

# For an end-to-end test that reads the default project after its pipeline ran
# (the session fixture ``ran_project`` of conftest.py, shared across modules).
DEFAULT_RUN = pytest.mark.parametrize("ran_project", ["binary_classification"], indirect=True)

# The smallest set of answers copier needs; everything else takes its default.
REQUIRED_ANSWERS: dict[str, Any] = {"project_name": "Claims Fraud Detection"}


def render(
    dst: Path, vcs_ref: str | None = "HEAD", *, template: Path = TEMPLATE_ROOT, **answers: Any
) -> Path:
    """Render ``template`` (by default this working tree) into ``dst`` without tasks."""
    copier.run_copy(
        str(template),
        dst,
        data={**REQUIRED_ANSWERS, **answers},
        defaults=True,
        vcs_ref=vcs_ref,
        skip_tasks=True,
        quiet=True,
    )
    return dst


def interpreter_dirs() -> list[str]:
    """Folders of the installed CPython 3.10-3.13 builds (uv must not download one)."""
    if not PYENV_VERSIONS.is_dir():
        return []
    found = sorted(PYENV_VERSIONS.glob("3.1[0-3].*/bin"), reverse=True)
    return [str(path) for path in found]


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for running a generated project's tools like a user would.

    uv comes from this repository's own environment; Python builds come from
    the interpreters installed on the machine, never from a download.
    """
    # PYTHONDONTWRITEBYTECODE is this machine's setting, rarely a user's: without it,
    # each project compiles what it imports once, as on a developer's laptop.
    dropped = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    path = [str(Path(sys.executable).parent), *interpreter_dirs(), env.get("PATH", "")]
    env.update(
        PATH=os.pathsep.join(path),
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
        GIT_AUTHOR_NAME="Template Tests",
        GIT_AUTHOR_EMAIL="tests@example.org",
        GIT_COMMITTER_NAME="Template Tests",
        GIT_COMMITTER_EMAIL="tests@example.org",
        NO_COLOR="1",
    )
    env.update(extra or {})
    return env


def run(
    args: Sequence[str | os.PathLike[str]],
    cwd: Path,
    *,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float = 900,
) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd``; on failure, raise with its full output."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=dict(env) if env is not None else tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on loopback that nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    (port,) = free_ports(1)
    return port


def commit_all(repo: Path, message: str) -> None:
    """Commit everything in ``repo``, hooks skipped."""
    run(["git", "add", "--all"], repo)
    run(["git", "commit", "--quiet", "--no-verify", "-m", message], repo)


def git_init_commit(project: Path, message: str = "Generate project") -> None:
    """Make ``project`` a git repository on main, as the post-copy task does, all committed."""
    run(["git", "init", "--quiet", "--initial-branch=main"], project)
    commit_all(project, message)


def generated_files(project: Path) -> set[str]:
    """Relative paths of every file in a generated project, outside .git."""
    return {
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_file() and ".git" not in path.relative_to(project).parts
    }


def write_user_data(path: Path, problem_type: str, rows: int = 600) -> None:
    """Write a small CSV the way a user's export might look (text, numbers, gaps)."""
    rng = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(["customer", "amount", "tenure", "segment", "target"])
        for row in range(rows):
            amount = rng.lognormvariate(7, 0.5)
            segment = rng.choice(["retail", "business", "vip"])
            signal = amount / 1000 + (segment == "vip") + rng.gauss(0, 0.5)
            target = {
                "binary_classification": int(signal > 2.2),
                "multiclass_classification": ["low", "mid", "high"][min(int(signal), 2)],
                "regression": round(100 * signal, 2),
            }[problem_type]
            tenure = "" if row % 13 == 0 else rng.randint(0, 120)
            writer.writerow([f"c{row}", round(amount, 2), tenure, segment, target])


# ---------------------------------------------------------------- updates
# The `copier update` tests (tests/test_update_*.py) build a throwaway git clone
# of this template's working tree, tag it v0.1.0, generate a project from that
# tag and commit it as a user would; then they change the template (tag v0.2.0
# and later), edit the project, and update it as the README tells users to.

# The default project's package, and the module its user adds a function to
# (before 0.8.0 it was config.py: the update moves it, edits and all).
PACKAGE = "claims_fraud_detection"
CONFIG_PY = f"src/{PACKAGE}/shared/paths.py"
OLD_CONFIG_PY = f"src/{PACKAGE}/config.py"

# The template repository as a user's clone has it, without history, caches or environment.
LEFT_BEHIND = shutil.ignore_patterns(".git", ".venv", ".*_cache", "__pycache__", "*.pyc")

# What a user writes: a notebook of their own, and a function in the project's code.
USER_NOTEBOOK = {
    "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Claims: first look"]},
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["import pandas as pd"],
        },
    ],
    "metadata": {},
    "nbformat": 4,
    "nbformat_minor": 5,
}
# Added to the README at v0.1.0 by template_clone, for the scenarios to edit.
README_TAIL = """
## Support

Ask the maintainers.

## Releases

Tagged from main.
"""
USER_FUNCTION = '''

def claims_table_path() -> Path:
    """The raw claims extract our team receives every month."""
    return find_project_root() / "data" / "raw" / "claims.csv"
'''


def edit(path: Path, old: str, new: str, count: int = 1) -> None:
    """Replace ``old`` by ``new`` in ``path``; fail loudly if ``old`` is not there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not found in {path}: the scenario needs updating"
    path.write_text(text.replace(old, new, count), encoding="utf-8")


def sub(path: Path, pattern: str, replacement: str) -> None:
    """Regex-replace the first match of ``pattern`` in ``path``; fail if none."""
    text = path.read_text(encoding="utf-8")
    changed, found = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert found, f"{pattern!r} not found in {path}: the scenario needs updating"
    path.write_text(changed, encoding="utf-8")


def git(repo: Path, *args: str) -> str:
    return run(["git", *args], repo).stdout


def release(template: Path, version: str, message: str) -> None:
    commit_all(template, message)
    git(template, "tag", version)


def template_clone(dst: Path) -> Path:
    """A git repository holding this template's working tree, tagged v0.1.0."""
    shutil.copytree(TEMPLATE_ROOT, dst, ignore=LEFT_BEHIND, symlinks=True)
    git(dst, "init", "--quiet", "--initial-branch=main")
    # v0.1.0 pinned an older nbstripout; v0.2.0 bumps it to today's pin.
    sub(
        dst / "template" / ".pre-commit-config.yaml.jinja",
        r'"nbstripout==[\d.]+"',
        '"nbstripout==0.8.0"',
    )
    # Text that only the scenarios edit, so the README's own wording can change freely.
    readme = dst / "template" / "README.md.jinja"
    readme.write_text(readme.read_text(encoding="utf-8") + README_TAIL, encoding="utf-8")
    release(dst, "v0.1.0", "Release 0.1.0")
    return dst


def generate(template: Path, project: Path, vcs_ref: str = "v0.1.0", **data: str) -> Path:
    """`copier copy --skip-tasks` from a tag, then the user's first commit."""
    render(project, vcs_ref, template=template, **data)
    git_init_commit(project)
    return project


def update(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`copier update` from the command line, as the README documents it."""
    command = [sys.executable, "-m", "copier", "update", "--trust", "--defaults"]
    return run([*command, "--conflict=inline", *options], project)


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def after_updating(text: str) -> str:
    """``text`` with each conflict resolved to its "after updating" side (the template's)."""
    kept, side = [], None
    for line in text.splitlines(keepends=True):
        if line.startswith("<<<<<<< "):
            side = "before"
        elif line.startswith("=======") and side == "before":
            side = "after"
        elif line.startswith(">>>>>>> ") and side == "after":
            side = None
        elif side != "before":
            kept.append(line)
    return "".join(kept)


def conflict_markers(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^(<{7}|={7}|>{7})( |$)", line)]


def conflicted_files(project: Path) -> list[str]:
    """The files `git add --all` would take (tracked, or new and unignored) holding markers."""
    listed = git(project, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    return [
        name
        for name in listed
        if (project / name).is_file()
        and conflict_markers((project / name).read_text(encoding="utf-8", errors="ignore"))
    ]


def release_commit(repo: Path, version: str) -> str | None:
    """The commit that released ``version``: the one that added its heading to CHANGELOG.md."""
    found = run(["git", "log", "--format=%H", f"-S## [{version}]", "--", "CHANGELOG.md"], repo)
    commits = found.stdout.split()
    return commits[-1] if commits else None


def latest_release() -> str:
    """The newest version CHANGELOG.md releases: what the working tree is released as."""
    headings = re.findall(
        r"^## \[(\d+\.\d+\.\d+)\]",
        (TEMPLATE_ROOT / "CHANGELOG.md").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    return max(headings, key=Version)


def released_template(root: Path, old: str) -> tuple[Path, str]:
    """A clone of this template with the real release ``old`` tagged, then today's tree.

    ``old`` is taken from this repository's history; the working tree, as this
    run tests it, is committed and tagged after it as the newest release.
    Returns the clone and the newest release's version.
    """
    template = root / "template"
    run(["git", "clone", "--quiet", "--no-local", TEMPLATE_ROOT, template], root)
    first = release_commit(template, old)
    assert first, f"no commit added ## [{old}] to CHANGELOG.md: is the history complete?"
    git(template, "tag", f"v{old}", first)
    git(template, "rm", "-r", "--quiet", ".")
    shutil.copytree(TEMPLATE_ROOT, template, ignore=LEFT_BEHIND, dirs_exist_ok=True, symlinks=True)
    new = latest_release()
    git(template, "add", "--all")
    git(template, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", f"Release {new}")
    git(template, "tag", f"v{new}")
    return template, new

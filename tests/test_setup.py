"""The post-copy task and `make setup` take a generated project to a working state."""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

import pytest
from support import REQUIRED_ANSWERS, TEMPLATE_ROOT, generated_files, render, run, tool_env

pytestmark = pytest.mark.e2e


def copy_with_tasks(dst: Path, **answers: str) -> Path:
    """Run `copier copy --trust` as a user would: render, then the post-copy task."""
    data = [f"--data={key}={value}" for key, value in {**REQUIRED_ANSWERS, **answers}.items()]
    command = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--vcs-ref=HEAD"]
    run([*command, *data, TEMPLATE_ROOT, dst], dst.parent)
    return dst


def tree_digest(project: Path) -> dict[str, str]:
    """Content hash of every file outside .git and .venv.

    The answers file's `_commit` is left out: rendering a template with
    uncommitted changes stamps each copy with a commit of its own.
    """
    digest = {}
    for relpath in generated_files(project):
        if relpath.startswith((".venv/", ".pytest_cache/", ".ruff_cache/")):
            continue
        if "__pycache__" in relpath:
            continue
        content = (project / relpath).read_bytes()
        if relpath == ".copier-answers.yml":
            content = re.sub(rb"(?m)^_commit: .*$", b"", content)
        digest[relpath] = hashlib.sha256(content).hexdigest()
    return digest


@pytest.fixture(scope="module")
def trusted_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, generated with its tasks."""
    return copy_with_tasks(tmp_path_factory.mktemp("trusted") / "claims-fraud-detection")


def test_task_makes_a_repository_with_a_first_commit(trusted_project: Path) -> None:
    log = run(["git", "log", "--format=%s"], trusted_project).stdout.splitlines()
    assert log == ["Generate project from the reproducible-ML template"]
    assert run(["git", "branch", "--show-current"], trusted_project).stdout.strip() == "main"
    status = run(["git", "status", "--porcelain"], trusted_project).stdout
    assert status == "", f"uncommitted files after generation:\n{status}"
    committed = run(["git", "ls-files"], trusted_project).stdout.splitlines()
    assert "uv.lock" in committed


def test_task_installs_environment_and_git_hooks(trusted_project: Path) -> None:
    assert (trusted_project / ".venv").is_dir()
    assert (trusted_project / ".git" / "hooks" / "pre-commit").is_file()


def test_generated_project_passes_its_own_checks(trusted_project: Path) -> None:
    for target in ("test", "lint"):
        run(["make", target], trusted_project)
    run(["uv", "run", "--locked", "pre-commit", "run", "--all-files"], trusted_project)
    assert run(["git", "status", "--porcelain"], trusted_project).stdout == ""


def test_task_is_idempotent(trusted_project: Path) -> None:
    before = tree_digest(trusted_project)
    head = run(["git", "rev-parse", "HEAD"], trusted_project).stdout
    run([sys.executable, TEMPLATE_ROOT / "hooks" / "post_copy.py"], trusted_project)
    run(["make", "setup"], trusted_project)
    assert tree_digest(trusted_project) == before
    assert run(["git", "rev-parse", "HEAD"], trusted_project).stdout == head


def test_skip_tasks_then_make_setup_gives_the_same_project(
    trusted_project: Path, tmp_path: Path
) -> None:
    untrusted = render(tmp_path / "claims-fraud-detection")  # no --trust needed
    run(["git", "init", "--quiet", "--initial-branch=main"], untrusted)  # as the README says
    run(["make", "setup"], untrusted)
    assert tree_digest(untrusted) == tree_digest(trusted_project)
    assert (untrusted / ".git" / "hooks" / "pre-commit").is_file()
    run(["make", "test"], untrusted)


def test_setup_names_the_fix_when_python_is_missing(tmp_path: Path) -> None:
    project = render(tmp_path / "old-python", python_version="3.10")
    # uv is on PATH, but no Python 3.10 and no downloads.
    env = tool_env(
        {"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])}
    )
    result = run(["make", "setup"], project, env=env, check=False)
    assert result.returncode != 0
    assert "Python 3.10" in result.stderr
    assert "python_version" in result.stderr
    assert "Traceback" not in result.stderr


def test_placeholder_targets_say_so_and_fail(default_project: Path) -> None:
    for target in ("repro", "policy", "verify", "docs", "docker"):
        makefile = (default_project / "Makefile").read_text()
        if f"make {target}: " not in makefile:
            continue  # the capability has landed; its own tests cover it
        result = run(["make", target], default_project, check=False)
        assert result.returncode != 0
        assert "not part of this template version yet" in result.stderr

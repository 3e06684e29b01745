"""`copier update` keeps what the user wrote and brings the template's improvements.

Each scenario builds a throwaway git clone of this template's working tree,
tags it v0.1.0, generates a project from that tag and commits it as a user
would; then it changes the template (tag v0.2.0), edits the project, and runs
`copier update` exactly as the README tells users to.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import copier
import pytest
import yaml
from support import REQUIRED_ANSWERS, TEMPLATE_ROOT, run, tool_env

PACKAGE = "claims_fraud_detection"
CONFIG_PY = f"src/{PACKAGE}/config.py"
RENAME_SCRIPT = TEMPLATE_ROOT / "hooks" / "migrations" / "rename_paths.py"

# The template repository as a user's clone has it, without history, caches or environment.
LEFT_BEHIND = shutil.ignore_patterns(".git", ".venv", ".*_cache", "__pycache__", "*.pyc")

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


# ---------------------------------------------------------------- helpers


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


def commit_all(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "-m", message)


def release(template: Path, version: str, message: str) -> None:
    commit_all(template, message)
    git(template, "tag", version)


def template_clone(dst: Path) -> Path:
    """A git repository holding this template's working tree, tagged v0.1.0."""
    shutil.copytree(TEMPLATE_ROOT, dst, ignore=LEFT_BEHIND, symlinks=True)
    git(dst, "init", "--quiet", "--initial-branch=main")
    # v0.1.0 pinned an older nbstripout; v0.2.0 bumps it to today's pin.
    sub(
        dst / "template" / ".pre-commit-config.yaml",
        r'"nbstripout==[\d.]+"',
        '"nbstripout==0.8.0"',
    )
    # Text that only this scenario edits, so the README's own wording can change freely.
    readme = dst / "template" / "README.md.jinja"
    readme.write_text(readme.read_text(encoding="utf-8") + README_TAIL, encoding="utf-8")
    release(dst, "v0.1.0", "Release 0.1.0")
    return dst


def generate(template: Path, project: Path, vcs_ref: str = "v0.1.0") -> Path:
    """`copier copy --skip-tasks` from a tag, then the user's first commit."""
    copier.run_copy(
        str(template),
        project,
        data=REQUIRED_ANSWERS,
        defaults=True,
        vcs_ref=vcs_ref,
        skip_tasks=True,
        quiet=True,
    )
    git(project, "init", "--quiet", "--initial-branch=main")
    commit_all(project, "Generate project")
    return project


def update(project: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`copier update` from the command line, as the README documents it."""
    command = [sys.executable, "-m", "copier", "update", "--trust", "--defaults"]
    return run([*command, "--conflict=inline", *options], project)


def answers(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def conflict_markers(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^(<{7}|={7}|>{7})( |$)", line)]


# ---------------------------------------------------------------- the update scenario


def improve_template(template: Path) -> None:
    """Version 0.2.0: changes to files the template owns and to files users own."""
    tpl = template / "template"
    edit(
        tpl / "Makefile.jinja",
        ".DEFAULT_GOAL := help\n",
        ".DEFAULT_GOAL := help\nMAKEFLAGS += --no-print-directory\n",
    )
    sub(
        tpl / ".pre-commit-config.yaml",
        r'"nbstripout==0\.8\.0"',
        f'"nbstripout=={nbstripout_pin()}"',
    )
    # Users own these two: the new lines must never reach an existing project.
    (tpl / "params.yaml.jinja").write_text(
        (tpl / "params.yaml.jinja").read_text() + "\nmonitoring:\n  drift_threshold: 0.1\n"
    )
    (tpl / "metrics_policy.yaml.jinja").write_text(
        (tpl / "metrics_policy.yaml.jinja").read_text() + "# reviewed quarterly\n"
    )
    # README: one line the user leaves alone, one line the user rewrote too.
    edit(tpl / "README.md.jinja", "Tagged from main.", "Tagged from main, after CI passes.")
    edit(
        tpl / "README.md.jinja",
        "Ask the maintainers.",
        "Ask the maintainers in the issue tracker.",
    )
    edit(
        tpl / "src" / "{{ package_name }}" / "config.py",
        "from __future__ import annotations\n",
        "from __future__ import annotations\n\n# Paths below are relative to the project root.\n",
    )
    release(template, "v0.2.0", "Release 0.2.0")


def nbstripout_pin() -> str:
    config = (TEMPLATE_ROOT / "template" / ".pre-commit-config.yaml").read_text()
    return re.search(r'"nbstripout==([\d.]+)"', config).group(1)


def edit_as_user(project: Path) -> None:
    sub(project / "params.yaml", r"^seed: \d+$", "seed: 2024")
    sub(project / "metrics_policy.yaml", r"threshold: 0\.8$", "threshold: 0.85")
    (project / CONFIG_PY).write_text((project / CONFIG_PY).read_text() + USER_FUNCTION)
    edit(
        project / "README.md",
        "## Quick start\n",
        "## Team\n\nOwned by claims analytics.\n\n## Quick start\n",
    )
    edit(project / "README.md", "Ask the maintainers.", "Ask in #claims-ml first.")
    (project / "notebooks" / "eda.ipynb").write_text(json.dumps(USER_NOTEBOOK, indent=1) + "\n")
    (project / "data" / "raw" / "claims.csv").write_text("claim_id,fraud\n1,0\n2,1\n")
    commit_all(project, "Our changes")


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | dict[str, bytes]]:
    """A project generated at v0.1.0, edited by its user, then updated to v0.2.0."""
    root = tmp_path_factory.mktemp("update")
    template = template_clone(root / "template")
    project = generate(template, root / "claims-fraud-detection")
    edit_as_user(project)
    before = {
        path: (project / path).read_bytes()
        for path in (
            "params.yaml",
            "metrics_policy.yaml",
            "notebooks/eda.ipynb",
            "data/raw/claims.csv",
        )
    }
    improve_template(template)
    update(project)
    return {"template": template, "project": project, "before": before}


def test_update_moves_the_project_to_the_new_version(scenario) -> None:
    project, template = scenario["project"], scenario["template"]
    assert answers(project)["_commit"] == "v0.2.0"
    assert answers(project)["_src_path"] == str(template)


def test_update_keeps_files_the_user_owns_byte_for_byte(scenario) -> None:
    project, before = scenario["project"], scenario["before"]
    for path, content in before.items():
        assert (project / path).read_bytes() == content, f"{path} changed on update"
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["seed"] == 2024
    assert "monitoring" not in params


def test_update_merges_user_and_template_edits_to_code(scenario) -> None:
    config = (scenario["project"] / CONFIG_PY).read_text()
    assert "# Paths below are relative to the project root." in config  # the template's
    assert config.endswith(USER_FUNCTION)  # the user's function
    assert conflict_markers(config) == []


def test_update_brings_the_template_improvements(scenario) -> None:
    project = scenario["project"]
    assert "MAKEFLAGS += --no-print-directory" in (project / "Makefile").read_text()
    hooks = (project / ".pre-commit-config.yaml").read_text()
    assert f'"nbstripout=={nbstripout_pin()}"' in hooks
    assert "nbstripout==0.8.0" not in hooks
    assert "Tagged from main, after CI passes." in (project / "README.md").read_text()


def test_update_leaves_a_real_conflict_as_visible_markers(scenario) -> None:
    project = scenario["project"]
    readme = (project / "README.md").read_text()
    assert "## Team\n\nOwned by claims analytics." in readme  # merged cleanly elsewhere
    markers = conflict_markers(readme)
    assert [m.split()[0] for m in markers] == ["<<<<<<<", "=======", ">>>>>>>"]
    conflict = readme[readme.index(markers[0]) : readme.index(markers[-1])]
    assert "Ask in #claims-ml first." in conflict  # the user's line
    assert "Ask the maintainers in the issue tracker." in conflict  # the template's line
    assert "Tagged from main" not in conflict  # only the lines both sides changed
    unmerged = git(project, "ls-files", "--unmerged").split()
    assert "README.md" in unmerged
    assert conflict_markers((project / "Makefile").read_text()) == []


@pytest.mark.e2e
def test_pre_commit_refuses_to_commit_conflict_markers(scenario, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(scenario["project"], project, symlinks=True)
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    run([pre_commit, "install"], project)
    git(project, "add", "--all")  # a user marking everything resolved without looking
    result = run(["git", "commit", "-m", "Update from the template"], project, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert re.search(r"check for merge conflict markers\.+Failed", output), output
    assert "README.md" in output
    assert git(project, "log", "-1", "--format=%s").strip() == "Our changes"


# ---------------------------------------------------------------- tasks on update


def test_update_with_tasks_does_not_rerun_the_post_copy_task(tmp_path: Path) -> None:
    template = template_clone(tmp_path / "template")
    project = generate(template, tmp_path / "project")
    head = git(project, "rev-parse", "HEAD")
    edit(
        template / "template" / "Makefile.jinja",
        ".DEFAULT_GOAL := help\n",
        ".DEFAULT_GOAL := help\n.SUFFIXES:\n",
    )
    release(template, "v0.2.0", "Release 0.2.0")

    # Tasks enabled, and uv on PATH: a post-copy task would lock and sync.
    result = update(project)

    assert "[setup]" not in result.stderr
    assert not (project / "uv.lock").exists()
    assert not (project / ".venv").exists()
    assert git(project, "rev-parse", "HEAD") == head
    assert ".SUFFIXES:" in (project / "Makefile").read_text()


# ---------------------------------------------------------------- migrations


def rename_notebooks_in_0_2_0(template: Path) -> None:
    """A breaking rename, test-only: notebooks/ becomes analysis/ with a migration."""
    git(template, "mv", "template/notebooks", "template/analysis")
    copier_yml = template / "copier.yml"
    edit(copier_yml, "  - notebooks/**\n", "  - analysis/**\n")
    migration = (
        "\n_migrations:\n"
        "  - version: v0.2.0\n"
        '    command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/hooks/migrations/'
        'rename_paths.py", "notebooks", "analysis"]\n'
        "    when: \"{{ _stage == 'after' }}\"\n"
    )
    copier_yml.write_text(copier_yml.read_text() + migration)
    release(template, "v0.2.0", "Rename notebooks/ to analysis/")


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("migrate")
    template = template_clone(root / "template")
    project = generate(template, root / "project")
    (project / "notebooks" / "eda.ipynb").write_text(json.dumps(USER_NOTEBOOK, indent=1) + "\n")
    commit_all(project, "First notebook")
    rename_notebooks_in_0_2_0(template)
    update(project)
    return {"template": template, "project": project}


def test_migration_moves_user_files_across_a_breaking_rename(migrated) -> None:
    project = migrated["project"]
    assert answers(project)["_commit"] == "v0.2.0"
    assert not (project / "notebooks").exists()
    assert json.loads((project / "analysis" / "eda.ipynb").read_text()) == USER_NOTEBOOK
    assert (project / "analysis" / ".gitkeep").is_file()


def test_migration_runs_only_when_crossing_its_version(migrated) -> None:
    project, template = migrated["project"], migrated["template"]
    commit_all(project, "Update to 0.2.0")
    (project / "notebooks").mkdir()
    (project / "notebooks" / "scratch.md").write_text("Kept where I put it.\n")
    commit_all(project, "A folder of my own called notebooks")
    edit(
        template / "template" / "Makefile.jinja",
        ".DEFAULT_GOAL := help\n",
        ".DEFAULT_GOAL := help\n.SUFFIXES:\n",
    )
    release(template, "v0.3.0", "Release 0.3.0")

    update(project)

    assert answers(project)["_commit"] == "v0.3.0"
    assert (project / "notebooks" / "scratch.md").read_text() == "Kept where I put it.\n"
    assert not (project / "analysis" / "scratch.md").exists()


@pytest.fixture
def rename(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def _rename(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([sys.executable, RENAME_SCRIPT, *args], tmp_path, check=check, env=tool_env())

    return _rename


def test_rename_script_is_idempotent(tmp_path: Path, rename) -> None:
    (tmp_path / "old" / "deep").mkdir(parents=True)
    (tmp_path / "old" / "deep" / "a.txt").write_text("a")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "b.txt").write_text("b")
    rename("old", "new")
    snapshot = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert snapshot == ["new", "new/b.txt", "new/deep", "new/deep/a.txt"]
    rename("old", "new")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == snapshot


def test_rename_script_never_overwrites_a_different_file(tmp_path: Path, rename) -> None:
    (tmp_path / "old.yaml").write_text("mine")
    (tmp_path / "new.yaml").write_text("template's")
    result = rename("old.yaml", "new.yaml")
    assert (tmp_path / "old.yaml").read_text() == "mine"
    assert (tmp_path / "new.yaml").read_text() == "template's"
    assert "old.yaml" in result.stderr
    assert "new.yaml" in result.stderr


@pytest.mark.parametrize(
    ("old", "new"), [("../outside", "inside"), ("inside", "/tmp/x"), ("a", "../b")]
)
def test_rename_script_refuses_paths_outside_the_project(tmp_path: Path, rename, old, new) -> None:
    result = rename(old, new, check=False)
    assert result.returncode != 0
    assert "outside the project" in result.stderr


# ---------------------------------------------------------------- drift


WORKFLOW = ".github/workflows/template-update.yml"


def project_behind_its_template(root: Path) -> Path:
    """A project generated at v0.1.0 whose template has released v0.2.0 since."""
    template = template_clone(root / "template")
    project = generate(template, root / "project")
    edit(
        template / "template" / "Makefile.jinja",
        ".DEFAULT_GOAL := help\n",
        ".DEFAULT_GOAL := help\n.SUFFIXES:\n",
    )
    release(template, "v0.2.0", "Release 0.2.0")
    return project


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_behind_its_template(tmp_path_factory.mktemp("drift"))


def test_check_update_reports_a_project_behind_its_template(behind: Path) -> None:
    # The workflow relies on these exit codes: 2 when behind, 0 when current.
    check = [sys.executable, "-m", "copier", "check-update"]
    assert run([*check, "--quiet"], behind, check=False).returncode == 2
    assert "latest version is 0.2.0" in run(check, behind).stdout
    update(behind)
    commit_all(behind, "Update from the template")
    assert run([*check, "--quiet"], behind, check=False).returncode == 0


@pytest.mark.e2e
def test_make_check_update_names_the_new_version(tmp_path: Path) -> None:
    project = project_behind_its_template(tmp_path)
    result = run(["make", "check-update"], project)
    assert "latest version is 0.2.0" in result.stdout


def workflow_step(project: Path, name: str) -> str:
    steps = yaml.safe_load((project / WORKFLOW).read_text())["jobs"]["update"]["steps"]
    return next(step["run"] for step in steps if step.get("name") == name)


def test_update_workflow_is_valid_and_pinned(default_project: Path) -> None:
    workflow = default_project / WORKFLOW
    schema_check = Path(sys.executable).parent / "check-jsonschema"
    run([schema_check, "--builtin-schema", "vendor.github-workflows", workflow], default_project)
    spec = yaml.safe_load(workflow.read_text())
    assert spec[True]["schedule"], "the workflow must run on a schedule"  # YAML 1.1: on == True
    for step in spec["jobs"]["update"]["steps"]:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    assert "copier update --trust --defaults --conflict=inline" in workflow.read_text()


def test_update_workflow_exists_only_for_github(render_project) -> None:
    assert not (render_project(ci_provider="gitlab") / WORKFLOW).exists()
    assert not (render_project(ci_provider="none") / ".github").exists()


@pytest.mark.parametrize(
    ("source", "reachable"),
    [
        ("gh:acme/ml-template", True),
        ("https://git.example.org/ml/template.git", True),
        ("/home/me/template", False),
        (".", False),
    ],
)
def test_update_workflow_stops_when_ci_cannot_reach_the_template(
    default_project: Path, tmp_path: Path, source: str, reachable: bool
) -> None:
    (tmp_path / ".copier-answers.yml").write_text(f"_commit: v0.1.0\n_src_path: {source}\n")
    script = workflow_step(default_project, "Check that the template can be reached from CI")
    result = run(["bash", "-euo", "pipefail", "-c", script], tmp_path, check=False)
    assert (result.returncode == 0) is reachable
    if not reachable:
        assert f"_src_path in .copier-answers.yml is '{source}'" in result.stdout

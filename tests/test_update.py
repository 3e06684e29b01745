"""`copier update` keeps what the user wrote and brings the template's improvements.

Each scenario builds a throwaway git clone of this template's working tree,
tags it v0.1.0, generates a project from that tag and commits it as a user
would; then it changes the template (tag v0.2.0), edits the project, and runs
`copier update` exactly as the README tells users to.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version
from support import TEMPLATE_ROOT, commit_all, git_init_commit, render, run, tool_env

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
    # Text that only this scenario edits, so the README's own wording can change freely.
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
        tpl / ".pre-commit-config.yaml.jinja",
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
    config = (TEMPLATE_ROOT / "template" / ".pre-commit-config.yaml.jinja").read_text()
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
    """A breaking rename, test-only: notebooks/ becomes analysis/, listed in renames.yml."""
    git(template, "mv", "template/notebooks", "template/analysis")
    edit(template / "copier.yml", "  - notebooks/**\n", "  - analysis/**\n")
    edit(
        template / "hooks" / "migrations" / "renames.yml",
        "renames: []\n",
        'renames:\n  - version: "0.2.0"\n    old: notebooks\n    new: analysis\n',
    )
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


RENAMES_TABLE = """\
renames:
  - version: "2.0"
    old: middle
    new: last
  - version: "1.0"
    old: first
    new: middle
"""


@pytest.fixture
def rename(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the migration in ``tmp_path`` with its own renames table."""
    table = tmp_path.parent / f"{tmp_path.name}-renames.yml"

    def _rename(
        version_from: str, version_to: str, table_text: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        table.write_text(table_text)
        command = [sys.executable, RENAME_SCRIPT, version_from, version_to, f"--table={table}"]
        return run(command, tmp_path, check=check, env=tool_env())

    return _rename


def one_rename(old: str, new: str) -> str:
    return f'renames:\n  - {{version: "1.0", old: "{old}", new: "{new}"}}\n'


def tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def test_rename_script_applies_every_crossed_rename_oldest_first(tmp_path: Path, rename) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "notes.md").write_text("mine")
    rename("0.9", "1.5", RENAMES_TABLE)
    assert tree(tmp_path) == ["middle", "middle/notes.md"]
    rename("1.5", "2.0", RENAMES_TABLE)
    assert tree(tmp_path) == ["last", "last/notes.md"]
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "again.md").write_text("mine too")
    rename("0.1", "2.0.post3.dev0+g1234567", RENAMES_TABLE)  # an untagged commit after 2.0
    assert tree(tmp_path) == ["last", "last/again.md", "last/notes.md"]


@pytest.mark.parametrize(("version_from", "version_to"), [("1.0", "1.9"), ("2.0", "3.0")])
def test_rename_script_skips_renames_it_does_not_cross(
    tmp_path: Path, rename, version_from: str, version_to: str
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "first" / "notes.md").write_text("mine")
    rename(version_from, version_to, RENAMES_TABLE)
    assert tree(tmp_path) == ["first", "first/notes.md"]


def test_rename_script_is_idempotent(tmp_path: Path, rename) -> None:
    (tmp_path / "old" / "deep").mkdir(parents=True)
    (tmp_path / "old" / "deep" / "a.txt").write_text("a")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "b.txt").write_text("b")
    rename("0.1", "1.0", one_rename("old", "new"))
    snapshot = tree(tmp_path)
    assert snapshot == ["new", "new/b.txt", "new/deep", "new/deep/a.txt"]
    rename("0.1", "1.0", one_rename("old", "new"))
    assert tree(tmp_path) == snapshot


def test_rename_script_never_overwrites_a_different_file(tmp_path: Path, rename) -> None:
    (tmp_path / "old.yaml").write_text("mine")
    (tmp_path / "new.yaml").write_text("template's")
    result = rename("0.1", "1.0", one_rename("old.yaml", "new.yaml"))
    assert (tmp_path / "old.yaml").read_text() == "mine"
    assert (tmp_path / "new.yaml").read_text() == "template's"
    assert "old.yaml" in result.stderr
    assert "new.yaml" in result.stderr


@pytest.mark.parametrize(
    ("old", "new"), [("../outside", "inside"), ("inside", "/tmp/x"), ("a", "../b")]
)
def test_rename_script_refuses_paths_outside_the_project(tmp_path: Path, rename, old, new) -> None:
    result = rename("0.1", "1.0", one_rename(old, new), check=False)
    assert result.returncode != 0
    assert "outside the project" in result.stderr


def test_rename_script_names_a_bad_entry_of_its_table(tmp_path: Path, rename) -> None:
    table = 'renames:\n  - {version: "1.0", old: a, new: b}\n  - {version: soon, old: c, new: d}\n'
    result = rename("0.1", "1.0", table, check=False)
    assert result.returncode != 0
    assert "rename 2" in result.stderr
    assert "version" in result.stderr


def test_the_shipped_renames_table_is_valid(tmp_path: Path, rename) -> None:
    shipped = (TEMPLATE_ROOT / "hooks" / "migrations" / "renames.yml").read_text()
    rename("0.0.1", "999", shipped)
    assert tree(tmp_path) == []


# ---------------------------------------------------------------- drift


WORKFLOW = ".github/workflows/template-update.yml"


def release_0_2_0(template: Path) -> None:
    edit(
        template / "template" / "Makefile.jinja",
        ".DEFAULT_GOAL := help\n",
        ".DEFAULT_GOAL := help\n.SUFFIXES:\n",
    )
    release(template, "v0.2.0", "Release 0.2.0")


def project_behind_its_template(root: Path, **data: str) -> Path:
    """A project generated at v0.1.0 whose template has released v0.2.0 since."""
    template = template_clone(root / "template")
    project = generate(template, root / "project", **data)
    release_0_2_0(template)
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


def conflict_with_0_2_0(project: Path) -> None:
    """The user changes the very line v0.2.0 adds a line after: a real conflict."""
    edit(project / "Makefile", ".DEFAULT_GOAL := help\n", ".DEFAULT_GOAL := check\n")
    commit_all(project, "make with no target runs the checks")


@pytest.mark.e2e
def test_make_update_template_fails_naming_the_conflicting_files(tmp_path: Path) -> None:
    project = project_behind_its_template(tmp_path)
    conflict_with_0_2_0(project)
    result = run(["make", "update-template"], project, check=False)
    assert result.returncode != 0
    assert answers(project)["_commit"] == "v0.2.0"
    assert conflict_markers((project / "Makefile").read_text())
    conflicts = "You and the template changed the same lines in these files:\nMakefile\n"
    assert conflicts in result.stderr


@pytest.mark.e2e
def test_github_update_step_proposes_an_update_that_left_conflicts(tmp_path: Path) -> None:
    project = project_behind_its_template(tmp_path)
    conflict_with_0_2_0(project)
    (step,) = [s for s in workflow_steps(project) if s.get("name") == "Update from the template"]
    github_env = tmp_path / "github-env"
    env = tool_env({"GITHUB_ENV": str(github_env)})
    result = run(["bash", "-eo", "pipefail", "-c", step["run"]], project, check=False, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(github_env.read_text().splitlines()) == {"CONFLICTS=yes", "VERSION=v0.2.0"}


def test_makefile_pins_the_copier_the_template_is_tested_with(default_project: Path) -> None:
    makefile = (default_project / "Makefile").read_text()
    pinned = re.search(r"^COPIER := uvx --from copier==([\d.]+) copier$", makefile, flags=re.M)
    assert pinned, "the Makefile must pin copier for check-update and update-template"
    assert pinned.group(1) == importlib.metadata.version("copier")
    minimum = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())["_min_copier_version"]
    assert Version(pinned.group(1)) >= Version(minimum)


@pytest.mark.parametrize(
    ("source", "reachable"),
    [
        ("gh:acme/ml-template", True),
        ("'https://git.example.org/ml/template.git'", True),
        ("git@git.example.org:ml/template.git", True),
        ("{template}", True),
        ("/home/me/no-such-template", False),
        ("../moved-away", False),
        (".", False),  # the project itself: what `copier copy .` records
        ("{tmp}", False),  # a folder, but no template
    ],
)
def test_make_template_source_refuses_a_source_it_cannot_reach(
    default_project: Path, tmp_path: Path, source: str, reachable: bool
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", ".python-version"):
        shutil.copy(default_project / name, project / name)
    (tmp_path / "template").mkdir()
    (tmp_path / "template" / "copier.yml").write_text("_subdirectory: template\n")
    source = source.format(template=tmp_path / "template", tmp=tmp_path)
    (project / ".copier-answers.yml").write_text(f"_commit: v0.1.0\n_src_path: {source}\n")
    result = run(["make", "--silent", "template-source"], project, check=False)
    assert (result.returncode == 0) is reachable, result.stderr
    if not reachable:
        assert f"_src_path in .copier-answers.yml is '{source}'" in result.stderr


def workflow_steps(project: Path) -> list[dict]:
    return yaml.safe_load((project / WORKFLOW).read_text())["jobs"]["update"]["steps"]


def test_update_workflow_is_valid_and_pinned(default_project: Path) -> None:
    workflow = default_project / WORKFLOW
    schema_check = Path(sys.executable).parent / "check-jsonschema"
    run([schema_check, "--builtin-schema", "vendor.github-workflows", workflow], default_project)
    spec = yaml.safe_load(workflow.read_text())
    assert spec[True]["schedule"], "the workflow must run on a schedule"  # YAML 1.1: on == True
    for step in workflow_steps(default_project):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    runs = "\n".join(step.get("run", "") for step in workflow_steps(default_project))
    assert "make update-template" in runs


def test_update_workflow_exists_only_for_github(render_project) -> None:
    assert not (render_project(ci_provider="gitlab") / WORKFLOW).exists()
    assert not (render_project(ci_provider="none") / ".github").exists()


def test_gitlab_runs_the_update_job_alone_on_its_schedule(render_project) -> None:
    config = yaml.safe_load((render_project(ci_provider="gitlab") / ".gitlab-ci.yml").read_text())
    assert config["template-update"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "schedule" && $TEMPLATE_UPDATE == "true"'}
    ]
    assert config["ci"]["rules"][0] == {"if": '$TEMPLATE_UPDATE == "true"', "when": "never"}


# ------------------------------------------ the GitLab and Bitbucket update jobs, run here

CURL_STUB = """#!/bin/sh
# Bitbucket's REST API, as far as the template-update pipeline uses it.
printf '%s\\n' "$*" >>"$CURL_LOG"
for arg in "$@"; do
  case "$arg" in @*) cp "${arg#@}" "$CURL_LOG.json" ;; esac
done
case " $* " in
  *" --get "*) echo '{"size": 0, "values": []}' ;;
  *) echo '{"id": 7}' ;;
esac
"""


def update_job_script(project: Path, provider: str) -> str:
    if provider == "gitlab":
        config = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        lines = config["template-update"]["script"]
    else:
        pipeline = yaml.safe_load((project / "bitbucket-pipelines.yml").read_text())
        lines = pipeline["pipelines"]["custom"]["template-update"][0]["step"]["script"]
    return "\n".join(lines)


def run_update_job(project: Path, provider: str, remote: Path, token: str = "secret"):
    """The provider's update job as its runner would run it, against a local remote."""
    env = {"TEMPLATE_UPDATE_TOKEN": token, "CURL_LOG": str(remote.parent / "curl.log")}
    if provider == "gitlab":
        env |= {
            "CI_SERVER_PROTOCOL": "https",
            "CI_SERVER_HOST": "gitlab.example.org",
            "CI_SERVER_PORT": "443",
            "CI_PROJECT_PATH": "acme/claims",
            "CI_DEFAULT_BRANCH": "main",
            # The push URL the job builds, pointed at the local bare repository.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{remote}.insteadOf",
            "GIT_CONFIG_VALUE_0": "https://template-update:secret@gitlab.example.org:443/acme/claims.git",
        }
    else:
        env |= {"BITBUCKET_REPO_FULL_NAME": "acme/claims", "BITBUCKET_BRANCH": "main"}
        stubs = remote.parent / "bin"
        stubs.mkdir(exist_ok=True)
        (stubs / "curl").write_text(CURL_STUB)
        (stubs / "curl").chmod(0o755)
        env["PATH"] = f"{stubs}{os.pathsep}{tool_env()['PATH']}"
    script = update_job_script(project, provider)
    return run(["bash", "-eo", "pipefail", "-c", script], project, check=False, env=tool_env(env))


@pytest.mark.e2e
@pytest.mark.parametrize("provider", ["gitlab", "bitbucket"])
def test_scheduled_update_job_proposes_the_new_version(tmp_path: Path, provider: str) -> None:
    template = template_clone(tmp_path / "template")
    project = generate(template, tmp_path / "project", ci_provider=provider)
    remote = tmp_path / "remote.git"
    run(["git", "init", "--quiet", "--bare", remote], tmp_path)
    git(remote, "config", "receive.advertisePushOptions", "true")
    git(project, "remote", "add", "origin", str(remote))
    git(project, "push", "--quiet", "origin", "main")

    no_token = run_update_job(project, provider, remote, token="")
    assert no_token.returncode == 1
    assert "TEMPLATE_UPDATE_TOKEN" in no_token.stderr

    current = run_update_job(project, provider, remote)
    assert current.returncode == 0, current.stdout + current.stderr
    assert "nothing to propose" in current.stdout
    assert "template-update" not in git(remote, "branch", "--list")

    conflict_with_0_2_0(project)
    git(project, "push", "--quiet", "origin", "main")
    release_0_2_0(template)
    proposed = run_update_job(project, provider, remote)
    assert proposed.returncode == 0, proposed.stdout + proposed.stderr
    branch_answers = yaml.safe_load(git(remote, "show", "template-update:.copier-answers.yml"))
    assert branch_answers["_commit"] == "v0.2.0"
    # Proposed with its conflict, for the user to resolve on the branch.
    assert conflict_markers(git(remote, "show", "template-update:Makefile"))
    title = "Update from the project template (v0.2.0)"
    assert git(remote, "log", "-1", "--format=%s", "template-update").strip() == title
    assert git(remote, "rev-parse", "main") == git(project, "rev-parse", "main")
    if provider == "bitbucket":
        request = json.loads((tmp_path / "curl.log.json").read_text())
        assert request["title"] == title
        assert request["source"]["branch"]["name"] == "template-update"
        assert request["destination"]["branch"]["name"] == "main"


# ---------------------------------------------------------------- from the real first release


def release_commit(repo: Path, version: str) -> str:
    """The commit that released ``version``: the one that added its CHANGELOG heading."""
    found = git(repo, "log", "--format=%H", f"-S## [{version}]", "--", "CHANGELOG.md").split()
    assert found, f"no commit added ## [{version}] to CHANGELOG.md: is the history complete?"
    return found[-1]


def latest_release() -> str:
    headings = re.findall(
        r"^## \[(\d+\.\d+\.\d+)\]",
        (TEMPLATE_ROOT / "CHANGELOG.md").read_text(),
        flags=re.MULTILINE,
    )
    return max(headings, key=Version)


def next_patch(version: str) -> str:
    major, minor, patch = version.split(".")
    return f"{major}.{minor}.{int(patch) + 1}"


def locked_versions(project: Path) -> dict[str, str]:
    """Each package of ``uv.lock`` and the version it is pinned at."""
    lock = tomllib.loads((project / "uv.lock").read_text(encoding="utf-8"))
    return {package["name"]: package["version"] for package in lock["package"]}


@pytest.fixture(scope="module")
def used_since_0_1_0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The real 0.1.0 (from this repository's history), used, then updated to today's template.

    The user runs the pipeline, edits the project, updates, follows the upgrade
    notes of every release in between, runs the pipeline again and commits.
    """
    root = tmp_path_factory.mktemp("since-0.1.0")
    template = root / "template"
    run(["git", "clone", "--quiet", "--no-local", TEMPLATE_ROOT, template], root)
    git(template, "tag", "v0.1.0", release_commit(template, "0.1.0"))
    # Today's template (the working tree, as this run tests it) as the newest release.
    git(template, "rm", "-r", "--quiet", ".")
    shutil.copytree(TEMPLATE_ROOT, template, ignore=LEFT_BEHIND, dirs_exist_ok=True, symlinks=True)
    new = latest_release()
    git(template, "add", "--all")
    git(template, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", f"Release {new}")
    git(template, "tag", f"v{new}")

    project = generate(template, root / "claims-fraud-detection")
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    commit_all(project, "First run")
    sub(project / "params.yaml", r"^(\s+C:) 1\.0$", r"\1 0.7")
    (project / CONFIG_PY).write_text((project / CONFIG_PY).read_text() + USER_FUNCTION)
    commit_all(project, "Our changes")

    update(project)
    conflicted = [
        path.relative_to(project).as_posix()
        for path in project.rglob("*")
        if path.is_file()
        and ".git" not in path.parts
        and ".venv" not in path.parts
        and conflict_markers(path.read_text(encoding="utf-8", errors="ignore"))
    ]

    # The upgrade notes of 0.2.0 (and later), as a user follows them.
    if (project / "reports" / "fingerprint.json").exists():
        git(project, "rm", "--quiet", "reports/fingerprint.json")
    params = project / "params.yaml"
    params.write_text(
        re.sub(
            r"^(\s*)estimator: (\w+)\s+#\s*(.*)$",
            r"\1# \3\n\1estimator: \2",
            params.read_text(),
            flags=re.MULTILINE,
        )
    )
    run(["uv", "lock"], project)
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    run(["make", "test"], project)
    commit_all(project, f"Update to template {new}")
    return {"template": template, "project": project, "version": new, "conflicted": conflicted}


@pytest.mark.e2e
@pytest.mark.xdist_group("since-0.1.0")
def test_a_project_from_the_released_0_1_0_updates_and_runs_the_new_lifecycle(
    used_since_0_1_0: dict[str, Any],
) -> None:
    """The update merges cleanly, and the project's own tools then work (`make test` ran)."""
    project = used_since_0_1_0["project"]
    assert answers(project)["_commit"] == f"v{used_since_0_1_0['version']}"
    assert used_since_0_1_0["conflicted"] == []
    assert "C: 0.7" in (project / "params.yaml").read_text()
    assert "def claims_table_path" in (project / CONFIG_PY).read_text()
    assert (project / "src" / PACKAGE / "reproduce.py").is_file()
    listed = run(["make", "--silent", "experiments"], project).stdout
    assert "<- pick" in listed
    found = json.loads(run(["make", "--silent", "find-run", "REF=HEAD"], project).stdout)
    assert found["record"]["run_id"]


@pytest.mark.e2e
@pytest.mark.xdist_group("since-0.1.0")
def test_verify_leaves_a_committed_run_as_it_was_so_the_next_update_can_run(
    used_since_0_1_0: dict[str, Any],
) -> None:
    # copier update refuses a dirty work tree: nothing a run commits may change
    # when the same run is repeated (no timestamps, no absolute paths).
    project = used_since_0_1_0["project"]
    run(["make", "verify"], project)
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""


@pytest.mark.e2e
@pytest.mark.xdist_group("since-0.1.0")
def test_update_template_relocks_and_a_tracker_switch_leaves_the_old_runs_out_of_git(
    used_since_0_1_0: dict[str, Any], tmp_path: Path
) -> None:
    """A new release adds a dependency; the user takes it and switches MLflow for DVCLive."""
    project = tmp_path / "project"
    shutil.copytree(
        used_since_0_1_0["project"], project, ignore=shutil.ignore_patterns(".venv"), symlinks=True
    )
    assert (project / "mlflow.db").is_file(), "the scenario needs MLflow runs on disk"
    before = locked_versions(project)
    template, version = used_since_0_1_0["template"], next_patch(used_since_0_1_0["version"])
    edit(
        template / "template" / "pyproject.toml.jinja",
        "dependencies = [\n",
        'dependencies = [\n    "tabulate>=0.9",\n',
    )
    release(template, f"v{version}", "A new dependency")

    result = run(["make", "update-template", "ANSWERS=experiment_tracker=dvclive"], project)

    assert answers(project)["_commit"] == f"v{version}"
    assert answers(project)["experiment_tracker"] == "dvclive"
    assert "Re-locking uv.lock" in result.stdout
    run(["uv", "lock", "--check"], project)
    after = locked_versions(project)
    assert {"tabulate", "dvclive"} <= after.keys()
    assert "mlflow" not in after
    kept = before.keys() & after.keys()
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    # The old tracker's store stays on disk, and out of what `git add --all` takes.
    assert (project / "mlflow.db").is_file()
    status = git(project, "status", "--porcelain", "--untracked-files=all")
    old_store = [
        line for line in status.splitlines() if re.search(r"mlflow\.db|mlruns|mlartifacts", line)
    ]
    assert old_store == []

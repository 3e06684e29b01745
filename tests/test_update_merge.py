"""`copier update` keeps what the user wrote and brings the template's improvements.

A project generated at v0.1.0 and edited by its user (code, README, the files
the user owns) is updated to a v0.2.0 that changed the same files: the edits
merge, a real conflict stays visible, user-owned files are left alone, and the
post-copy task does not run again. The clone, generate and update helpers are
in tests/support.py.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from support import (
    CONFIG_PY,
    TEMPLATE_ROOT,
    USER_FUNCTION,
    USER_NOTEBOOK,
    answers,
    commit_all,
    conflict_markers,
    edit,
    generate,
    git,
    release,
    run,
    sub,
    template_clone,
    update,
)

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
        tpl / "src" / "{{ package_name }}" / "shared" / "paths.py.jinja",
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

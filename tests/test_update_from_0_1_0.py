"""A project made from the real 0.1.0 release updates to today's template and still runs.

The 0.1.0 is taken from this repository's history, today's working tree is
released after it; the project runs its pipeline before and after the update,
and `make update-template` then takes one more release that adds a dependency.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest
from support import (
    CONFIG_PY,
    OLD_CONFIG_PY,
    PACKAGE,
    USER_FUNCTION,
    after_updating,
    answers,
    commit_all,
    conflicted_files,
    edit,
    generate,
    git,
    release,
    released_template,
    run,
    sub,
    update,
)


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
    template, new = released_template(root, "0.1.0")

    project = generate(template, root / "claims-fraud-detection")
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    commit_all(project, "First run")
    sub(project / "params.yaml", r"^(\s+C:) 1\.0$", r"\1 0.7")
    (project / OLD_CONFIG_PY).write_text((project / OLD_CONFIG_PY).read_text() + USER_FUNCTION)
    commit_all(project, "Our changes")

    update(project)
    conflicted = conflicted_files(project)
    # 0.8.0 dissolved config.py: the user's function, appended after the
    # load_params the template moved away, stands in a conflict in its new home.
    # The user keeps the new version and their function, as they would by hand.
    merged = (project / CONFIG_PY).read_text(encoding="utf-8")
    assert "def claims_table_path" in merged
    (project / CONFIG_PY).write_text(after_updating(merged).rstrip("\n") + "\n" + USER_FUNCTION)

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
    run(["uv", "lock", "--check"], project)  # the update re-locked (hooks/migrations/relock.py)
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
    """The update merges (one visible conflict, resolved), and the project's tools then work."""
    project = used_since_0_1_0["project"]
    assert answers(project)["_commit"] == f"v{used_since_0_1_0['version']}"
    assert used_since_0_1_0["conflicted"] == [CONFIG_PY]
    assert "C: 0.7" in (project / "params.yaml").read_text()
    assert "def claims_table_path" in (project / CONFIG_PY).read_text()
    assert (project / "src" / PACKAGE / "commands" / "reproduce.py").is_file()
    assert not (project / OLD_CONFIG_PY).exists()
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

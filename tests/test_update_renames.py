"""Breaking renames: the migration moves the user's files, and only across its version.

`hooks/migrations/rename_paths.py` runs after every `copier update` and applies
the renames of `hooks/migrations/renames.yml` that the update crosses: first in
a real update, then the script on its own against tables made for each case.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import (
    PACKAGE,
    TEMPLATE_ROOT,
    USER_NOTEBOOK,
    answers,
    commit_all,
    edit,
    generate,
    git,
    release,
    run,
    template_clone,
    tool_env,
    update,
)

RENAME_SCRIPT = TEMPLATE_ROOT / "hooks" / "migrations" / "rename_paths.py"


# ---------------------------------------------------------------- migrations


def rename_notebooks_in_0_2_0(template: Path) -> None:
    """A breaking rename, test-only: notebooks/ becomes analysis/, listed in renames.yml."""
    git(template, "mv", "template/notebooks", "template/analysis")
    edit(template / "copier.yml", "  - notebooks/**\n", "  - analysis/**\n")
    edit(
        template / "hooks" / "migrations" / "renames.yml",
        "\nrenames:\n",
        '\nrenames:\n  - version: "0.2.0"\n    old: notebooks\n    new: analysis\n',
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
    answers = tmp_path.parent / f"{tmp_path.name}-answers.yml"
    answers.write_text(f"package_name: {PACKAGE}\n")

    def _rename(
        version_from: str, version_to: str, table_text: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        table.write_text(table_text)
        command = [sys.executable, RENAME_SCRIPT, version_from, version_to, f"--table={table}"]
        command.append(f"--answers-file={answers}")
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


def test_a_path_names_the_projects_package(tmp_path: Path, rename) -> None:
    """``{{ package_name }}`` in a rename is the project's own package."""
    old = tmp_path / "src" / PACKAGE / "config.py"
    old.parent.mkdir(parents=True)
    old.write_text("SEED = 1\n")
    package = "src/{{ package_name }}"
    rename("0.1", "2.0", one_rename(f"{package}/config.py", f"{package}/shared/paths.py"))
    assert not old.exists()
    assert (tmp_path / "src" / PACKAGE / "shared" / "paths.py").read_text() == "SEED = 1\n"


def test_an_edited_module_copier_removed_stays_at_its_old_place_without_a_base(
    tmp_path: Path, rename
) -> None:
    """With no old version to merge against, the user's edits are put back and named."""
    old = tmp_path / "src" / PACKAGE / "config.py"
    old.parent.mkdir(parents=True)
    old.write_text("SEED = 7  # ours\n")
    git(tmp_path, "init", "--quiet")
    commit_all(tmp_path, "Our edits")
    old.unlink()  # copier removes a module the new version no longer has
    new = tmp_path / "src" / PACKAGE / "shared" / "paths.py"
    new.parent.mkdir()
    new.write_text("SEED = 1\n")
    package = "src/{{ package_name }}"
    done = rename("0.1", "2.0", one_rename(f"{package}/config.py", f"{package}/shared/paths.py"))
    assert old.read_text() == "SEED = 7  # ours\n"
    assert new.read_text() == "SEED = 1\n"
    assert f"kept your edited src/{PACKAGE}/config.py where it was" in done.stderr

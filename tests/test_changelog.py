"""CHANGELOG.md, the release tags and the renames table tell the same story.

Users read the changelog before `copier update`, and the migration reads the
renames table; a release missing from either one would surprise them.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from pathlib import Path

import yaml
from packaging.version import Version
from support import TEMPLATE_ROOT, release_commit, render

HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\](?: - (?P<date>.+))?$", flags=re.M)


def entries() -> dict[str, str]:
    """Each `## [version]` section of CHANGELOG.md, by version, in file order."""
    text = (TEMPLATE_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    matches = list(HEADING.finditer(text))
    ends = [m.start() for m in matches[1:]] + [len(text)]
    return {m["version"]: text[m.end() : end] for m, end in zip(matches, ends, strict=True)}


def releases() -> dict[Version, str]:
    return {Version(v): body for v, body in entries().items() if v != "Unreleased"}


def test_changelog_starts_with_unreleased_then_releases_newest_first() -> None:
    versions = list(entries())
    assert versions[0] == "Unreleased"
    released = [Version(v) for v in versions[1:]]
    assert released, "no release in CHANGELOG.md"
    assert released == sorted(released, reverse=True)


def test_every_release_is_dated_and_has_upgrade_notes() -> None:
    text = (TEMPLATE_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for match in HEADING.finditer(text):
        if match["version"] != "Unreleased":
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", match["date"] or ""), match[0]
    for version, body in releases().items():
        notes = body.split("### Upgrade notes", 1)
        assert len(notes) == 2, f"{version} has no 'Upgrade notes'"
        assert notes[1].strip().startswith("- "), f"{version}: its upgrade notes are empty"


def test_every_rename_is_released_and_in_its_upgrade_notes() -> None:
    table = yaml.safe_load((TEMPLATE_ROOT / "hooks" / "migrations" / "renames.yml").read_text())
    notes = {v: body.split("### Upgrade notes", 1)[-1] for v, body in releases().items()}
    for rename in table["renames"] or []:
        version = Version(str(rename["version"]))
        assert version in notes, f"rename of {rename['old']} in {version}: no such release"
        assert f"`{rename['old']}" in notes[version], f"{version}: upgrade notes omit {rename}"


def test_each_release_is_a_commit_that_copier_offers_as_that_version(tmp_path: Path) -> None:
    """Tag every release in a clone, as releasing does: copier offers the newest one."""
    clone = tmp_path / "template"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-local", str(TEMPLATE_ROOT), str(clone)], check=True
    )
    versions = sorted(releases())
    commits = [release_commit(clone, str(version)) for version in versions]
    missing = [str(v) for v, commit in zip(versions, commits, strict=True) if commit is None]
    assert not missing, f"no commit of this branch releases {missing} (a heading never committed?)"
    for older, newer in itertools.pairwise(commits):
        ancestry = subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=clone)
        assert ancestry.returncode == 0, "releases in the changelog are out of commit order"
    for version, commit in zip(versions, commits, strict=True):
        subprocess.run(["git", "tag", f"v{version}", commit], cwd=clone, check=True)
    project = render(tmp_path / "project", vcs_ref=None, template=clone)
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]
    assert recorded == f"v{versions[-1]}"

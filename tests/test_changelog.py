"""CHANGELOG.md, the release tags and the renames table tell the same story.

Users read the changelog before `copier update`, and the migration reads the
renames table; a release missing from either one would surprise them.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from packaging.version import Version
from support import TEMPLATE_ROOT

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


def git_tags() -> list[str]:
    try:
        result = subprocess.run(
            ["git", "tag", "--list", "v*"], cwd=TEMPLATE_ROOT, capture_output=True, text=True
        )
    except FileNotFoundError:
        return []
    return result.stdout.split() if result.returncode == 0 else []


@pytest.mark.parametrize("tag", git_tags() or [pytest.param(None, marks=pytest.mark.skip)])
def test_every_release_tag_has_a_changelog_entry(tag: str) -> None:
    assert Version(tag) in releases(), f"tag {tag} has no entry in CHANGELOG.md"

"""Migration: move a project's files across the paths the template renamed.

copier.yml runs it after every `copier update` between two released versions::

    _migrations:
      - command:
          - "{{ _copier_python }}"
          - "{{ _copier_conf.src_path }}/hooks/migrations/rename_paths.py"
          - "{{ _version_pep440_from }}"
          - "{{ _version_pep440_to }}"
          - "--answers-file={{ _copier_conf.answers_file }}"
        when: "{{ _stage == 'after' }}"

The renames themselves are data, in renames.yml next to this script: each has
the version that made it, an old path and a new path (``{{ package_name }}``
and any other answer in a path is replaced by the project's answer). An update
from FROM to TO applies the renames with FROM < version <= TO, oldest first,
so a project that skips releases still gets every move.

A file of the user's own (a notebook, say) is still where it was; it moves:

- to its new place when that place is free;
- nowhere when the file at its new place is identical (the old one is removed);
- nowhere when the file at its new place differs: it stays where it is, and is
  named on stderr, so the user merges the two by hand (nothing is lost).

A file the template renders (a module of the package) is already gone from
its old place: copier removes the files the new version no longer has, edits
and all. The edits are in the commit the update started from, so they are
carried to the new place by a three-way merge (``git merge-file``): the
user's version, the old version as the template rendered it (rendered again
here, with the project's answers, at the version it was generated from), and
the new version at its new place. Where both changed the same lines, the file
keeps copier's conflict markers, and ``make update-template`` names it.

Running it again changes nothing. Paths must stay inside the project. It runs
with copier's own Python, so it uses only the standard library and what copier
itself depends on (PyYAML, packaging, copier).
"""

from __future__ import annotations

import argparse
import filecmp
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from packaging.version import InvalidVersion, Version
from rendered import render_version

RENAMES = Path(__file__).with_name("renames.yml")
# The labels copier gives the sides of a conflict, which `make update-template`
# and the pre-commit hooks look for.
LABELS = ("before updating", "last update", "after updating")
MARKER = f"<<<<<<< {LABELS[0]}".encode()


def say(message: str) -> None:
    print(f"[migrate] {message}", file=sys.stderr, flush=True)


def inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(root):
        raise SystemExit(f"[migrate] refusing {relative!r}: it is outside the project ({root}).")
    return path


def move_file(old: Path, new: Path, root: Path) -> None:
    if new.exists():
        if filecmp.cmp(old, new, shallow=False):
            old.unlink()
        else:
            say(
                f"kept {old.relative_to(root)}: {new.relative_to(root)} already exists "
                "with other content; merge the two by hand."
            )
        return
    new.parent.mkdir(parents=True, exist_ok=True)
    old.rename(new)
    say(f"moved {old.relative_to(root)} -> {new.relative_to(root)}")


def remove_empty_folders(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def git(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=root, capture_output=True)


def committed(root: Path, relative: str) -> bytes | None:
    """The file's bytes in the commit the update started from, or ``None``.

    ``HEAD:./path`` is read from the project's folder, which may be a
    subfolder of its git repository.
    """
    shown = git(root, "show", f"HEAD:./{relative}")
    return shown.stdout if shown.returncode == 0 else None


def committed_answers(root: Path, answers_file: str) -> dict[str, Any]:
    """The answers the project had before the update (its version, source and answers)."""
    text = committed(root, answers_file)
    answers = yaml.safe_load(text.decode("utf-8")) if text else None
    return answers if isinstance(answers, dict) else {}


@cache
def old_render(root: Path, answers_file: str) -> Path | None:
    """The project as the template rendered it at the version it is updated from.

    ``None`` when it cannot be rendered again: then no edit is merged (the
    user's version is kept at its old place, and named).
    """
    answers = committed_answers(root, answers_file)
    try:
        return render_version(answers, "copier-renames-")
    except Exception as error:  # noqa: BLE001 - any failure only loses the merge base
        say(f"could not render {answers.get('_commit')} again to merge your edits ({error}).")
        return None


def keep_at_old_place(relative: str, ours: bytes, root: Path, why: str) -> None:
    """Put the user's edited version back where it was, and say why it was not merged."""
    old = root / relative
    old.parent.mkdir(parents=True, exist_ok=True)
    old.write_bytes(ours)
    say(f"kept your edited {relative} where it was: {why}; move your edits by hand.")


def merge_edits(relative: str, new: Path, root: Path, answers_file: str) -> None:
    """Carry the user's edits of a rendered file that copier removed to its new place.

    The user's version is the one committed before the update; the base, the
    same file as the old version rendered it. An unedited file needs nothing;
    a file the user deleted stays deleted at its new place too.
    """
    ours = committed(root, relative)
    rendered = old_render(root, answers_file)
    base_file = rendered / relative if rendered else None
    base = base_file.read_bytes() if base_file and base_file.is_file() else None
    target = new.relative_to(root).as_posix()
    if ours is None:
        if base is not None and new.is_file() and not committed(root, target):
            new.unlink()  # deleted by the user before: the template's new copy goes too
            say(f"removed {target}: you had deleted {relative}")
        return
    if ours == base:
        return  # not edited: the new version stands (or its absence, when it has none)
    if base is None:
        keep_at_old_place(relative, ours, root, "the version it came from could not be read")
        return
    if not new.is_file():
        keep_at_old_place(relative, ours, root, f"this version has no {target}")
        return
    if MARKER in new.read_bytes():
        return  # merged on an earlier run, conflicts still to resolve
    with tempfile.TemporaryDirectory() as scratch:
        current, before = Path(scratch, "current"), Path(scratch, "base")
        current.write_bytes(ours)
        before.write_bytes(base)
        labels = [option for label in LABELS for option in ("-L", label)]
        merged = git(root, "merge-file", *labels, str(current), str(before), str(new))
        new.write_bytes(current.read_bytes())
    if merged.returncode == 0:
        say(f"merged your edits of {relative} into {target}")
    else:
        say(
            f"merged your edits of {relative} into {target}, with conflicts: "
            "resolve the markers, then commit."
        )


def rename(old: Path, new: Path, root: Path, answers_file: str | None = None) -> None:
    if old.is_symlink() or old.is_file():
        move_file(old, new, root)
    elif not old.exists() and answers_file is not None:
        merge_edits(old.relative_to(root).as_posix(), new, root, answers_file)
    elif old.is_dir():
        files = [p for p in old.rglob("*") if p.is_file() or p.is_symlink()]
        for path in sorted(files):
            move_file(path, new / path.relative_to(old), root)
        remove_empty_folders(old)


def load_renames(table: Path) -> list[tuple[Version, str, str]]:
    """The renames of ``table``, oldest first; exit with a message naming a bad entry."""
    entries = (yaml.safe_load(table.read_text(encoding="utf-8")) or {}).get("renames") or []
    renames = []
    for number, entry in enumerate(entries, start=1):
        try:
            renames.append((Version(str(entry["version"])), str(entry["old"]), str(entry["new"])))
        except (KeyError, TypeError, InvalidVersion) as error:
            raise SystemExit(
                f"[migrate] {table.name}, rename {number}: needs a PEP 440 version, "
                f"an old and a new path ({error!r})."
            ) from error
    return sorted(renames, key=lambda rename: rename[0])


def expand(path: str, answers: dict[str, Any]) -> str:
    """``path`` with each ``{{ question }}`` replaced by the project's answer."""

    def answer(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in answers:
            raise SystemExit(f"[migrate] {path!r} names {name!r}, which the answers lack.")
        return str(answers[name])

    return re.sub(r"\{\{\s*(\w+)\s*\}\}", answer, path)


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Apply the template's renames to this project.")
    parser.add_argument("version_from", type=Version, help="the project's template version")
    parser.add_argument("version_to", type=Version, help="the version it is updated to")
    parser.add_argument("--table", type=Path, default=RENAMES, help="renames file (YAML)")
    parser.add_argument(
        "--answers-file", help="the project's answers file, for paths that name an answer"
    )
    options = parser.parse_args(args)
    root = Path.cwd().resolve()
    answers_path = root / options.answers_file if options.answers_file else None
    answers = (
        yaml.safe_load(answers_path.read_text(encoding="utf-8")) or {}
        if answers_path and answers_path.is_file()
        else {}
    )
    # Old paths are the project's before the update (an answer may change with it).
    before = committed_answers(root, options.answers_file) if options.answers_file else {}
    for version, old, new in load_renames(options.table):
        if options.version_from < version <= options.version_to:
            old_path = inside(root, expand(old, before or answers))
            new_path = inside(root, expand(new, answers))
            rename(old_path, new_path, root, options.answers_file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

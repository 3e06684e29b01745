"""Migration: move a project's files across the paths the template renamed.

copier.yml runs it after every `copier update` between two released versions::

    _migrations:
      - command:
          - "{{ _copier_python }}"
          - "{{ _copier_conf.src_path }}/hooks/migrations/rename_paths.py"
          - "{{ _version_pep440_from }}"
          - "{{ _version_pep440_to }}"
        when: "{{ _stage == 'after' }}"

The renames themselves are data, in renames.yml next to this script: each has
the version that made it, an old path and a new path. An update from FROM to
TO applies the renames with FROM < version <= TO, oldest first, so a project
that skips releases still gets every move. Each moves a file, or every file
under a folder, to its new place:

- a file whose new place is free is moved there;
- a file identical to the one already at its new place is removed;
- a file that differs from the one at its new place stays where it is, and is
  named on stderr, so the user merges the two by hand (nothing is lost).

Running it again changes nothing. Paths must stay inside the project. It runs
with copier's own Python, so it uses only the standard library and what copier
itself depends on (PyYAML, packaging).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

RENAMES = Path(__file__).with_name("renames.yml")


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


def rename(old: Path, new: Path, root: Path) -> None:
    if old.is_symlink() or old.is_file():
        move_file(old, new, root)
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


def main(args: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Apply the template's renames to this project.")
    parser.add_argument("version_from", type=Version, help="the project's template version")
    parser.add_argument("version_to", type=Version, help="the version it is updated to")
    parser.add_argument("--table", type=Path, default=RENAMES, help="renames file (YAML)")
    options = parser.parse_args(args)
    root = Path.cwd().resolve()
    for version, old, new in load_renames(options.table):
        if options.version_from < version <= options.version_to:
            rename(inside(root, old), inside(root, new), root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Migration: move a project's files across a path the template renamed.

Usage, from a `_migrations` entry of copier.yml (the command runs in the
project's root after `copier update` has rendered the new version)::

    _migrations:
      - version: v2.0.0
        command:
          - "{{ _copier_python }}"
          - "{{ _copier_conf.src_path }}/hooks/migrations/rename_paths.py"
          - old/path
          - new/path
        when: "{{ _stage == 'after' }}"

Copier runs it only when an update crosses ``version``. Each OLD NEW pair
moves a file, or every file under a folder, to its new place:

- a file whose new place is free is moved there;
- a file identical to the one already at its new place is removed;
- a file that differs from the one at its new place stays where it is, and is
  named on stderr, so the user merges the two by hand (nothing is lost).

Running it again changes nothing. Paths must stay inside the project.
"""

from __future__ import annotations

import filecmp
import sys
from pathlib import Path


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


def main(args: list[str]) -> int:
    if not args or len(args) % 2:
        say("usage: rename_paths.py OLD NEW [OLD NEW ...]")
        return 2
    root = Path.cwd().resolve()
    pairs = [
        (inside(root, old), inside(root, new))
        for old, new in zip(args[::2], args[1::2], strict=True)
    ]
    for old, new in pairs:
        rename(old, new, root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

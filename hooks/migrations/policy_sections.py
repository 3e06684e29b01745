"""Migration: bring the policy's new sections into the user's ``metrics_policy.yaml``.

``metrics_policy.yaml`` is the team's (``_skip_if_exists``): ``copier update``
never rewrites it. A release that adds a section to the policy (0.11.0 added
``resources`` and ``monitoring``) would then leave it out of every project
made before, and the command that reads it would have no bounds. copier.yml
runs this after every update: it renders the new version's policy with the
project's answers and appends, to the user's file, each section of
:data:`BROUGHT` the file lacks, with its comments, as the template writes it.
Nothing the user wrote changes; the update's diff shows what arrived, for
review. Sections that would judge an old project by new rules (the dummy
baseline, the slices, the leak check, the selection rule) are not brought:
their absence keeps the old behaviour, as their upgrade notes say.

A policy that is not YAML, or a version that cannot be rendered, is said on
stderr and left as it is. Running it again changes nothing. It runs with
copier's own Python: the standard library, PyYAML and copier.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from rendered import render_version

POLICY = "metrics_policy.yaml"
# The sections brought into an existing policy: each only bounds a command
# that cannot run without it (monitoring) or shows what it does not enforce
# (resources, enforce: false).
BROUGHT = ("monitoring", "resources")
TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):")


def say(message: str) -> None:
    print(f"[update] {message}", file=sys.stderr, flush=True)


def sections(text: str) -> dict[str, str]:
    """Each top-level key of a YAML file, with the comment lines just above it."""
    found: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    starts = [index for index, line in enumerate(lines) if TOP_KEY.match(line)]
    for position, start in enumerate(starts):
        first = start
        while first > 0 and lines[first - 1].startswith("#"):
            first -= 1
        end = starts[position + 1] if position + 1 < len(starts) else len(lines)
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1
        key = TOP_KEY.match(lines[start])
        if key is not None:
            found[key.group(1)] = "".join(lines[first:end])
    return found


def rendered_policy(answers_file: str) -> str | None:
    """The policy the template renders now, with the project's answers."""
    answers = yaml.safe_load(Path(answers_file).read_text(encoding="utf-8")) or {}
    try:
        project = render_version(answers, "copier-policy-")
    except Exception as error:  # noqa: BLE001 - any failure leaves the user's file as it is
        say(f"could not render the new {POLICY} to add its new sections ({error}).")
        return None
    path = project / POLICY if project else None
    return path.read_text(encoding="utf-8") if path and path.is_file() else None


def main(args: list[str]) -> int:
    """Append the sections the user's policy lacks; always 0."""
    answers_file = next(
        (arg.split("=", 1)[1] for arg in args if arg.startswith("--answers-file=")),
        ".copier-answers.yml",
    )
    policy = Path(POLICY)
    if not policy.is_file():
        return 0
    text = policy.read_text(encoding="utf-8")
    try:
        mine: Any = yaml.safe_load(text)
    except yaml.YAMLError:
        say(f"{POLICY} is not valid YAML: its new sections were not added.")
        return 0
    if not isinstance(mine, dict):
        return 0
    new = rendered_policy(answers_file)
    if new is None:
        return 0
    missing = {
        key: block for key, block in sections(new).items() if key in BROUGHT and key not in mine
    }
    if not missing:
        return 0
    added = "".join(f"\n{block}" for block in missing.values())
    policy.write_text(text.rstrip("\n") + "\n" + added, encoding="utf-8")
    say(
        f"{POLICY}: added the section(s) {', '.join(missing)} of the new version, "
        "with the template's defaults: review them."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

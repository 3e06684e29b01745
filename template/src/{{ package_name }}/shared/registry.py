"""The model registry in git: promoted versions and the champion, as GTO's tags.

``make promote`` tags the commit of each promoted run ``<model>@v<N>.0.0``
(annotated: its message holds the promotion's details as JSON) and assigns
the ``champion`` stage with ``<model>#champion#<K>``, where ``K`` counts the
assignments: the latest assignment holds the stage, as GTO reads it.
``make rollback`` adds an assignment that points the stage back at the
previous version, so history is never rewritten. Every tracker has this
registry; MLflow's (aliases on registered model versions) follows it.

:func:`pipeline_at` reads the inference pipeline a commit's ``dvc.lock``
recorded, from DVC's cache, fetching it from the DVC remote when it is not
there.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .git import git, show_file
from .lock import read_yaml
from .paths import DVC_YAML_FILE, LOCK_PATH, PROJECT_ROOT

STAGE = "champion"


class RegistryError(Exception):
    """The registry cannot answer as asked (reported in one line)."""


@dataclass(frozen=True)
class Version:
    """A promoted version, read back from its git tag."""

    tag: str
    number: int
    commit: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Assignment:
    """One assignment of the stage to a version: tag ``<model>#<stage>#<counter>``."""

    tag: str
    counter: int
    commit: str


def model_artifact(root: Path = PROJECT_ROOT) -> tuple[str, str]:
    """The name and path of the model declared in ``dvc.yaml``'s ``artifacts``."""
    declared = (read_yaml(root / DVC_YAML_FILE.name) or {}).get("artifacts") or {}
    for name, artifact in declared.items():
        if isinstance(artifact, dict) and artifact.get("type") == "model":
            return str(name), str(artifact.get("path"))
    raise RegistryError(
        f"{DVC_YAML_FILE.name} declares no artifact of type model under 'artifacts'"
    )


def _tags(root: Path, pattern: str) -> list[list[str]]:
    listed = git(
        root,
        "for-each-ref",
        f"refs/tags/{pattern}",
        "--format=%(refname:short)%09%(*objectname)%09%(contents:body)%00",
    )
    return [entry.strip("\n").split("\t", 2) for entry in listed.stdout.split("\0")]


def versions(name: str, root: Path = PROJECT_ROOT) -> list[Version]:
    """Every promoted version of ``name``, oldest first, with the details its tag holds."""
    found = []
    for parts in _tags(root, f"{name}@v*"):
        match = re.fullmatch(rf"{re.escape(name)}@v(\d+)\.0\.0", parts[0])
        if match is None or len(parts) < 2:
            continue
        try:
            details = json.loads(parts[2]) if len(parts) > 2 and parts[2].strip() else {}
        except json.JSONDecodeError:
            details = {}
        found.append(Version(parts[0], int(match.group(1)), parts[1], details))
    return sorted(found, key=lambda version: version.number)


def assignments(name: str, root: Path = PROJECT_ROOT, stage: str = STAGE) -> list[Assignment]:
    """Every assignment of ``stage`` to a version of ``name``, oldest first."""
    found = []
    for parts in _tags(root, f"{name}#{stage}#*"):
        match = re.fullmatch(rf"{re.escape(name)}#{re.escape(stage)}#(\d+)", parts[0])
        if match is not None and len(parts) >= 2:
            found.append(Assignment(parts[0], int(match.group(1)), parts[1]))
    return sorted(found, key=lambda assignment: assignment.counter)


def champion(name: str, root: Path = PROJECT_ROOT) -> Version | None:
    """The version that holds the champion stage now (its latest assignment), if any."""
    history = assignments(name, root)
    if not history:
        return None
    commit = history[-1].commit
    held = [version for version in versions(name, root) if version.commit == commit]
    return held[-1] if held else None


def assign(name: str, version: Version, message: str, root: Path = PROJECT_ROOT) -> str:
    """Assign the champion stage to ``version`` with a new tag; return the tag."""
    counter = max((found.counter for found in assignments(name, root)), default=0) + 1
    tag = f"{name}#{STAGE}#{counter}"
    create_tag(root, tag, version.commit, message)
    return tag


def create_tag(root: Path, tag: str, commit: str, message: str) -> None:
    """Create the annotated tag ``tag`` on ``commit``."""
    done = git(root, "tag", "--annotate", tag, commit, "--message", message)
    if done.returncode != 0:
        raise RegistryError(f"git could not create tag {tag}: {done.stderr.strip()}")


def find_version(ref: str, name: str, root: Path = PROJECT_ROOT) -> Version | None:
    """The version ``ref`` names: ``champion``, ``v2``, ``v2.0.0`` or ``<model>@v2.0.0``."""
    if ref == STAGE:
        return champion(name, root)
    match = re.fullmatch(rf"(?:{re.escape(name)}@)?v(\d+)(?:\.0\.0)?", ref)
    if match is None:
        return None
    number = int(match.group(1))
    return next((found for found in versions(name, root) if found.number == number), None)


def locked_hash(commit: str, path: str, root: Path = PROJECT_ROOT) -> str | None:
    """The MD5 that the ``dvc.lock`` committed at ``commit`` records for output ``path``."""
    text = show_file(root, commit, LOCK_PATH)
    if text is None:
        return None
    for entry in (yaml.safe_load(text) or {}).get("stages", {}).values():
        for out in entry.get("outs") or []:
            if out.get("path") == path:
                return out.get("md5")
    return None


def pipeline_bytes(commit: str, path: str, root: Path = PROJECT_ROOT) -> tuple[bytes, str]:
    """The bytes of the inference pipeline ``path`` as committed at ``commit``, and its MD5.

    Read from DVC's cache (``.dvc/cache/files/md5/``), or through DVC, which
    fetches it from the remote, when the cache lacks it.
    """
    md5 = locked_hash(commit, path, root)
    if md5 is None:
        raise RegistryError(
            f"commit {commit[:12]} has no {path} in its dvc.lock: it ran before the inference "
            "pipeline existed (0.10.0); rerun it and promote the new run"
        )
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    if cached.is_file():
        return cached.read_bytes(), md5
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        data = dvc.api.read(path, repo=str(root), rev=commit, mode="rb")
    except DvcException as error:
        raise RegistryError(
            f"{path} of commit {commit[:12]} is neither in DVC's cache nor in its remote: {error}"
        ) from None
    return bytes(data), md5


def pipeline_at(commit: str, path: str, root: Path = PROJECT_ROOT) -> tuple[Any, str]:
    """The inference pipeline ``path`` as committed at ``commit``, loaded, and its MD5."""
    import joblib

    data, md5 = pipeline_bytes(commit, path, root)
    return joblib.load(io.BytesIO(data)), md5

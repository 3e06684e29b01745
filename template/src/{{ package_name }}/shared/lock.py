"""Reading what DVC recorded: ``dvc.yaml``, ``dvc.lock`` and the hashes they hold."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml

_CHUNK_SIZE = 1 << 20

# Output path -> what DVC recorded for it (``md5``, ``size``, ...).
LockedOuts = dict[str, dict[str, Any]]


def read_yaml(path: Path) -> Any:
    """Parse a YAML file, or return ``None`` when it does not exist."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def read_lock(path: Path) -> dict[str, Any]:
    """The parsed ``dvc.lock`` at ``path`` (empty when there is none yet)."""
    lock = read_yaml(path)
    return lock if isinstance(lock, dict) else {}


def file_md5(path: Path) -> str:
    """Return a file's MD5, the hash DVC records for it in ``dvc.lock``."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def stages(lock: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each stage's entry of a parsed ``dvc.lock`` (none when it has no ``stages``)."""
    return {name: entry or {} for name, entry in (lock.get("stages") or {}).items()}


def stage_inputs(entry: dict[str, Any]) -> dict[str, Any]:
    """What a ``dvc.lock`` stage entry says went in: each dependency's hash, and the params."""
    return {
        "deps": {dep["path"]: dep.get("md5") for dep in entry.get("deps") or []},
        "params": entry.get("params") or {},
    }


def locked_outs(lock: dict[str, Any]) -> LockedOuts:
    """What DVC recorded for every stage's outputs (``md5``, ``size``, ...), by path."""
    return {
        out["path"]: {**out, "stage": name}
        for name, entry in stages(lock).items()
        for out in entry.get("outs") or []
    }


def output_hashes(lock: dict[str, Any]) -> dict[str, str | None]:
    """The hash DVC recorded for every stage's outputs."""
    return {path: out.get("md5") for path, out in sorted(locked_outs(lock).items())}


def data_hashes(lock: dict[str, Any]) -> dict[str, str | None]:
    """The hash DVC recorded for the data no stage produces (the pipeline's inputs)."""
    outs = output_hashes(lock)
    data = {
        dep["path"]: dep.get("md5")
        for entry in stages(lock).values()
        for dep in entry.get("deps") or []
        if not dep["path"].startswith("src/")
        and not any(dep["path"] == out or dep["path"].startswith(f"{out}/") for out in outs)
    }
    return dict(sorted(data.items()))

"""Run records: what ties one run of the pipeline to its code, data, params and tracker entry.

The evaluate stage writes ``reports/run.json`` next to the metrics of every
run. It holds the tracker's run id, the DVC experiment name and baseline
commit (when DVC ran it as an experiment), the git commit and dirty flag,
the environment (Python, platform, ``uv.lock``), the hashes DVC recorded for
the data and every output, and a content key: the hash of every stage's
dependencies and parameters as ``dvc.lock`` records them. The key depends on
what went into the run, not on when it was committed, so it is the same in
the tracker, in the committed ``dvc.lock`` and in an experiment's commit.

The record is committed with the run (DVC commits it into experiments too), so
``git show <commit>:reports/run.json`` names the run of any commit, and
:func:`find_run` finds the run of a commit, tag, branch, DVC experiment name
or tracker run id (``make find-run``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from . import resources
from .git import output, show_file
from .lock import data_hashes, file_md5, output_hashes, read_lock, read_yaml, stage_inputs, stages
from .params import read_params_file
from .paths import (
    DVC_YAML_FILE,
    LOCK_FILE,
    PARAMS_FILENAME,
    PROJECT_ROOT,
    RECORD_FILE,
    RECORD_PATH,
)

# The stage that records the run: its own dvc.lock entry is written after it ends.
RECORDING_STAGE = "evaluate"

Record = dict[str, Any]


class RunNotFoundError(LookupError):
    """No commit, experiment or run matches a reference."""


def git_state(root: Path) -> dict[str, Any]:
    """Return the checked-out commit and whether tracked files have uncommitted changes.

    Both are ``None`` outside a git repository (for example in a Docker image
    built without ``.git``).
    """
    commit = output(root, "rev-parse", "HEAD")
    status = output(root, "status", "--porcelain", "--untracked-files=no")
    if commit is None or status is None:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.strip(), "git_dirty": bool(status.strip())}


def dvc_experiment() -> dict[str, str | None]:
    """The DVC experiment this run belongs to, from the variables DVC sets for its stages.

    ``dvc exp run`` (in the workspace, ``--temp`` or from the queue) sets
    ``DVC_EXP_NAME`` and ``DVC_EXP_BASELINE_REV``; ``dvc repro`` sets neither.
    """
    return {
        "experiment": os.environ.get("DVC_EXP_NAME") or None,
        "baseline_commit": os.environ.get("DVC_EXP_BASELINE_REV") or None,
    }


def environment(root: Path) -> dict[str, Any]:
    """Describe the interpreter, the platform and the locked dependencies of a run."""
    lockfile = root / "uv.lock"
    return {
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "uv_lock_md5": file_md5(lockfile) if lockfile.is_file() else None,
    }


def _param(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value[key]
    return value


def running_stage_inputs(root: Path, lock: dict[str, Any], stage: str) -> dict[str, Any]:
    """The inputs DVC will record for ``stage`` once it ends, computed while it runs.

    A dependency that another stage wrote has the hash that stage's entry in
    ``dvc.lock`` already holds; any other file is hashed here (stage code is
    small). Parameters are read as DVC reads them, by their dotted names.
    """
    declared = (read_yaml(root / DVC_YAML_FILE.name) or {}).get("stages", {}).get(stage) or {}
    produced = output_hashes(lock)
    deps = {}
    for path in declared.get("deps") or []:
        if path in produced:
            deps[path] = produced[path]
        elif (root / path).is_file():
            deps[path] = file_md5(root / path)
    # DVC's two forms: a key of params.yaml, or {another file: [its keys]}.
    wanted: dict[str, list[str]] = {}
    for entry in declared.get("params") or []:
        files = entry if isinstance(entry, dict) else {PARAMS_FILENAME: [entry]}
        for file, names in files.items():
            wanted.setdefault(file, []).extend(names)
    found = {}
    for file, names in wanted.items():
        if file == PARAMS_FILENAME:
            params = read_params_file(root / PARAMS_FILENAME)
        else:
            params = read_yaml(root / file) or {}
        found[file] = {name: _param(params, name) for name in names}
    return {"deps": deps, "params": found}


def content_key(inputs: dict[str, dict[str, Any]]) -> str:
    """Hash every stage's inputs (as :func:`stage_inputs` gives them) in a stable order."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def lock_content_key(lock: dict[str, Any]) -> str:
    """The content key of a finished run, from the ``dvc.lock`` committed with it."""
    return content_key({name: stage_inputs(entry) for name, entry in stages(lock).items()})


def new_record(root: Path = PROJECT_ROOT, *, seed: int | None = None) -> Record:
    """Describe the run the recording stage is finishing, before the tracker logs it.

    Reads ``dvc.lock`` as DVC left it after the upstream stages, so no data
    file is hashed again.
    """
    lock = read_lock(root / LOCK_FILE.name)
    inputs = {
        name: stage_inputs(entry)
        for name, entry in stages(lock).items()
        if name != RECORDING_STAGE
    }
    inputs[RECORDING_STAGE] = running_stage_inputs(root, lock, RECORDING_STAGE)
    return {
        "run_id": None,
        "tracker": None,
        **dvc_experiment(),
        **git_state(root),
        "content_key": content_key(inputs),
        "seed": seed,
        "environment": environment(root),
        "data": data_hashes(lock),
        "outputs": output_hashes(lock),
        "resources": resources.for_record(RECORDING_STAGE),
    }


def write_record(record: Record, path: Path = RECORD_FILE) -> None:
    """Write a run record as stable, human-readable JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_record(path: Path = RECORD_FILE) -> Record | None:
    """The run record in the workspace (``None`` when there is none, or it is not JSON)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def record_at(revision: str, root: Path = PROJECT_ROOT) -> Record | None:
    """The run record committed at ``revision``, or ``None`` when it has none."""
    text = show_file(root, revision, RECORD_PATH)
    if text is None:
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def experiment_commits(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Every DVC experiment kept in this repository: its name and its commit.

    DVC keeps each experiment as a git ref ``refs/exps/<baseline>/<name>``.
    """
    listing = output(root, "for-each-ref", "refs/exps", "--format=%(objectname) %(refname)")
    commits = {}
    for line in (listing or "").splitlines():
        commit, ref = line.split(" ", 1)
        if ref.count("/") >= 4:  # refs/exps/ab/cdef.../name (not refs/exps/exec or stash)
            commits[ref.rsplit("/", 1)[1]] = commit
    return commits


def find_commit(ref: str, root: Path = PROJECT_ROOT) -> str:
    """Resolve a DVC experiment name, commit, tag, branch or run id to a commit.

    Raises:
        RunNotFoundError: nothing in the repository matches ``ref``.
    """
    if ref.startswith("-"):  # git would read it as an option
        raise RunNotFoundError(f"{ref!r} is not a commit, experiment or run id")
    experiments = experiment_commits(root)
    if ref in experiments:
        return experiments[ref]
    commit = output(root, "rev-parse", "--verify", "--quiet", ref + "^{commit}")
    if commit:
        return commit.strip()
    # A run id: the commits (experiments included) whose record introduced it.
    found = output(root, "log", "--all", f"-S{ref}", "--format=%H", "--", RECORD_PATH) or ""
    for candidate in found.split():
        record = record_at(candidate, root)
        if record is not None and record.get("run_id") == ref:
            return candidate
    raise RunNotFoundError(
        f"no commit, tag, branch, DVC experiment or recorded run id matches {ref!r} "
        "(`dvc exp list --all-commits` lists experiments, `git log -- reports/run.json` runs)"
    )


def find_run(ref: str, root: Path = PROJECT_ROOT) -> tuple[str, Record]:
    """Resolve a reference as :func:`find_commit` does, to a commit and its run record.

    Raises:
        RunNotFoundError: nothing matches ``ref``, or its commit holds no record.
    """
    commit = find_commit(ref, root)
    record = record_at(commit, root)
    if record is None:
        raise RunNotFoundError(
            f"{ref} (commit {commit[:12]}) has no {RECORD_PATH}: "
            "it predates run records or never ran the pipeline"
        )
    return commit, record


def experiment_of(commit: str, root: Path = PROJECT_ROOT) -> str | None:
    """The name of the DVC experiment whose commit is ``commit``, if any."""
    return next((name for name, c in experiment_commits(root).items() if c == commit), None)

"""Run a past commit's pipeline again, in a clean git worktree or in its runtime image.

:func:`rebuild` is what ``make reproduce`` does between finding the run and
comparing it: it checks the commit out in a temporary git worktree (the
workspace, its branch and its stash are never touched), gives it this
repository's DVC remotes, creates the commit's locked environment there
(``uv sync --locked``), fetches the pipeline's inputs from the DVC remote and
runs the whole pipeline (``dvc repro --force``) with tracking disabled: on the
host, or inside the runtime image built from that commit's Dockerfile and
``uv.lock``. What the pipeline wrote there is then read back for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shared import tracking
from ..shared.git import git
from ..shared.lock import data_hashes, read_lock
from ..shared.paths import LOCK_PATH, METRICS_PATH

# Where the repository sits inside the container in --in-image runs.
IMAGE_WORKDIR = "/reproduce"
ENGINES = ("docker", "podman", "buildah")
# The numeric libraries choose their kernels and thread counts from these
# variables (OPENBLAS_CORETYPE, say): a kernel other than the host's rounds
# differently, so the container computes with the host's settings.
NUMERIC_ENV_PREFIXES = ("OPENBLAS_", "GOTO_", "OMP_", "MKL_")


class ReproduceError(Exception):
    """The run cannot be reproduced as asked (reported in one line, exit status 2)."""


@dataclass(frozen=True)
class Rebuilt:
    """What the rerun of a commit wrote, and where and with which Python it ran."""

    lock: dict[str, Any]
    metrics_text: str | None  # its metrics file, ``None`` when it wrote none
    where: str  # ``host``, or ``image <tag>``
    python: str | None  # the worktree's Python version, or ``image``
    notes: list[str] = field(default_factory=list)


def _run(args: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
    """Run a step, showing its output; a failure stops the reproduction, naming the step."""
    print(f"$ {' '.join(args)}", flush=True)
    done = subprocess.run(list(args), cwd=cwd, env=None if env is None else dict(env))
    if done.returncode != 0:
        raise ReproduceError(f"`{' '.join(args)}` exited {done.returncode} in {cwd}")


@contextmanager
def worktree(root: Path, commit: str, keep: bool) -> Generator[Path]:
    """Check ``commit`` out in a temporary worktree, removed afterwards unless ``keep``."""
    folder = Path(tempfile.mkdtemp(prefix=f"reproduce-{commit[:12]}-"))
    checkout = folder / root.name
    add = ("worktree", "add", "--detach", "--quiet", str(checkout), commit)
    print(f"$ git {' '.join(add)}", flush=True)
    added = git(root, *add)
    if added.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise ReproduceError(
            f"`git {' '.join(add)}` exited {added.returncode} in {root}: {added.stderr.strip()}"
        )
    try:
        yield checkout
    finally:
        if keep:
            print(f"Kept the reproduction in {checkout} (`git worktree remove` it when done).")
        else:
            git(root, "worktree", "remove", "--force", str(checkout))
            shutil.rmtree(folder, ignore_errors=True)
            git(root, "worktree", "prune")


def copy_remotes(root: Path, checkout: Path) -> None:
    """Give the worktree this repository's DVC remotes, credentials included.

    Relative remote paths are relative to ``.dvc/`` of the repository, so the
    worktree receives them resolved (DVC resolves them on loading).
    """
    from dvc.config import Config

    source = Config(dvc_dir=str(root / ".dvc"))
    remotes = dict(source.get("remote") or {})
    default = (source.get("core") or {}).get("remote")
    target = Config(dvc_dir=str(checkout / ".dvc"))
    with target.edit("local") as local:
        local["remote"] = {name: dict(options) for name, options in remotes.items()}
        if default:
            local["core"]["remote"] = default


def scripts_dir(checkout: Path) -> Path:
    """Where the worktree's own ``.venv`` keeps its executables."""
    return checkout / ".venv" / ("Scripts" if os.name == "nt" else "bin")


def dvc(checkout: Path, *args: str) -> list[str]:
    """A DVC command run by the worktree's own environment (the commit's DVC)."""
    return [str(scripts_dir(checkout) / "python"), "-m", "dvc", *args]


def has_remote(checkout: Path) -> bool:
    """Whether the worktree has a default DVC remote to fetch from."""
    from dvc.config import Config

    return bool((Config(dvc_dir=str(checkout / ".dvc")).get("core") or {}).get("remote"))


def venv_python_version(checkout: Path) -> str | None:
    """The Python version of the worktree's ``.venv`` (the commit's, not this process's)."""
    config = checkout / ".venv" / "pyvenv.cfg"
    if not config.is_file():
        return None
    for line in config.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "version_info":
            return value.strip()
    return None


def checkout_env(checkout: Path) -> dict[str, str]:
    """The environment of the worktree's own ``.venv``, with tracking disabled."""
    venv = checkout / ".venv"
    scripts = scripts_dir(checkout)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DVC_") and key not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{scripts}{os.pathsep}{env.get('PATH', '')}"
    env[tracking.DISABLED_ENV] = "1"
    return env


def sync_environment(checkout: Path) -> None:
    """Create the commit's locked environment in the worktree."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        raise ReproduceError("uv is not installed: see https://docs.astral.sh/uv/")
    _run([uv, "sync", "--locked"], checkout, checkout_env(checkout))


def pipeline_inputs(lock: Mapping[str, Any]) -> dict[str, str | None]:
    """The data the pipeline reads but no stage writes: what must come from the remote."""
    return {path: md5 for path, md5 in data_hashes(dict(lock)).items() if md5 is not None}


def missing_in_remote(checkout: Path, env: Mapping[str, str]) -> set[str]:
    """Files of the commit that neither the remote nor the worktree's cache holds."""
    done = subprocess.run(
        dvc(checkout, "status", "--cloud", "--json"),
        cwd=checkout,
        env=dict(env),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ReproduceError(
            f"cannot read the DVC remote: {done.stderr.strip() or done.stdout.strip()}"
        )
    status = json.loads(done.stdout or "{}")
    return {path for path, state in status.items() if state == "missing"}


def fetch_inputs(checkout: Path, lock: Mapping[str, Any], ref: str) -> list[str]:
    """Pull the inputs of the pipeline ``lock`` records; return notes on what the remote lacks.

    Outputs the remote lacks are rebuilt by the pipeline anyway; an input it
    lacks cannot be rebuilt, so it stops the reproduction, naming the file
    (and ``ref``, the run as the user named it).
    """
    env = checkout_env(checkout)
    inputs = pipeline_inputs(lock)
    if not has_remote(checkout):
        if inputs:
            raise ReproduceError(
                f"{ref} reads {', '.join(inputs)}, and this repository has no DVC "
                "remote to fetch it from: add one (`dvc remote add --default`)."
            )
        return ["no DVC remote: every output rebuilt from the pipeline's code and params"]
    missing = missing_in_remote(checkout, env)
    lacking = sorted(path for path in inputs if path in missing)
    if lacking:
        raise ReproduceError(
            f"the DVC remote lacks the input data of {ref}: {', '.join(lacking)}. "
            f"Push it from a clone that has it (`dvc push {' '.join(lacking)}`), "
            "or point the remote at the storage that holds it (`dvc remote list`)."
        )
    if inputs:
        _run(dvc(checkout, "pull", *inputs), checkout, env)
    rebuilt = sorted(missing - set(inputs))
    return [f"the DVC remote lacks {path}: rebuilt by the pipeline" for path in rebuilt]


def run_pipeline(checkout: Path) -> None:
    """Run every stage of the worktree's pipeline from its inputs."""
    _run(dvc(checkout, "repro", "--force"), checkout, checkout_env(checkout))


def container_engine(engine: str) -> str:
    """The container engine to build and run the image with: asked for, set, or found."""
    chosen = engine or os.environ.get("CONTAINER_ENGINE", "")
    found = chosen or next((name for name in ENGINES if shutil.which(name)), "")
    if not found or shutil.which(found) is None:
        raise ReproduceError(
            f"no container engine found ({chosen or ', '.join(ENGINES)}): install Docker or "
            "podman, or set CONTAINER_ENGINE"
        )
    return found


def numeric_settings() -> list[str]:
    """This machine's settings of the numeric libraries, as ``NAME=value``."""
    return [
        f"{name}={value}"
        for name, value in sorted(os.environ.items())
        if name.startswith(NUMERIC_ENV_PREFIXES)
    ]


def run_pipeline_in_image(
    checkout: Path, commit: str, engine: str, build_options: Sequence[str]
) -> str:
    """Build the commit's runtime image and run the pipeline in it, on the worktree.

    The worktree is mounted into the container, so the image supplies only
    the environment (its Python and the packages of its ``uv.lock``) and the
    outputs land where they are compared. ``build_options`` go to the build
    command as they are (``--build-arg PYTHON_IMAGE=...``, a proxy's CA).
    buildah (and podman) read their isolation from ``BUILDAH_ISOLATION``.
    Returns the image's tag.
    """
    tool = container_engine(engine)
    name = Path(tool).name
    tag = f"localhost/{checkout.name}:reproduce-{commit[:12]}"
    build = [tool, "build", *build_options, "--target", "runtime", "--tag", tag, "."]
    _run(build, checkout)
    command = ["sh", "-c", f"HOME=/tmp {tracking.DISABLED_ENV}=1 dvc repro --force"]
    mount = f"{checkout}:{IMAGE_WORKDIR}"
    user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else "0:0"
    settings = [f"--env={setting}" for setting in numeric_settings()]
    if name != "buildah":
        run = ["run", "--rm", "--user", user, "--volume", mount, "--workdir", IMAGE_WORKDIR]
        _run([tool, *run, *settings, tag, *command], checkout)
        return tag
    created = subprocess.run([tool, "from", tag], capture_output=True, text=True)
    if created.returncode != 0:
        raise ReproduceError(f"buildah from {tag} failed: {created.stderr.strip()}")
    box = created.stdout.strip()
    try:
        run = ["run", "--user", user, "--volume", mount, "--workingdir", IMAGE_WORKDIR]
        _run([tool, *run, *settings, box, "--", *command], checkout)
    finally:
        subprocess.run([tool, "rm", box], capture_output=True)
    return tag


def rebuild(
    root: Path,
    commit: str,
    lock: Mapping[str, Any],
    ref: str,
    *,
    in_image: bool = False,
    engine: str = "",
    build_options: Sequence[str] = (),
    keep: bool = False,
) -> Rebuilt:
    """Rerun the pipeline of ``commit`` (whose ``dvc.lock`` is ``lock``) and read what it wrote.

    Raises:
        ReproduceError: a step failed, or the DVC remote lacks the pipeline's inputs.
    """
    with worktree(root, commit, keep) as checkout:
        copy_remotes(root, checkout)
        sync_environment(checkout)
        notes = fetch_inputs(checkout, lock, ref)
        if in_image:
            tag = run_pipeline_in_image(checkout, commit, engine, build_options)
            where = f"image {tag}"
        else:
            run_pipeline(checkout)
            where = "host"
        metrics = checkout / METRICS_PATH
        return Rebuilt(
            lock=read_lock(checkout / LOCK_PATH),
            metrics_text=metrics.read_text(encoding="utf-8") if metrics.is_file() else None,
            where=where,
            python="image" if in_image else venv_python_version(checkout),
            notes=notes,
        )

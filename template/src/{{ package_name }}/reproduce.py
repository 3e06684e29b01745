"""Rebuild a past run from its commit and compare everything with what it recorded.

``make reproduce RUN=<ref>`` takes a tracker run id, a DVC experiment name, a
commit or a tag, and:

1. resolves it to a commit and the run record committed there;
2. checks that commit out in a temporary git worktree (the workspace, its
   branch and its stash are never touched), creates the commit's locked
   environment there (``uv sync --locked``) and fetches the pipeline's inputs
   from the DVC remote;
3. runs the whole pipeline (``dvc repro --force``), on the host or, with
   ``--in-image``, inside the runtime image built from that commit's
   Dockerfile and ``uv.lock``;
4. compares every output hash with the commit's ``dvc.lock``, and every metric
   with the committed ``reports/metrics.json`` and with what the tracker
   recorded for the run;
5. prints one table, records the result on the original run (a git note under
   ``refs/notes/reproductions``, and a tag on the tracker's run where the
   tracker can take one), and exits 1 when anything differs.

Nothing is logged as a new run: the pipeline runs with tracking disabled.
A reference that cannot be used (unknown, before the pipeline existed, inputs
the remote lacks) exits 2 with a message naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import policy, runs, tracking
from .config import PROJECT_ROOT

EXIT_DIFFERS = 1
EXIT_UNUSABLE = 2
NOTES_REF = "reproductions"
LOCK_PATH = "dvc.lock"
METRICS_PATH = "reports/metrics.json"
# metrics.json keeps 6 decimals, trackers the unrounded value: the last digit may differ.
METRIC_TOLERANCE = 1e-6
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
class Target:
    """The run to reproduce: its commit and everything the commit recorded."""

    ref: str
    commit: str
    record: Mapping[str, Any] | None
    lock: Mapping[str, Any]
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class Row:
    """One line of the comparison: an output's hash or a metric's value."""

    what: str
    recorded: str
    tracker: str
    reproduced: str
    same: bool
    detail: str = ""


def flat_metrics(text: str | None) -> dict[str, float]:
    """The numbers of a metrics file, under the dotted names the trackers use."""
    if text is None:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return policy.numbers(tracking.flatten(parsed)) if isinstance(parsed, dict) else {}


def find_target(ref: str, root: Path = PROJECT_ROOT) -> Target:
    """Resolve ``ref`` to the commit to rebuild and what it recorded.

    Raises:
        ReproduceError: nothing matches ``ref``, or its commit never ran the pipeline.
    """
    try:
        commit = runs.find_commit(ref, root)
    except runs.RunNotFoundError as error:
        raise ReproduceError(str(error)) from None
    lock_text = runs.show_file(root, commit, LOCK_PATH)
    if lock_text is None:
        raise ReproduceError(
            f"{ref} (commit {commit[:12]}) has no {LOCK_PATH}: it predates the pipeline "
            f"or never ran it. `git log -- {LOCK_PATH}` lists the commits that can be reproduced."
        )
    return Target(
        ref=ref,
        commit=commit,
        record=runs.record_at(commit, root),
        lock=yaml.safe_load(lock_text) or {},
        metrics=flat_metrics(runs.show_file(root, commit, METRICS_PATH)),
    )


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
    _run(["git", "worktree", "add", "--detach", "--quiet", str(checkout), commit], root)
    try:
        yield checkout
    finally:
        if keep:
            print(f"Kept the reproduction in {checkout} (`git worktree remove` it when done).")
        else:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(checkout)],
                cwd=root,
                capture_output=True,
            )
            shutil.rmtree(folder, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True)


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
    return {path: md5 for path, md5 in runs.data_hashes(dict(lock)).items() if md5 is not None}


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


def fetch_inputs(target: Target, checkout: Path) -> list[str]:
    """Pull the pipeline's inputs from the DVC remote; return notes on what it lacks.

    Outputs the remote lacks are rebuilt by the pipeline anyway; an input it
    lacks cannot be rebuilt, so it stops the reproduction, naming the file.
    """
    env = checkout_env(checkout)
    inputs = pipeline_inputs(target.lock)
    if not has_remote(checkout):
        if inputs:
            raise ReproduceError(
                f"{target.ref} reads {', '.join(inputs)}, and this repository has no DVC "
                "remote to fetch it from: add one (`dvc remote add --default`)."
            )
        return ["no DVC remote: every output rebuilt from the pipeline's code and params"]
    missing = missing_in_remote(checkout, env)
    lacking = sorted(path for path in inputs if path in missing)
    if lacking:
        raise ReproduceError(
            f"the DVC remote lacks the input data of {target.ref}: {', '.join(lacking)}. "
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


def short(md5: str | None) -> str:
    """A hash as the table shows it (directories keep their ``.dir`` suffix)."""
    if md5 is None:
        return "missing"
    return f"{md5[:10]}.dir" if md5.endswith(".dir") else md5[:10]


def compare_outputs(recorded: Mapping[str, Any], reproduced: Mapping[str, Any]) -> list[Row]:
    """One row per output: the hash ``dvc.lock`` recorded and the one the rerun wrote."""
    before = runs.output_hashes(dict(recorded))
    after = runs.output_hashes(dict(reproduced))
    rows = []
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        rows.append(Row(path, short(old), "", short(new), same=old == new))
    return rows


def _number(value: float | None) -> str:
    return "missing" if value is None else f"{value:.6f}"


def _close(recorded: float | None, reproduced: float | None) -> bool:
    if recorded is None or reproduced is None:
        return False
    return abs(reproduced - recorded) <= METRIC_TOLERANCE


def compare_metrics(
    committed: Mapping[str, float],
    tracked: Mapping[str, float] | None,
    reproduced: Mapping[str, float],
) -> list[Row]:
    """One row per metric: committed, tracked (when the tracker was asked) and reproduced.

    A difference is shown with its size, so a float that moved in its last
    digits on another machine reads differently from a changed model.
    """
    rows = []
    for name in sorted(committed.keys() | reproduced.keys()):
        before, after = committed.get(name), reproduced.get(name)
        in_tracker = None if tracked is None else tracked.get(name)
        same = _close(before, after)
        detail = ""
        if before is not None and after is not None and not same:
            detail = f"by {after - before:+.2e}"
        if tracked is not None and same and not _close(in_tracker, after):
            same, detail = False, "tracker differs"
        rows.append(
            Row(
                name,
                _number(before),
                "" if tracked is None else _number(in_tracker),
                _number(after),
                same,
                detail,
            )
        )
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """Render the comparison as an aligned table."""
    lines = [("output or metric", "recorded", "tracker", "reproduced", "result")]
    lines += [
        (
            row.what,
            row.recorded,
            row.tracker or "-",
            row.reproduced,
            "same" if row.same else " ".join(["DIFFERS", row.detail]).strip(),
        )
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(*lines, strict=True)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def tracker_metrics(target: Target) -> tuple[dict[str, float] | None, str]:
    """What the tracker recorded for the run, or ``None`` and why it was not asked."""
    record = target.record or {}
    run_id, tracker = record.get("run_id"), record.get("tracker")
    if not run_id:
        return None, f"{target.ref} has no run record with a run id: tracker not asked"
    if tracker != tracking.TRACKER:
        return None, f"run {run_id} was logged to {tracker}; this project uses {tracking.TRACKER}"
    try:
        metrics = tracking.recorded_metrics(str(run_id), target.commit)
    except tracking.TrackingError as error:
        return None, f"tracker not asked: {error}"
    if metrics is None:
        return None, f"{tracking.TRACKER} cannot be queried for run {run_id} from here"
    return metrics, ""


def record_reproduction(
    root: Path, target: Target, result: Mapping[str, Any], *, in_tracker: bool
) -> list[str]:
    """Attach the result to the original run: a git note on its commit, a tag in the tracker.

    The tracker is tagged only when it was reachable and holds the run (``in_tracker``).
    """
    notes = []
    note = json.dumps(result, sort_keys=True)
    added = subprocess.run(
        ["git", "notes", f"--ref={NOTES_REF}", "append", "-m", note, target.commit],
        cwd=root,
        capture_output=True,
        text=True,
    )
    if added.returncode == 0:
        shown = f"git notes --ref={NOTES_REF} show {target.commit[:12]}"
        notes.append(f"result recorded on commit {target.commit[:12]} ({shown})")
    else:
        notes.append(f"could not record a git note: {added.stderr.strip()}")
    run_id = (target.record or {}).get("run_id")
    if in_tracker and run_id:
        tags = {f"reproduction.{key}": str(value) for key, value in result.items()}
        try:
            where = tracking.annotate_run(str(run_id), tags)
        except tracking.TrackingError as error:
            where = None
            notes.append(f"could not tag run {run_id}: {error}")
        if where:
            notes.append(where)
    return notes


def reproduce(
    ref: str,
    root: Path = PROJECT_ROOT,
    *,
    in_image: bool = False,
    engine: str = "",
    build_options: Sequence[str] = (),
    keep: bool = False,
) -> int:
    """Rebuild the run ``ref`` names, print the comparison and return the exit status."""
    target = find_target(ref, root)
    print(f"Reproducing {ref}: commit {target.commit[:12]}", flush=True)
    notes = []
    workspace = runs.git_state(root)
    if workspace["git_dirty"] and workspace["git_commit"] == target.commit:
        notes.append(f"the workspace has uncommitted changes: they are not part of {ref}")
    where = "host"
    with worktree(root, target.commit, keep) as checkout:
        copy_remotes(root, checkout)
        sync_environment(checkout)
        notes += fetch_inputs(target, checkout)
        if in_image:
            tag = run_pipeline_in_image(checkout, target.commit, engine, build_options)
            where = f"image {tag}"
        else:
            run_pipeline(checkout)
        reproduced_lock = runs.read_yaml(checkout / LOCK_PATH) or {}
        reproduced = flat_metrics(
            (checkout / METRICS_PATH).read_text(encoding="utf-8")
            if (checkout / METRICS_PATH).is_file()
            else None
        )
        python = venv_python_version(checkout)
    tracked, why = tracker_metrics(target)
    if why:
        notes.append(why)
    rows = compare_outputs(target.lock, reproduced_lock)
    rows += compare_metrics(target.metrics, tracked, reproduced)
    print()
    print(format_table(rows))
    differing = [row.what for row in rows if not row.same]
    result = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),  # UTC
        "result": "differs" if differing else "same",
        "differs": differing,
        "where": where,
        "python": python if not in_image else "image",
    }
    notes += record_reproduction(root, target, result, in_tracker=tracked is not None)
    for note in notes:
        print(f"note: {note}")
    if differing:
        print(
            f"{ref} did not reproduce: {len(differing)} of {len(rows)} differ "
            f"({', '.join(differing)}).",
            file=sys.stderr,
        )
        return EXIT_DIFFERS
    print(f"{ref} reproduced: all {len(rows)} outputs and metrics are the same ({where}).")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="reproduce",
        description="Rebuild a past run in a clean worktree and compare it with its record.",
    )
    parser.add_argument("ref", help="tracker run id, DVC experiment name, commit or tag")
    parser.add_argument(
        "--in-image",
        action="store_true",
        help="run the pipeline inside the runtime image built from the commit's Dockerfile",
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="",
        help="container engine for --in-image (default: CONTAINER_ENGINE, else the first found)",
    )
    parser.add_argument(
        "--build-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for the image build, as the engine takes it (repeatable), e.g. "
        "--build-option=--build-arg=PYTHON_IMAGE=<mirror>/python:3.12",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the worktree afterwards, to inspect it"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Reproduce a run (``make reproduce RUN=<ref>``)."""
    args = parse_args(argv)
    try:
        return reproduce(
            args.ref,
            in_image=args.in_image,
            engine=args.engine,
            build_options=args.build_option,
            keep=args.keep,
        )
    except ReproduceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNUSABLE


if __name__ == "__main__":
    sys.exit(main())

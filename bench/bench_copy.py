"""How long `copier copy` of this template takes, against copier's own floor.

Usage (from the repository root):

    uv run python bench/bench_copy.py [--runs 15] [--other PATH_OR_URL ...]

Each template is a fresh git repository made for the run (this one from the
working tree, uncommitted changes included), copied the way the README does
it: `copier copy --defaults --skip-tasks --vcs-ref HEAD` into a new folder.
Runs are interleaved, in a new random order each round, so a busy machine
slows every template alike; the report gives medians and their ratio to the
floor, a one-file template measured in the same run. `--other` adds any other
template (a local clone or a git URL) to the comparison.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from support import git_init_commit  # noqa: E402

LEFT_BEHIND = shutil.ignore_patterns(".git", ".venv", ".*_cache", "__pycache__", "*.pyc", "bench")
ANSWERS = {"project_name": "Claims Fraud Detection"}
COPIER = [sys.executable, "-m", "copier"]
THIS, FLOOR, STARTUP = "this template", "floor (one-file template)", "copier --version"
SAME_FILES = "this template's files, without Jinja"
OWN = {THIS, FLOOR, SAME_FILES}  # the others may use tasks or Jinja extensions: they get --trust
Sample = tuple[float, float]  # wall-clock seconds, CPU seconds
ONE_QUESTION = "_subdirectory: template\n_templates_suffix: .jinja\nproject_name:\n  type: str\n"


def git_snapshot(folder: Path) -> Path:
    """Commit ``folder`` as a new repository, so copier clones it like a user's template."""
    git_init_commit(folder, "snapshot")
    return folder


def this_template(workdir: Path) -> Path:
    return git_snapshot(Path(shutil.copytree(ROOT, workdir / "this", ignore=LEFT_BEHIND)))


def floor_template(workdir: Path) -> Path:
    """The least copier can be asked to do: one question, one rendered file."""
    folder = workdir / "floor"
    (folder / "template").mkdir(parents=True)
    (folder / "copier.yml").write_text(ONE_QUESTION)
    (folder / "template" / "README.md.jinja").write_text("# {{ project_name }}\n")
    return git_snapshot(folder)


def timed(command: list[str], env: dict[str, str]) -> Sample:
    """Wall-clock and CPU seconds (user + system, subprocesses included) of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def same_files_template(workdir: Path, this: Path) -> tuple[Path, int]:
    """This template's output as a plain template: as many files, no questions, no Jinja.

    The gap between it and the one-file floor is copier's own cost per file;
    the gap between it and this template is what the questions and Jinja add.
    """
    folder = workdir / "same-files"
    rendered = folder / "template"
    subprocess.run(copy_command(str(this), rendered, trust=False), check=True, capture_output=True)
    (rendered / ".copier-answers.yml").unlink()
    (folder / "copier.yml").write_text(ONE_QUESTION)
    files = sum(1 for path in rendered.rglob("*") if path.is_file())
    return git_snapshot(folder), files


def copy_command(template: str, destination: Path, trust: bool) -> list[str]:
    data = [f"--data={key}={value}" for key, value in ANSWERS.items()]
    options = ["--quiet", "--defaults", "--skip-tasks", "--vcs-ref=HEAD"]
    if trust:
        options.append("--trust")
    return [*COPIER, "copy", *options, *data, template, str(destination)]


def python_env(workdir: Path) -> dict[str, str]:
    """Bytecode cached as on a user's machine, but in the run's own folder."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(workdir / "pycache")}


def measure(templates: dict[str, str], runs: int, workdir: Path) -> dict[str, list[Sample]]:
    """Time every command ``runs`` times, in a new random order each round."""
    env = python_env(workdir)

    def command(name: str, destination: Path) -> list[str]:
        if name == STARTUP:  # Python and copier's import alone: under every copy
            return [*COPIER, "--version"]
        return copy_command(templates[name], destination, trust=name not in OWN)

    names = [*templates, STARTUP]
    for name in names:  # fill the bytecode and OS caches, untimed
        timed(command(name, workdir / "warm" / name), env)
    timings: dict[str, list[Sample]] = {name: [] for name in names}
    for round_number in range(runs):
        for name in random.sample(names, len(names)):
            destination = workdir / "out" / f"{round_number}-{name}"
            timings[name].append(timed(command(name, destination), env))
            shutil.rmtree(destination, ignore_errors=True)
    return timings


def report(timings: dict[str, list[Sample]], runs: int, files: int) -> str:
    medians = {
        name: (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
        for name, samples in timings.items()
    }
    floor_wall, floor_cpu = medians[FLOOR]
    lines = [
        f"`copier copy`, medians of {runs} interleaved runs "
        f"(Python {sys.version.split()[0]}, copier {copier_version()}, {os.cpu_count()} CPUs)",
        "",
        "| command | wall (s) | vs floor | CPU (s) | vs floor |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, (wall, cpu) in medians.items():
        ratios = f"{wall / floor_wall:.2f}x | {cpu:.2f} | {cpu / floor_cpu:.2f}x"
        lines.append(f"| {name} | {wall:.2f} | {ratios} |")
    same_wall, same_cpu = medians[SAME_FILES]
    this_wall, this_cpu = medians[THIS]
    lines += [
        "",
        f"Copier's own cost per file: {1000 * (same_cpu - floor_cpu) / (files - 1):.1f} ms CPU, "
        f"{1000 * (same_wall - floor_wall) / (files - 1):.1f} ms wall (measured on {files} files "
        "against one).",
        f"This template's questions and Jinja: +{this_cpu - same_cpu:.2f} s CPU, "
        f"{this_cpu / same_cpu:.2f}x its own files copied plainly "
        f"(+{this_wall - same_wall:.2f} s wall, {this_wall / same_wall:.2f}x).",
    ]
    return "\n".join(lines)


def copier_version() -> str:
    version = subprocess.run([*COPIER, "--version"], capture_output=True, text=True, check=True)
    return version.stdout.split()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed copies per template")
    parser.add_argument(
        "--other", action="append", default=[], help="another template (path or git URL)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-copy-") as tmp:
        workdir = Path(tmp)
        this = this_template(workdir)
        same_files, files = same_files_template(workdir, this)
        floor = floor_template(workdir)
        templates = {THIS: str(this), SAME_FILES: str(same_files), FLOOR: str(floor)}
        for other in args.other:
            templates[Path(other.rstrip("/")).name] = other
        print(report(measure(templates, args.runs, workdir), args.runs, files))
    return 0


if __name__ == "__main__":
    sys.exit(main())

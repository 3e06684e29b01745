"""Benchmark the lifecycle commands of a generated project against their floors.

Measures, in one run on this machine, in one default project (MLflow) whose
run is committed and pushed to its local DVC remote:

- ``make reproduce RUN=HEAD`` (a clean worktree, ``uv sync --locked``, the
  inputs fetched, every stage rerun, every output and metric compared) against
  ``make verify`` (every stage rerun in the workspace): what rebuilding from
  the commit alone costs on top of rerunning the pipeline;
- ``make experiments`` against ``dvc exp show --json --all-commits``, the DVC
  command it is built on: what the policy's verdicts and the table add.

Runs are interleaved (A, B, A, B, ...) so that a slower moment of the machine
hits both sides. Results are medians and ratios for a report, never asserts.

Usage: .venv/bin/python bench/bench_reproduce.py [--repeat 3] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import commit_all, git_init_commit, render, run  # noqa: E402

PAIRS = {
    "reproduce": (["make", "reproduce", "RUN=HEAD"], ["make", "verify"]),
    "experiments": (
        ["make", "--silent", "experiments"],
        ["uv", "run", "--locked", "dvc", "exp", "show", "--json", "--all-commits"],
    ),
}


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    run(args, cwd)
    return time.perf_counter() - start


def prepared_project(workdir: Path) -> Path:
    """A default project with one committed run and its data in the local remote."""
    project = render(workdir / "claims-fraud-detection")
    git_init_commit(project)
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    commit_all(project, "Run the pipeline")
    run(["uv", "run", "--locked", "dvc", "push", "--quiet"], project)
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-reproduce-") as tmp:
        project = prepared_project(Path(tmp))
        for name, (command, floor) in PAIRS.items():
            times: dict[str, list[float]] = {"command": [], "floor": []}
            for _ in range(args.repeat):
                times["command"].append(timed(command, project))
                times["floor"].append(timed(floor, project))
            command_s = statistics.median(times["command"])
            floor_s = statistics.median(times["floor"])
            results[name] = {
                "command": " ".join(command),
                "floor": " ".join(floor),
                "command_s": round(command_s, 2),
                "floor_s": round(floor_s, 2),
                "ratio": round(command_s / floor_s, 2),
            }
    for name, result in results.items():
        print(
            f"{name}: {result['command']} {result['command_s']:.2f} s, "
            f"{result['floor']} {result['floor_s']:.2f} s, {result['ratio']:.2f}x"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

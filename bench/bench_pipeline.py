"""Benchmark the generated project's DVC pipeline against DVC's own floor.

Measures, in one run on this machine:

- no-op ``dvc repro`` of a generated project (nothing changed) against a no-op
  ``dvc repro`` of a one-stage pipeline run by the same DVC install: the
  overhead the template's pipeline adds to DVC's fixed cost (target: <= 1.2x);
  and the no-op ``make repro`` a user types (``uv run``, and for MLflow the
  check that its server answers, before the same ``dvc repro``) against the
  same floor;
- time from a freshly generated project to its first completed ``make repro``
  (``make setup`` + ``make repro``) with a warm package cache (target: < 30 s);
- ``make verify`` against the forced ``dvc repro`` it runs, both with the
  tracker off as ``make verify`` has it (target: <= 1.1x): what checking every
  output against ``dvc.lock`` adds to rebuilding them.

Results are ratios and wall times for a report, never asserts. Both run with
Python's bytecode cache on (a user's default): where PYTHONDONTWRITEBYTECODE is
set, every process recompiles every module it imports, which is a property of
that machine, not of the pipeline.

Usage: .venv/bin/python bench/bench_pipeline.py [--repeat 5] [--json results.json]
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

from support import git_init_commit, render, run, tool_env  # noqa: E402

FLOOR_PIPELINE = """\
stages:
  only:
    cmd: python -c "open('out.txt', 'w').write('ok')"
    outs:
      - out.txt
"""


CACHED = {k: v for k, v in tool_env().items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(args, cwd, env=env)
    return time.perf_counter() - start


def median_time(args: list[str], cwd: Path, repeat: int, env: dict[str, str]) -> float:
    return statistics.median(timed(args, cwd, env) for _ in range(repeat))


def first_repro(workdir: Path) -> float:
    """Seconds from a freshly rendered project to its first completed ``make repro``."""
    project = render(workdir / "claims-fraud-detection")
    git_init_commit(project)
    start = time.perf_counter()
    run(["make", "setup"], project, env=CACHED)
    run(["make", "repro"], project, env=CACHED)
    return time.perf_counter() - start


def floor_project(workdir: Path, dvc: Path) -> Path:
    """A one-stage DVC pipeline: DVC's fixed cost, nothing else."""
    floor = workdir / "floor"
    floor.mkdir()
    run(["git", "init", "--quiet"], floor)
    run([dvc, "init", "--quiet"], floor)
    run([dvc, "config", "core.analytics", "false"], floor)
    (floor / "dvc.yaml").write_text(FLOOR_PIPELINE, encoding="utf-8")
    run([dvc, "repro"], floor)
    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="no-op runs per median")
    parser.add_argument(
        "--verify-repeat", type=int, default=3, help="make verify and forced repro runs"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        workdir = Path(tmp)
        # Warm the package cache, so the timed run measures the project, not downloads.
        first_repro(workdir / "warmup")
        setup_to_repro = first_repro(workdir / "timed")
        project = workdir / "timed" / "claims-fraud-detection"
        dvc = project / ".venv" / "bin" / "dvc"
        floor = floor_project(workdir, dvc)
        project_noop = median_time([str(dvc), "repro"], project, options.repeat, CACHED)
        floor_noop = median_time([str(dvc), "repro"], floor, options.repeat, CACHED)
        make_noop = median_time(["make", "repro"], project, options.repeat, CACHED)
        untracked = {**CACHED, "TRACKING_DISABLED": "1"}
        forced, verify = [], []
        for _ in range(options.verify_repeat):  # interleaved, so machine noise spreads evenly
            forced.append(
                timed(["uv", "run", "--locked", "dvc", "repro", "--force"], project, untracked)
            )
            verify.append(timed(["make", "verify"], project, CACHED))
        forced_repro, make_verify = statistics.median(forced), statistics.median(verify)

    results = {
        "first_make_repro_seconds": round(setup_to_repro, 2),
        "first_make_repro_target_seconds": 30,
        "noop_repro_seconds": round(project_noop, 3),
        "noop_repro_floor_seconds": round(floor_noop, 3),
        "noop_repro_ratio": round(project_noop / floor_noop, 3),
        "noop_repro_ratio_target": 1.2,
        "noop_make_repro_seconds": round(make_noop, 3),
        "noop_make_repro_ratio": round(make_noop / floor_noop, 3),
        "forced_repro_seconds": round(forced_repro, 2),
        "make_verify_seconds": round(make_verify, 2),
        "make_verify_ratio": round(make_verify / forced_repro, 3),
        "make_verify_ratio_target": 1.1,
    }
    print(f"first make setup + make repro: {setup_to_repro:6.1f} s   (target < 30 s)")
    print(
        f"no-op dvc repro: {project_noop:.2f} s vs floor {floor_noop:.2f} s"
        f" = {project_noop / floor_noop:.2f}x   (target <= 1.2x)"
    )
    print(
        f"no-op make repro: {make_noop:.2f} s vs floor {floor_noop:.2f} s"
        f" = {make_noop / floor_noop:.2f}x   (target <= 1.2x)"
    )
    print(
        f"make verify: {make_verify:.2f} s vs forced dvc repro {forced_repro:.2f} s"
        f" = {make_verify / forced_repro:.2f}x   (target <= 1.1x)"
    )
    if options.json:
        options.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

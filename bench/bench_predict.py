"""Benchmark `make predict` on a large file: time, rows a second and peak memory.

The default project generates ROWS synthetic claims, runs its pipeline (the
MLflow run logged to the local store), and its run is scored by
``python -m <package>.commands.predict`` (what ``make predict`` runs) on the
whole raw table, CSV in and CSV out, and again Parquet in and out. The
baseline, measured in the same run on the same project, is the evaluate
stage as a process (the tracker off), which scores the validation and test
splits (40% of the rows) through the same inference pipeline and measures
them. Each figure is the median of REPEAT runs; peak memory is the largest
resident set of the process. Figures for a report, never asserts.

Usage: .venv/bin/python bench/bench_predict.py [--rows 1000000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import (  # noqa: E402
    commit_all,
    git_init_commit,
    render,
    run,
    tool_env,
)

PACKAGE = "claims_fraud_detection"
# Runs a command and prints its wall time and its peak resident set (MB) as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "status": done.returncode}))
"""


def measured(
    project: Path,
    command: list[str],
    repeat: int,
    env: dict | None = None,
    allowed: tuple[int, ...] = (0,),
) -> dict:
    """Median seconds and largest peak memory of ``command`` run ``repeat`` times.

    An exit status outside ``allowed`` stops the benchmark.
    """
    found = []
    for _ in range(repeat):
        done = run(
            ["uv", "run", "--locked", "python", "-c", MEASURE, *command],
            project,
            env=env,
            timeout=7200,
        )
        result = json.loads(done.stdout.splitlines()[-1])
        if result["status"] not in allowed:
            raise RuntimeError(f"{' '.join(command)} exited {result['status']}")
        found.append(result)
    return {
        "seconds": statistics.median(item["seconds"] for item in found),
        "peak_mb": max(item["peak_mb"] for item in found),
    }


def ran_project(folder: Path, rows: int) -> Path:
    """The default project in ``folder``, run on ``rows`` generated claims and committed."""
    project = render(folder / "claims-fraud-detection")
    git_init_commit(project)
    run(["make", "setup"], project)
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(text.replace("n_rows: 10000", f"n_rows: {rows}", 1), "utf-8")
    run(["make", "repro"], project, timeout=7200)
    commit_all(project, "Run the pipeline")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = ran_project(Path(folder), args.rows)
        python = ["python", "-m"]
        raw = "data/raw/claims.csv"
        convert = f"import pandas; pandas.read_csv({raw!r}).to_parquet('claims.parquet')"
        run(["uv", "run", "--locked", "python", "-c", convert], project, timeout=3600)
        figures = {
            "evaluate stage (validation + test)": measured(
                project,
                [*python, f"{PACKAGE}.stages.evaluate"],
                args.repeat,
                env=tool_env({"TRACKING_DISABLED": "1"}),
            ),
            "make predict, CSV": measured(
                project,
                [*python, f"{PACKAGE}.commands.predict", raw, "--model", "HEAD"]
                + ["--output", "scored.csv"],
                args.repeat,
            ),
            "make predict, Parquet": measured(
                project,
                [*python, f"{PACKAGE}.commands.predict", "claims.parquet", "--model", "HEAD"]
                + ["--output", "scored.parquet"],
                args.repeat,
            ),
        }
    scored_rows = {"evaluate stage (validation + test)": int(args.rows * 0.4)}
    print(f"{args.rows:,} rows, median of {args.repeat} run(s)")
    print("| command | rows scored | seconds | rows/s | peak memory (MB) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, found in figures.items():
        rows = scored_rows.get(name, args.rows)
        print(
            f"| {name} | {rows:,} | {found['seconds']:.1f} | {rows / found['seconds']:,.0f} "
            f"| {found['peak_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()

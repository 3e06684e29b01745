"""Benchmark the example pipeline as its data grows: time and memory per stage.

Generates a project (the defaults: binary classification, MLflow), sets it up,
then for each size sets ``generate.n_rows`` in its ``params.yaml`` and runs
``dvc repro --force``, each stage's command wrapped so that its wall time and
peak resident memory (``ru_maxrss`` of the stage's process, from ``wait4``)
are recorded. Prints, against their targets:

- per stage: seconds and peak RSS at each size;
- the whole pipeline (``dvc repro``, DVC's hashing and caching included):
  under 60 s and under 1 GB at 1M rows, under 8 minutes and under 4 GB at 10M;
- the scaling exponent between the two largest sizes,
  ``log(t2 / t1) / log(n2 / n1)``: 1 is linear, the target is no worse;
- at 100k rows, the splits' file I/O of each stage in CSV (full precision, as
  the template wrote them before Parquet) against Parquet, and the files' sizes.

Results are figures for a report, never asserts. The machine's other load
shows in them: compare sizes and formats within one run.

Usage: .venv/bin/python bench/bench_scale.py [--sizes 10000 100000] [--huge]
       [--vcs-ref HEAD] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import git_init_commit, render, run, tool_env  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)
HUGE = 10_000_000
IO_ROWS = 100_000
# Targets per size: whole-pipeline seconds and peak RSS in MB.
TARGETS = {1_000_000: (60, 1024), 10_000_000: (8 * 60, 4096)}

CACHED = {k: v for k, v in tool_env().items() if k != "PYTHONDONTWRITEBYTECODE"}

# Runs a stage's command and writes its wall time and peak RSS (wait4's rusage
# of that one process, children included) to a JSON file.
MEASURE = """\
import json, os, subprocess, sys, time
out, *command = sys.argv[1:]
start = time.perf_counter()
child = subprocess.Popen(command)
_, status, usage = os.wait4(child.pid, 0)
seconds = time.perf_counter() - start
with open(out, "w") as stream:
    json.dump({"seconds": seconds, "max_rss_mb": usage.ru_maxrss / 1024}, stream)
sys.exit(os.waitstatus_to_exitcode(status))
"""

# Times each stage's reading and writing of the splits in both formats, run by
# the project's own Python: the CSV side as the template wrote and read them
# before Parquet (full float precision; categorical columns read as text).
IO_COMPARISON = """\
import json, sys, tempfile, time
from pathlib import Path

import pandas as pd
import pyarrow
import pyarrow.parquet as pq
from pandas.api.types import is_numeric_dtype


def load(folder, name):
    parquet = Path("data", folder, f"{name}.parquet")
    if parquet.exists():
        return pq.read_table(parquet).to_pandas()
    return pd.read_csv(parquet.with_suffix(".csv"))


def timed(action):
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def write_parquet(frame, path):
    table = pyarrow.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


result = {}
with tempfile.TemporaryDirectory() as tmp:
    for folder in ("interim", "processed"):
        for name in ("train", "validation", "test"):
            frame = load(folder, name)
            text = [c for c in frame.columns if not is_numeric_dtype(frame[c])]
            dtype = dict.fromkeys(text, str) if folder == "interim" else None
            csv, parquet = Path(tmp, f"{name}.csv"), Path(tmp, f"{name}.parquet")
            result[f"{folder}/{name}"] = {
                "csv_write": timed(lambda: frame.to_csv(csv, index=False)),
                "csv_read": timed(lambda: pd.read_csv(csv, dtype=dtype)),
                "parquet_write": timed(lambda: write_parquet(frame, parquet)),
                "parquet_read": timed(lambda: pq.read_table(parquet).to_pandas()),
                "csv_mb": csv.stat().st_size / 2**20,
                "parquet_mb": parquet.stat().st_size / 2**20,
            }
json.dump(result, sys.stdout)
"""

# Which split files each stage reads and writes.
STAGE_IO = {
    "featurize": {
        "read": [f"interim/{name}" for name in ("train", "validation", "test")],
        "write": [f"processed/{name}" for name in ("train", "validation", "test")],
    },
    "train": {"read": ["processed/train"], "write": []},
    "evaluate": {"read": ["processed/validation", "processed/test"], "write": []},
}


def wrap_stages(project: Path, records: Path) -> list[str]:
    """Wrap each stage's command in the measuring script; return the stages in order."""
    measure = records / "measure.py"
    measure.write_text(MEASURE, encoding="utf-8")
    dvc_file = project / "dvc.yaml"
    pipeline = yaml.safe_load(dvc_file.read_text(encoding="utf-8"))
    for name, stage in pipeline["stages"].items():
        stage["cmd"] = f"python {measure} {records / name}.json {stage['cmd']}"
    dvc_file.write_text(yaml.safe_dump(pipeline, sort_keys=False), encoding="utf-8")
    return list(pipeline["stages"])


def set_rows(project: Path, n_rows: int) -> None:
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(re.sub(r"(?m)^  n_rows: \d+$", f"  n_rows: {n_rows}", text), "utf-8")


def run_size(project: Path, records: Path, stages: list[str], n_rows: int) -> dict:
    """Run the whole pipeline at ``n_rows``; return its and each stage's figures."""
    set_rows(project, n_rows)
    start = time.perf_counter()
    run(["uv", "run", "--locked", "dvc", "repro", "--force"], project, env=CACHED, timeout=3600)
    total = time.perf_counter() - start
    per_stage = {
        name: json.loads((records / f"{name}.json").read_text(encoding="utf-8")) for name in stages
    }
    sizes = {
        "raw_mb": (project / "data/raw/claims.csv").stat().st_size / 2**20,
        **{
            f"{folder}_mb": sum(f.stat().st_size for f in (project / "data" / folder).iterdir())
            / 2**20
            for folder in ("interim", "processed")
        },
    }
    return {
        "seconds": total,
        "max_rss_mb": max(stage["max_rss_mb"] for stage in per_stage.values()),
        "stages": per_stage,
        "files": sizes,
    }


def compare_io(project: Path) -> dict:
    """Each stage's split I/O in CSV and Parquet, from the splits the project holds now."""
    result = run([".venv/bin/python", "-c", IO_COMPARISON], project, env=CACHED)
    files = json.loads(result.stdout)
    stages = {}
    for stage, io in STAGE_IO.items():
        stages[stage] = {
            fmt: sum(files[f][f"{fmt}_read"] for f in io["read"])
            + sum(files[f][f"{fmt}_write"] for f in io["write"])
            for fmt in ("csv", "parquet")
        }
    return {"files": files, "stages": stages}


def exponent(results: dict[int, dict], key: str) -> float | None:
    sizes = sorted(results)
    if len(sizes) < 2:
        return None
    small, large = sizes[-2], sizes[-1]
    return math.log(results[large][key] / results[small][key]) / math.log(large / small)


def report(results: dict[int, dict], io: dict | None) -> None:
    stages = list(next(iter(results.values()))["stages"])
    print(f"\n{'rows':>10}  " + "".join(f"{s:>17}" for s in stages) + f"{'pipeline':>19}")
    for n_rows, figures in results.items():
        cells = "".join(
            f"{f['seconds']:7.1f} s {f['max_rss_mb']:5.0f} MB" for f in figures["stages"].values()
        )
        print(
            f"{n_rows:>10}  {cells}  {figures['seconds']:7.1f} s {figures['max_rss_mb']:5.0f} MB"
        )
    print()
    for n_rows, figures in results.items():
        files = figures["files"]
        print(
            f"{n_rows:>10} rows: raw CSV {files['raw_mb']:.1f} MB, "
            f"interim {files['interim_mb']:.1f} MB, processed {files['processed_mb']:.1f} MB"
        )
        if n_rows in TARGETS:
            seconds, megabytes = TARGETS[n_rows]
            print(
                f"{'':>10}  pipeline {figures['seconds']:.1f} s (target < {seconds} s: "
                f"{'met' if figures['seconds'] < seconds else 'MISSED'}), peak RSS "
                f"{figures['max_rss_mb']:.0f} MB (target < {megabytes} MB: "
                f"{'met' if figures['max_rss_mb'] < megabytes else 'MISSED'})"
            )
    slope = exponent(results, "seconds")
    if slope is not None:
        small, large = sorted(results)[-2:]
        print(
            f"\nscaling exponent {small} -> {large} rows: {slope:.2f} "
            f"(target <= 1: {'met' if slope <= 1 else 'MISSED'})"
        )
        for stage in stages:
            t1 = results[small]["stages"][stage]["seconds"]
            t2 = results[large]["stages"][stage]["seconds"]
            print(f"  {stage:>10}: {math.log(t2 / t1) / math.log(large / small):.2f}")
    if io:
        print(f"\nsplit I/O at {IO_ROWS} rows, seconds (CSV vs Parquet):")
        for stage, figures in io["stages"].items():
            print(
                f"  {stage:>10}: {figures['csv']:.3f} vs {figures['parquet']:.3f}"
                f" = {figures['csv'] / figures['parquet']:.1f}x"
            )
        for folder in ("interim", "processed"):
            csv = sum(f["csv_mb"] for k, f in io["files"].items() if k.startswith(folder))
            parquet = sum(f["parquet_mb"] for k, f in io["files"].items() if k.startswith(folder))
            print(f"  data/{folder}: {csv:.1f} MB CSV vs {parquet:.1f} MB Parquet")


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(args, cwd, env=env, timeout=1800)
    return time.perf_counter() - start


def bytecode_figures(workdir: Path, vcs_ref: str) -> dict:
    """``make setup`` and the first ``make repro`` with and without bytecode compiled at install.

    Three ways: uv's default (no compiling: each process compiles what it imports,
    and where PYTHONDONTWRITEBYTECODE is set, every process does so again);
    ``UV_COMPILE_BYTECODE=1`` for ``make setup`` only (the Makefile's choice);
    and for every uv command (what ``[tool.uv] compile-bytecode`` does: uv then
    compiles the whole environment again on each ``uv run``).
    """
    variants = {
        "none": ({}, {}),
        "setup only": ({"UV_COMPILE_BYTECODE": "1"}, {}),
        "every uv command": ({"UV_COMPILE_BYTECODE": "1"}, {"UV_COMPILE_BYTECODE": "1"}),
    }
    figures: dict = {}
    for variant, (setup_env, run_env) in variants.items():
        for no_pyc in (False, True):
            extra = {"PYTHONDONTWRITEBYTECODE": "1"} if no_pyc else {}
            name = f"{variant}, PYTHONDONTWRITEBYTECODE={'1' if no_pyc else 'unset'}"
            folder = workdir / f"bytecode-{len(figures)}"
            project = render(folder / "claims-fraud-detection", vcs_ref)
            git_init_commit(project)
            setup = timed(["make", "setup"], project, {**CACHED, **extra, **setup_env})
            env = {**CACHED, **extra, **run_env}
            repro = timed(["make", "repro"], project, env)
            noop = min(timed(["uv", "run", "--locked", "true"], project, env) for _ in range(3))
            figures[name] = {"setup": setup, "first_repro": repro, "uv_run_noop": noop}
            print(
                f"{name}: setup {setup:.1f} s, first make repro {repro:.1f} s, "
                f"no-op uv run {noop:.2f} s",
                flush=True,
            )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="row counts")
    parser.add_argument("--huge", action="store_true", help=f"also run {HUGE} rows")
    parser.add_argument("--vcs-ref", default="HEAD", help="template ref to render (HEAD)")
    parser.add_argument("--keep", type=Path, help="generate the project here and keep it")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--bytecode",
        action="store_true",
        help="instead, time make setup and the first make repro with and without bytecode",
    )
    options = parser.parse_args()
    if options.bytecode:
        with tempfile.TemporaryDirectory(prefix="bench-bytecode-") as tmp:
            figures = bytecode_figures(Path(tmp), options.vcs_ref)
        if options.json:
            options.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        return
    sizes = sorted({*options.sizes, *([HUGE] if options.huge else [])})

    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        project = render(options.keep or Path(tmp) / "claims-fraud-detection", options.vcs_ref)
        git_init_commit(project)
        run(["make", "setup"], project, env=CACHED)
        run(["make", "repro"], project, env=CACHED)  # warm-up: bytecode, tracker store
        records = Path(tmp) / "records"
        records.mkdir()
        stages = wrap_stages(project, records)
        results, io = {}, None
        for n_rows in sizes:
            results[n_rows] = run_size(project, records, stages, n_rows)
            print(f"{n_rows} rows: {results[n_rows]['seconds']:.1f} s", flush=True)
            if n_rows == IO_ROWS:
                io = compare_io(project)

    report(results, io)
    if options.json:
        payload = {"sizes": {str(n): r for n, r in results.items()}, "io": io}
        options.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

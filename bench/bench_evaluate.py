"""Benchmark the evaluate stage's new evidence against its 0.8.0 work, at 1M rows.

Two measures, each the median of REPEAT runs:

1. The stage as a process (``python -m <package>.stages.evaluate``, imports
   included, the tracker off), in the default project generated from the
   0.8.0 release and from this working tree, on the same 1M rows: the ratio
   is what a user's ``dvc repro`` pays for the new evidence.
2. In the new project, in one process:

- the floor: what the stage did in 0.8.0, reading the splits and measuring
  the model on both (``evaluate`` without a seed: metrics, threshold, curves;
  since 0.10.0 through the inference pipeline, from the raw rows);
- the bootstrap intervals (``evaluate`` with the seed, less the floor);
- the dummy baseline (``evaluate`` of the dummy);
- the slices (``measure_slices``) and the feature evidence (``feature_evidence``).

Prints each as seconds and as a share of the floor. Figures for a report,
never asserts.

Usage: .venv/bin/python bench/bench_evaluate.py [--rows 1000000] [--repeat 3]
       [--before 0.8.0]
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

from support import (  # noqa: E402
    git_init_commit,
    release_commit,
    render,
    run,
    tool_env,
)

ROOT = Path(__file__).resolve().parents[1]
STAGE = "claims_fraud_detection.stages.evaluate"

PROBE = """
import json, statistics, sys, time
import joblib
from claims_fraud_detection.shared import inference
from claims_fraud_detection.shared.params import load_params
from claims_fraud_detection.shared.paths import INTERIM_DATA_DIR, MODEL_FILE, PREPROCESSOR_FILE
from claims_fraud_detection.shared.splits import read_types, resolve_schema
from claims_fraud_detection.stages import evaluate as stage

repeat = int(sys.argv[1])
params = load_params()
types = read_types("train", INTERIM_DATA_DIR)
schema = resolve_schema(types, params.data)
POSITIVE = 1


def timed(action):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def pipeline():
    return inference.assemble(joblib.load(PREPROCESSOR_FILE), joblib.load(MODEL_FILE), types)


def floor():
    splits = stage.read_splits(schema)
    return splits, stage.evaluate(pipeline(), splits, params, POSITIVE)


seconds = {}
seconds["floor (0.8.0's work)"], (splits, _) = timed(floor)
model = pipeline()
with_seed, evaluation = timed(
    lambda: stage.evaluate(model, splits, params, POSITIVE, params.seed)
)
without_seed, _ = timed(lambda: stage.evaluate(model, splits, params, POSITIVE))
seconds["bootstrap intervals"] = max(with_seed - without_seed, 0.0)
seconds["dummy baseline"], _ = timed(
    lambda: stage.evaluate(stage.baseline_model(params.data.target), splits, params, POSITIVE)
)
seconds["slices"], _ = timed(lambda: stage.measure_slices(params, splits, evaluation))
seconds["feature evidence"], _ = timed(
    lambda: stage.feature_evidence(params, evaluation.model, schema)
)
print(json.dumps(seconds))
"""


def project_at(folder: Path, vcs_ref: str, rows: int) -> Path:
    """The default project rendered at ``vcs_ref``, its pipeline run to the train stage."""
    project = render(folder / "claims-fraud-detection", vcs_ref)
    git_init_commit(project)
    run(["make", "setup"], project)
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(text.replace("n_rows: 10000", f"n_rows: {rows}", 1), encoding="utf-8")
    run(["uv", "run", "--locked", "dvc", "repro", "train"], project, timeout=3600)
    return project


def stage_seconds(project: Path, repeat: int) -> float:
    """The evaluate stage's wall time as a process, the tracker off (median)."""
    env = tool_env({"TRACKING_DISABLED": "1"})
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run(["uv", "run", "--locked", "python", "-m", STAGE], project, env=env, timeout=3600)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--before", default="0.8.0", help="the release to compare with")
    args = parser.parse_args()
    before = release_commit(ROOT, args.before)
    if before is None:
        raise SystemExit(f"no commit of this repository releases {args.before}")
    with tempfile.TemporaryDirectory() as tmp:
        old = project_at(Path(tmp) / "before", before, args.rows)
        new = project_at(Path(tmp) / "now", "HEAD", args.rows)
        stage = {
            args.before: stage_seconds(old, args.repeat),
            "now": stage_seconds(new, args.repeat),
        }
        done = run(
            ["uv", "run", "--locked", "python", "-c", PROBE, str(args.repeat)],
            new,
            timeout=3600,
        )
        seconds = json.loads(done.stdout.splitlines()[-1])
    print(f"evaluate stage at {args.rows:,} rows, median of {args.repeat} runs, tracker off")
    ratio = stage["now"] / stage[args.before]
    print(
        f"as a process: {args.before} {stage[args.before]:.2f} s, now {stage['now']:.2f} s "
        f"({ratio:.2f}x)"
    )
    floor = seconds["floor (0.8.0's work)"]
    print(f"{'in one process':28} {'seconds':>8} {'vs floor':>9}")
    for part, value in seconds.items():
        print(f"{part:28} {value:8.2f} {value / floor:8.0%}")


if __name__ == "__main__":
    main()

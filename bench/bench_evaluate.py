"""Benchmark the evaluate stage's new evidence against its 0.8.0 work, at 1M rows.

Generates the default project (binary classification), sets ``generate.n_rows``
(1M by default), runs the pipeline up to the train stage, then times in one
process, REPEAT times each (the median is reported):

- the floor: what the stage did in 0.8.0, reading the splits and measuring
  the model on both (``evaluate`` without a seed: metrics, threshold, curves);
- the bootstrap intervals (``evaluate`` with the seed, less the floor);
- the dummy baseline (``evaluate`` of the dummy);
- the slices (``measure_slices``) and the feature evidence (``feature_evidence``).

Prints each as seconds and as a share of the floor, and the whole stage's work
against the floor. The issue's budget for the intervals is +20% at 1M rows.
Figures for a report, never asserts.

Usage: .venv/bin/python bench/bench_evaluate.py [--rows 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support import git_init_commit, render, run  # noqa: E402

PROBE = """
import json, statistics, sys, time
import joblib
from claims_fraud_detection.shared.params import load_params
from claims_fraud_detection.shared.paths import MODEL_FILE
from claims_fraud_detection.stages import evaluate as stage

repeat = int(sys.argv[1])
params = load_params()


def timed(action):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def floor():
    splits = stage.read_splits(params.data.target)
    return splits, stage.evaluate(joblib.load(MODEL_FILE), splits, params)


seconds = {}
seconds["floor (0.8.0's work)"], (splits, _) = timed(floor)
model = joblib.load(MODEL_FILE)
with_seed, evaluation = timed(lambda: stage.evaluate(model, splits, params, params.seed))
without_seed, _ = timed(lambda: stage.evaluate(model, splits, params))
seconds["bootstrap intervals"] = max(with_seed - without_seed, 0.0)
seconds["dummy baseline"], _ = timed(
    lambda: stage.evaluate(stage.baseline_model(params.data.target), splits, params)
)
seconds["slices"], _ = timed(lambda: stage.measure_slices(params, splits, evaluation))
seconds["feature evidence"], _ = timed(lambda: stage.feature_evidence(params, model))
print(json.dumps(seconds))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = render(Path(tmp) / "claims-fraud-detection")
        git_init_commit(project)
        run(["make", "setup"], project)
        params = project / "params.yaml"
        text = params.read_text(encoding="utf-8")
        params.write_text(
            text.replace("n_rows: 10000", f"n_rows: {args.rows}", 1), encoding="utf-8"
        )
        run(["uv", "run", "--locked", "dvc", "repro", "train"], project, timeout=3600)
        done = run(
            ["uv", "run", "--locked", "python", "-c", PROBE, str(args.repeat)],
            project,
            timeout=3600,
        )
        seconds = json.loads(done.stdout.splitlines()[-1])
    floor = seconds["floor (0.8.0's work)"]
    print(f"evaluate stage at {args.rows:,} rows, median of {args.repeat} runs")
    print(f"{'part':28} {'seconds':>8} {'vs floor':>9}")
    for part, value in seconds.items():
        print(f"{part:28} {value:8.2f} {value / floor:8.0%}")
    added = sum(value for part, value in seconds.items() if part != "floor (0.8.0's work)")
    print(f"{'the whole stage':28} {floor + added:8.2f} {(floor + added) / floor:8.0%}")


if __name__ == "__main__":
    main()

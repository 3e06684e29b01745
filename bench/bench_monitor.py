"""Benchmark `make monitor`: false alarms, sensitivity, time and peak memory.

The default project generates ROWS synthetic claims and runs its pipeline;
its run (``--model HEAD``) then checks batches with the policy's default
bounds, in process (``monitor.monitor``, what ``make monitor`` runs):

- false alarms: BATCHES batches of BATCH_ROWS claims drawn like the training
  data by the project's own generator, each with its own seed, labels
  included (so performance is judged too); any alert on one is a false alarm;
- sensitivity: the smallest shift of a numeric feature, in standard
  deviations of the training split, and the smallest share of a categorical
  column set to a new value, that alert on every one of 5 batches of
  BATCH_ROWS claims;
- cost: ``python -m <package>.commands.monitor`` on the validation and test
  splits together (40% of ROWS, labelled, as CSV), against the evaluate stage
  as a process (the tracker off), which scores and measures the same rows.

Figures for a report, never asserts.

Usage: .venv/bin/python bench/bench_monitor.py [--rows 2500000] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench_predict import PACKAGE, measured, ran_project
from support import run, tool_env

# Runs in the project's environment: the false alarms and the sensitivity.
QUALITY = """
import json, sys, tempfile
from pathlib import Path
import numpy as np, pandas as pd
from {package}.commands import monitor
from {package}.shared.params import load_params
from {package}.stages.generate import generate_claims

batches, size = int(sys.argv[1]), int(sys.argv[2])
settings = load_params().generate
folder = Path(tempfile.mkdtemp())

def draw(seed):
    return generate_claims(size, settings.fraud_rate, settings.missing_rate, seed)

def alerts(rows, name):
    path = folder / f"{{name}}.csv"
    rows.to_csv(path, index=False)
    return monitor.monitor(path, "HEAD")["alerts"]

false = [alerts(draw(1000 + seed), f"like-{{seed}}") for seed in range(batches)]
train = pd.read_parquet("data/interim/train.parquet")
found = {{"batches": batches, "rows": size, "alarms": [a for a in false if a]}}
for column in ("customer_age", "claim_amount"):
    spread = float(train[column].std())
    for step in range(1, 41):
        shift = step * 0.025
        caught = all(
            f"input drift: {{column}}" in alerts(
                draw(2000 + seed).assign(**{{column: lambda rows: rows[column] + shift * spread}}),
                f"shift-{{column}}-{{seed}}",
            )
            for seed in range(5)
        )
        if caught:
            found[f"smallest shift caught, {{column}} (sd)"] = round(shift, 3)
            break
for step in range(1, 41):
    share = step * 0.005
    def renamed(rows):
        rows = rows.copy()
        rows.loc[rows.index[: int(share * len(rows))], "region"] = "new-region"
        return rows
    if all(
        any(alert.endswith(": region") for alert in alerts(renamed(draw(3000 + seed)), "new"))
        for seed in range(5)
    ):
        found["smallest new-category share caught, region"] = round(share, 3)
        break
print(json.dumps(found))
"""
SPLITS = (
    "import pandas\n"
    "splits = ('validation', 'test')\n"
    "rows = [pandas.read_parquet(f'data/interim/{name}.parquet') for name in splits]\n"
    "pandas.concat(rows).to_csv('held-out.csv', index=False)\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_500_000)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-rows", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = ran_project(Path(folder), args.rows)
        quality = QUALITY.format(package=PACKAGE)
        said = run(
            ["uv", "run", "--locked", "python", "-c", quality]
            + [str(args.batches), str(args.batch_rows)],
            project,
            timeout=7200,
        )
        found = json.loads(said.stdout.splitlines()[-1])
        run(["uv", "run", "--locked", "python", "-c", SPLITS], project, timeout=3600)
        python = ["python", "-m"]
        cost = {
            "evaluate stage": measured(
                project,
                [*python, f"{PACKAGE}.stages.evaluate"],
                1,
                env=tool_env({"TRACKING_DISABLED": "1"}),
            ),
            "make monitor": measured(
                project,
                [*python, f"{PACKAGE}.commands.monitor", "held-out.csv", "--model", "HEAD"]
                + ["--output", "monitoring"],
                1,
                allowed=(0, 1),
            ),
        }
    rows = int(args.rows * 0.4)
    alarms = len(found.pop("alarms"))
    print(f"False alarms: {alarms} of {found.pop('batches')} batches of {found.pop('rows')} rows")
    for name, value in found.items():
        print(f"{name}: {value}")
    print(f"\n{rows:,} held-out rows (validation + test)")
    print("| command | seconds | peak memory (MB) | time / evaluate |")
    print("| --- | ---: | ---: | ---: |")
    base = cost["evaluate stage"]["seconds"]
    for name, figures in cost.items():
        print(
            f"| {name} | {figures['seconds']:.1f} | {figures['peak_mb']:.0f} "
            f"| {figures['seconds'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()

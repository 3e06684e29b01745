"""What each experiment tracker adds to a pipeline run, against the same run with none.

For every tracker, a default project is generated with that tracker, set up
(`make setup`) and run once (`make repro`, which also warms caches). Then the
evaluate stage, the one that logs, is timed REPEAT times per tracker,
interleaved so that machine noise spreads evenly. Figures are medians, reported
as ratios to the `none` project measured in the same run.

    uv run python bench/bench_tracking.py [--repeat 3] [--trackers mlflow,wandb]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support import git_init_commit, render, run, tool_env  # noqa: E402

TRACKERS = ["none", "mlflow", "dvclive", "comet", "wandb", "neptune"]


def prepare(root: Path, tracker: str) -> Path:
    project = render(root / tracker / "claims-fraud-detection", experiment_tracker=tracker)
    git_init_commit(project)
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    return project


def time_evaluate(project: Path, env: dict[str, str]) -> float:
    package = next((project / "src").iterdir()).name
    start = time.perf_counter()
    subprocess.run(
        ["uv", "run", "--locked", "python", "-m", f"{package}.evaluate"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trackers", default=",".join(TRACKERS))
    args = parser.parse_args()
    trackers = ["none", *[t for t in args.trackers.split(",") if t != "none"]]
    env = tool_env()
    with tempfile.TemporaryDirectory() as tmp:
        projects = {t: prepare(Path(tmp), t) for t in trackers}
        times: dict[str, list[float]] = {t: [] for t in trackers}
        for _ in range(args.repeat):
            for tracker in trackers:
                times[tracker].append(time_evaluate(projects[tracker], env))
    baseline = statistics.median(times["none"])
    print(f"evaluate stage, median of {args.repeat} runs; baseline = tracker none")
    print(f"{'tracker':<10}{'median s':>10}{'added s':>10}{'ratio':>8}")
    for tracker in trackers:
        median = statistics.median(times[tracker])
        print(f"{tracker:<10}{median:>10.2f}{median - baseline:>10.2f}{median / baseline:>7.1f}x")


if __name__ == "__main__":
    main()

"""What each experiment tracker adds to a pipeline run, against the same run with none.

For every tracker, a default project is generated with that tracker, set up
(`make setup`) and run once (`make repro`, which also warms caches). Then the
evaluate stage, the one that logs, is timed REPEAT times per tracker,
interleaved so that machine noise spreads evenly. Figures are medians, reported
as ratios to the `none` project measured in the same run. The target for MLflow
is at most 1.3x; when the MLflow project is measured, its added time is split
into importing MLflow, opening its store, and logging the run.

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
        ["uv", "run", "--locked", "python", "-m", f"{package}.stages.evaluate"],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


MLFLOW_TARGET = 1.3

# What the MLflow project's evaluate stage pays before it logs anything, step by
# step on top of the stage's own imports (pandas, scikit-learn, which MLflow
# imports too): then importing MLflow, then opening the store as log_run does.
MLFLOW_STEPS = {
    "the stage's imports": "from {package} import evaluate",
    "import mlflow": "from {package} import evaluate\nimport mlflow",
    "open the store": (
        "from {package} import evaluate, tracking\n"
        "import mlflow\n"
        "client = mlflow.MlflowClient(tracking.tracking_uri())\n"
        "client.get_experiment_by_name(tracking.EXPERIMENT_NAME)"
    ),
}


def time_python(project: Path, code: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        ["uv", "run", "--locked", "python", "-c", code],
        cwd=project,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def mlflow_breakdown(project: Path, env: dict[str, str], repeat: int) -> dict[str, float]:
    """Median seconds each step adds to the one before it (see MLFLOW_STEPS)."""
    package = next((project / "src").iterdir()).name
    codes = {step: code.format(package=package) for step, code in MLFLOW_STEPS.items()}
    times: dict[str, list[float]] = {step: [] for step in codes}
    for _ in range(repeat):
        for step, code in codes.items():
            times[step].append(time_python(project, code, env))
    medians = [statistics.median(times[step]) for step in codes]
    return {
        step: medians[index] - medians[index - 1] for index, step in enumerate(codes) if index > 0
    }


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
        breakdown = (
            mlflow_breakdown(projects["mlflow"], env, args.repeat) if "mlflow" in projects else {}
        )
    baseline = statistics.median(times["none"])
    print(f"evaluate stage, median of {args.repeat} runs; baseline = tracker none")
    print(f"{'tracker':<10}{'median s':>10}{'added s':>10}{'ratio':>8}")
    for tracker in trackers:
        median = statistics.median(times[tracker])
        target = ""
        if tracker == "mlflow":
            verdict = "met" if median / baseline <= MLFLOW_TARGET else "MISSED"
            target = f"   (target <= {MLFLOW_TARGET}x: {verdict})"
        print(
            f"{tracker:<10}{median:>10.2f}{median - baseline:>10.2f}"
            f"{median / baseline:>7.1f}x{target}"
        )
    if breakdown:
        added = statistics.median(times["mlflow"]) - baseline
        print("where MLflow's added seconds go:")
        for step, seconds in breakdown.items():
            print(f"  {step:<32}{seconds:>6.2f} s")
        print(f"  {'logging the run, and the rest':<32}{added - sum(breakdown.values()):>6.2f} s")


if __name__ == "__main__":
    main()

"""Every tracker records real runs of the generated pipeline, offline, with provenance."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from support import free_port, git_init_commit, render, run, tool_env

pytestmark = pytest.mark.e2e

TRACKERS = ["mlflow", "dvclive", "comet", "wandb", "neptune", "none"]

# Each script runs with the generated project's own environment and prints what
# the tracker's own store holds for the latest run: params, metrics, commit.
STORE_READERS = {
    "mlflow": """
import json, mlflow
client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db")
experiment = client.get_experiment_by_name("claims-fraud-detection")
(run,) = client.search_runs([experiment.experiment_id], max_results=1)
print(json.dumps({"params": run.data.params, "metrics": run.data.metrics,
                  "commit": run.data.tags["mlflow.source.git.commit"]}))
""",
    "dvclive": """
import json, yaml
params = yaml.safe_load(open("dvclive/params.yaml"))
print(json.dumps({"params": params, "metrics": json.load(open("dvclive/metrics.json")),
                  "commit": params["provenance.git_commit"]}))
""",
    "comet": """
import glob, json, zipfile
(archive,) = glob.glob(".comet-offline/*.zip")
text = zipfile.ZipFile(archive).read("messages.json").decode()
print(json.dumps({"raw": text}))
""",
    "wandb": """
import glob, json
(record,) = glob.glob("wandb/offline-run-*/run-*.wandb")
print(json.dumps({"raw": open(record, "rb").read().decode("utf-8", "replace")}))
""",
    "neptune": """
import glob, json
(log,) = glob.glob(".neptune/offline/*/data-1.log")
print(json.dumps({"raw": open(log).read()}))
""",
}


REPRO_OUTPUT: dict[str, str] = {}  # what `make repro` printed, by tracker


@pytest.fixture(scope="module", params=TRACKERS)
def tracked_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    tracker = request.param
    project = render(
        tmp_path_factory.mktemp(tracker) / "claims-fraud-detection", experiment_tracker=tracker
    )
    git_init_commit(project)
    run(["make", "setup"], project)
    repro = run(["make", "repro"], project)
    REPRO_OUTPUT[tracker] = repro.stdout + repro.stderr
    return tracker, project


def test_pipeline_run_is_logged_with_params_metrics_and_commit(tracked_project) -> None:
    tracker, project = tracked_project
    commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    if tracker == "none":
        fingerprint = json.loads((project / "reports" / "fingerprint.json").read_text())
        assert fingerprint["git_commit"] == commit
        return
    stored = json.loads(
        run(["uv", "run", "--locked", "python", "-c", STORE_READERS[tracker]], project).stdout
    )
    if "raw" in stored:  # offline formats: the values are in the tracker's own files
        for needle in (commit, "recall", "train."):
            assert needle in stored["raw"], f"{needle!r} not in {tracker}'s offline run"
        return
    assert stored["commit"] == commit
    assert stored["metrics"]["recall"] == pytest.approx(metrics["recall"])
    assert any(key.startswith("train.") for key in stored["params"])


def test_mlflow_run_prints_its_summary_without_mlflow_log_noise(tracked_project) -> None:
    tracker, _ = tracked_project
    if tracker != "mlflow":
        pytest.skip("MLflow's logging only")
    output = REPRO_OUTPUT[tracker]
    assert re.search(r"^MLflow run [0-9a-f]{32} in sqlite:///mlflow\.db", output, flags=re.M)
    noise = re.findall(r"^.*(?:INFO|WARNING) mlflow\..*$", output, flags=re.M)
    assert noise == [], noise


def test_project_tests_pass_with_its_tracker(tracked_project) -> None:
    """The generated tests log a real run to this tracker's store, and fail if they cannot."""
    _, project = tracked_project
    run(["make", "test"], project)


def test_only_the_chosen_tracker_is_installed(tracked_project) -> None:
    tracker, project = tracked_project
    installed = run(["uv", "pip", "list", "--format=json"], project).stdout
    names = {package["name"] for package in json.loads(installed)}
    module = {"comet": "comet-ml"}.get(tracker, tracker)
    others = {"mlflow", "dvclive", "comet-ml", "wandb", "neptune"} - {module}
    assert not names & others
    if tracker != "none":
        assert module in names


@pytest.mark.parametrize("tracked_project", ["dvclive"], indirect=True)
def test_dvclive_runs_show_up_in_dvc_exp_show(tracked_project) -> None:
    _, project = tracked_project
    run(
        ["uv", "run", "--locked", "dvc", "exp", "run", "--name", "seed-7", "-S", "seed=7"], project
    )
    shown = run(["uv", "run", "--locked", "dvc", "exp", "show", "--json"], project).stdout
    assert "seed-7" in shown
    assert "dvclive/metrics.json" in shown


@pytest.mark.parametrize("tracked_project", ["mlflow"], indirect=True)
def test_unreachable_mlflow_server_fails_fast_naming_the_uri(tracked_project) -> None:
    _, project = tracked_project
    uri = f"http://127.0.0.1:{free_port()}"
    env = tool_env({"MLFLOW_TRACKING_URI": uri})
    result = run(
        ["uv", "run", "--locked", "dvc", "repro", "--force", "--single-item", "evaluate"],
        project,
        env=env,
        check=False,
        timeout=120,  # a hang would be the bug this test guards against
    )
    assert result.returncode != 0
    assert f"MLflow tracking server {uri} is unreachable" in result.stdout + result.stderr


@pytest.mark.parametrize("tracked_project", ["mlflow"], indirect=True)
def test_runs_go_to_a_shared_mlflow_server(tracked_project, tmp_path: Path) -> None:
    _, project = tracked_project
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            "uv",
            "run",
            "--locked",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
        ],
        cwd=project,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_health(uri, server)
        env = tool_env({"MLFLOW_TRACKING_URI": uri})
        run(
            ["uv", "run", "--locked", "dvc", "repro", "--force", "--single-item", "evaluate"],
            project,
            env=env,
        )
        commit = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
        experiment = api(uri, "experiments/get-by-name?experiment_name=claims-fraud-detection")
        found = api(
            uri,
            "runs/search",
            {"experiment_ids": [experiment["experiment"]["experiment_id"]], "max_results": 1},
        )
        (logged,) = found["runs"]
        tags = {tag["key"]: tag["value"] for tag in logged["data"]["tags"]}
        assert tags["mlflow.source.git.commit"] == commit
        assert {metric["key"] for metric in logged["data"]["metrics"]} >= {"recall", "precision"}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def wait_for_health(uri: str, server: subprocess.Popen, attempts: int = 120) -> None:
    for _ in range(attempts):
        if server.poll() is not None:
            raise AssertionError(f"mlflow server exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"mlflow server at {uri} did not become healthy")


def api(uri: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{uri}/api/2.0/mlflow/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)

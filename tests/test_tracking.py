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
from support import TRACKERS, commit_all, free_port, git_init_commit, render, run, tool_env

pytestmark = pytest.mark.e2e


# Each script runs with the generated project's own environment and prints
# every run the tracker's own store holds: its id and what the store says of it
# (as text: params, metrics, tags), so a test can count runs and read them.
STORE_READERS = {
    "mlflow": """
import json, mlflow
client = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow.db")
experiment = client.get_experiment_by_name("claims-fraud-detection")
runs = client.search_runs([experiment.experiment_id])
rows = [[run.info.run_id, json.dumps({"status": run.info.status, **run.data.to_dictionary()})]
        for run in runs]
print(json.dumps(rows))
""",
    "dvclive": """
import json, pathlib, subprocess
from claims_fraud_detection.shared import records as runs


def show(commit, name):
    if commit is None:  # the workspace
        return pathlib.Path(name).read_text()
    done = subprocess.run(["git", "show", f"{commit}:{name}"], capture_output=True, text=True)
    return done.stdout


found = {}
for commit in [*runs.experiment_commits().values(), None]:
    params, metrics = show(commit, "dvclive/params.yaml"), show(commit, "dvclive/metrics.json")
    for line in params.splitlines():
        if line.startswith("provenance.run_id:"):
            found[line.split(":")[1].strip()] = params + metrics
print(json.dumps(sorted(found.items())))
""",
    "comet": """
import glob, json, os, zipfile
rows = [[os.path.basename(a).split("-")[0], zipfile.ZipFile(a).read("messages.json").decode()]
        for a in glob.glob(".comet-offline/*.zip")]
print(json.dumps(rows))
""",
    "wandb": """
import glob, json
rows = [[r.split("/")[1].rsplit("-", 1)[1], open(r, "rb").read().decode("utf-8", "replace")]
        for r in glob.glob("wandb/offline-run-*/run-*.wandb")]
print(json.dumps(rows))
""",
    "neptune": """
import glob, json, re
found = []
for log in glob.glob(".neptune/offline/*/data-1.log"):
    text = open(log).read()
    found.append([re.search(r"[0-9a-f]{32}", text.split('"run_id"', 1)[1]).group(0), text])
print(json.dumps(found))
""",
    "none": """
import json
from claims_fraud_detection.shared import records as runs
records = [runs.record_at(c) for c in runs.experiment_commits().values()]
records.append(json.loads(runs.RECORD_FILE.read_text()))
print(json.dumps([[r["run_id"], json.dumps(r)] for r in records]))
""",
}


def split_keys(tracker: str) -> tuple[str, str]:
    """How the store spells validation and test metrics (DVCLive nests them)."""
    if tracker == "dvclive":
        return '"validation": {', '"test": {'
    return "validation.recall", "test.recall"


def stored_runs(tracker: str, project: Path) -> list[tuple[str, str]]:
    """Every run in the tracker's store: its id, and what the store holds of it."""
    script = STORE_READERS[tracker]
    return [
        tuple(row)
        for row in json.loads(run(["uv", "run", "python", "-c", script], project).stdout)
    ]


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
    record = json.loads((project / "reports" / "run.json").read_text())
    assert record["tracker"] == tracker
    assert record["git_commit"] == commit
    assert record["experiment"] is None  # `make repro`, not an experiment
    # Exactly once (other tests of this module may add experiments to the store).
    (stored,) = [row for row in stored_runs(tracker, project) if row[0] == record["run_id"]]
    run_id, text = stored
    for needle in (commit, record["content_key"], *split_keys(tracker), "train."):
        if tracker != "none" or needle in {commit, record["content_key"]}:
            assert needle in text, f"{needle!r} not in {tracker}'s record of the run"


def test_queued_experiments_are_each_recorded_once_running_their_own_code(
    tracked_project,
) -> None:
    """Three experiments queued, the workspace edited, the queue run two at a time."""
    tracker, project = tracked_project
    commit_all(project, "Run the pipeline")
    before = stored_runs(tracker, project)
    head = run(["git", "rev-parse", "HEAD"], project).stdout.strip()
    names = {"c-0.3": "0.3", "c-0.5": "0.5", "c-2.0": "2.0"}
    for name, value in names.items():
        queue = [
            "dvc",
            "exp",
            "run",
            "--queue",
            "-n",
            name,
            "-S",
            f"train.logistic_regression.C={value}",
        ]
        run(["uv", "run", "--locked", *queue], project)
    run(
        [
            "uv",
            "run",
            "--locked",
            "dvc",
            "exp",
            "run",
            "--queue",
            "-n",
            "broken",
            "-S",
            "train.estimator=nope",
        ],
        project,
    )
    # The workspace moves on while the queue waits: no queued experiment may run this code.
    train = project / "src" / "claims_fraud_detection" / "stages" / "train.py"
    original = train.read_text()
    train.write_text(
        original.replace("def main()", 'raise SystemExit("workspace code")\n\n\ndef main()')
    )
    try:
        queued = run(["make", "queue", "JOBS=2"], project, check=False)
    finally:
        train.write_text(original)
    output = queued.stdout + queued.stderr
    assert "workspace code" not in output
    assert "Failed to reproduce experiment(s) 'broken'" in output

    stored = dict(stored_runs(tracker, project))
    assert len(stored) == len(before) + len(names), (
        "each run exactly once, the failed one not at all"
    )
    for name in names:
        found = json.loads(run(["make", "--silent", "find-run", f"REF={name}"], project).stdout)
        record = found["record"]
        assert (record["experiment"], record["baseline_commit"]) == (name, head)
        assert found["experiment_ref"] == name
        assert name in stored[record["run_id"]]
        assert split_keys(tracker)[0] in stored[record["run_id"]] or tracker == "none"
        back = json.loads(
            run(["make", "--silent", "find-run", f"REF={record['run_id']}"], project).stdout
        )
        assert back["commit"] == found["commit"]
        key = run(
            ["uv", "run", "python", "-c", LOCK_KEY.format(commit=found["commit"])], project
        ).stdout.strip()
        assert key == record["content_key"]

    run(["make", "verify"], project)
    assert dict(stored_runs(tracker, project)) == stored, "make verify logged a run"


LOCK_KEY = """
import subprocess, yaml
from claims_fraud_detection.shared import records as runs
lock = subprocess.run(
    ["git", "show", "{commit}:dvc.lock"], capture_output=True, text=True, check=True
)
print(runs.lock_content_key(yaml.safe_load(lock.stdout)))
"""


def test_mlflow_run_prints_its_summary_without_mlflow_log_noise(tracked_project) -> None:
    tracker, _ = tracked_project
    if tracker != "mlflow":
        pytest.skip("MLflow's logging only")
    output = REPRO_OUTPUT[tracker]
    assert re.search(r"^MLflow run [0-9a-f]{32} in sqlite:///mlflow\.db ", output, flags=re.M)
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


def test_doctor_passes_a_clean_project_and_names_a_committed_env_file(tracked_project) -> None:
    _, project = tracked_project
    doctor = ["uv", "run", "--locked", "python", "-m", "claims_fraud_detection.commands.doctor"]
    if run(["git", "status", "--porcelain"], project).stdout.strip():
        commit_all(project, "Run the pipeline")
    clean = run(doctor, project, check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "FAIL" not in clean.stdout
    env = project / ".env"
    env.write_text("SECRET=1\n", encoding="utf-8")
    run(["git", "add", "--force", ".env"], project)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Commit a secret"], project)
    try:
        broken = run(doctor, project, check=False)
    finally:  # the project is shared: leave it as it was
        run(["git", "reset", "--quiet", "--soft", "HEAD~1"], project)
        run(["git", "rm", "--quiet", "--cached", ".env"], project)
        env.unlink()
    assert broken.returncode == 1
    (line,) = [text for text in broken.stdout.splitlines() if text.startswith("FAIL")]
    assert ".env is committed" in line


@pytest.mark.parametrize("tracked_project", ["dvclive"], indirect=True)
def test_dvclive_runs_show_up_in_dvc_exp_show(tracked_project) -> None:
    _, project = tracked_project
    # --temp: the workspace, which this module's other tests read, stays as it is.
    experiment = ["dvc", "exp", "run", "--temp", "--name", "seed-7", "-S", "seed=7"]
    run(["uv", "run", "--locked", *experiment], project)
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
        local = stored_runs("mlflow", project)
        # A teammate's setting, in .env as the docs say: make loads it for the queue's workers.
        (project / ".env").write_text(f"MLFLOW_TRACKING_URI={uri}\n", encoding="utf-8")
        queue = ["dvc", "exp", "run", "--queue", "-n", "on-server", "-S", "seed=7"]
        run(["uv", "run", "--locked", *queue], project)
        run(["make", "queue", "JOBS=1"], project)
        (project / ".env").unlink()
        record = json.loads(run(["make", "--silent", "find-run", "REF=on-server"], project).stdout)
        experiment = api(uri, "experiments/get-by-name?experiment_name=claims-fraud-detection")
        found = api(
            uri, "runs/search", {"experiment_ids": [experiment["experiment"]["experiment_id"]]}
        )
        (logged,) = found["runs"]
        assert logged["info"]["run_id"] == record["record"]["run_id"]
        tags = {tag["key"]: tag["value"] for tag in logged["data"]["tags"]}
        assert tags["provenance.experiment"] == "on-server"
        assert tags["mlflow.source.git.commit"] == record["record"]["git_commit"]
        metrics = {metric["key"] for metric in logged["data"]["metrics"]}
        assert {"validation.recall", "test.recall"} <= metrics
        assert stored_runs("mlflow", project) == local  # nothing went to the local store
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

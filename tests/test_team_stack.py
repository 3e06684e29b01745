"""The team stack of an MLflow project, proven on real services (see stack.py).

One default project follows its own "Working as a team" page
(``docs/guides/team.md``): its ``.env`` points at a real ``mlflow server`` on
PostgreSQL whose artifacts live in SeaweedFS, and its DVC remote becomes the
stack's bucket with the page's own commands. Its first run is committed and
pushed to a bare git repository (the team's origin) and to the bucket. Then:

- the run is on the server with its params, metrics, provenance and
  artifacts, the artifacts are in the bucket, and the promoted model loads
  back through the server, with no object-store keys on the client;
- two clones (two teammates) each queue two experiments and start their
  queues with ``dvc queue start -j 2`` at the same time: four runs land;
- ``make share-experiment`` (what each CI grid job runs) logs its run to the
  server and pushes the experiment to origin and its outputs to the bucket;
- a fresh clone's ``dvc pull`` restores every output bit for bit;
- local runs move to the server with the page's ``make move-runs``, once;
- a server stopped mid-pipeline fails the evaluation at once, naming its URI,
  with the outputs and ``reports/`` left as they were.

The tests share the stack and the project on one worker; each holds in any order.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stack
from support import commit_all, git_init_commit, render, run, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("team-stack")]

SLUG = "claims-fraud-detection"
BUCKETS = ["mlflow", "dvc"]  # what compose.yaml's object store creates


@dataclass
class Team:
    folder: Path
    project: Path
    origin: Path
    server: stack.TrackingServer
    store: stack.ObjectStore
    venv: Path

    @property
    def env(self) -> dict[str, str]:
        return stack.client_env(self.server)

    def guide(self) -> str:
        return (self.project / "docs" / "guides" / "team.md").read_text()

    def placeholders(self) -> dict[str, str]:
        return {
            "<stack-host>:8333": self.store.endpoint.removeprefix("http://"),
            "<stack-host>:5000": self.server.uri.removeprefix("http://"),
            "<access-key>": stack.ACCESS_KEY,
            "<secret-key>": stack.SECRET_KEY,
        }

    def fill(self, line: str) -> str:
        for placeholder, value in self.placeholders().items():
            line = line.replace(placeholder, value)
        return line

    def clone(self, name: str) -> Path:
        """A teammate's clone of origin, set up as the guide says."""
        clone = self.folder / name
        run(["git", "clone", "--quiet", str(self.origin), str(clone)], self.folder)
        run(["make", "setup"], clone, env=self.env)
        for line in guide_block(self.guide(), "Shared data"):
            if "--local" in line:
                run(shlex.split(self.fill(line)), clone, env=self.env)
        (clone / ".env").write_text(self.fill(env_line(self.guide())) + "\n")
        return clone


def guide_block(page: str, heading: str) -> list[str]:
    """The commands of the first shell block under the ``## heading`` of the guide."""
    section = page.split(f"\n## {heading}", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block, f"no shell block under {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def env_line(page: str) -> str:
    """The line step 2 of the guide puts in .env."""
    (line,) = re.findall(r"```sh\n(MLFLOW_TRACKING_URI=[^\n]+)\n```", page)
    return line


def server_python(team: Team, project: Path, code: str) -> str:
    """Run ``code`` in ``project``'s environment as a teammate: the server's URI, no S3 keys."""
    return run(["uv", "run", "--locked", "python", "-c", code], project, env=team.env).stdout


def output_digests(project: Path) -> dict[str, str]:
    """The md5 of every file under every output that dvc.lock records."""
    lock = json.loads(
        run(
            ["uv", "run", "--locked", "python", "-c", PRINT_LOCK_OUTS],
            project,
        ).stdout
    )
    digests = {}
    for out in lock:
        path = project / out
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digests[file.relative_to(project).as_posix()] = hashlib.md5(
                file.read_bytes()
            ).hexdigest()
    return digests


PRINT_LOCK_OUTS = """
import json, yaml
lock = yaml.safe_load(open("dvc.lock"))
print(json.dumps(sorted({out["path"] for stage in lock["stages"].values()
                         for out in stage.get("outs", [])})))
"""


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def run_ids_on_server(team: Team) -> dict[str, str]:
    """Every run of the project's experiment on the server: run id -> experiment name."""
    code = f"""
import json, mlflow
client = mlflow.MlflowClient({team.server.uri!r})
experiment = client.get_experiment_by_name({SLUG!r})
runs = client.search_runs([experiment.experiment_id], max_results=1000)
print(json.dumps({{r.info.run_id: r.data.tags.get("provenance.experiment") for r in runs}}))
"""
    return json.loads(server_python(team, team.project, code))


# Session scope: a module-scoped fixture is built again whenever the worker
# runs a test of another module in between.
@pytest.fixture(scope="session")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    lacking = stack.missing()
    if lacking:
        pytest.skip(f"needs {', '.join(lacking)}")
    folder = tmp_path_factory.mktemp("team")
    project = render(folder / SLUG)
    venv = stack.server_environment(project / "stack" / "requirements.txt", folder)
    with stack.postgres() as database, stack.object_store(BUCKETS, folder) as store:
        server = stack.TrackingServer(venv, database, store, "mlflow", folder)
        server.start()
        try:
            team = Team(folder, project, folder / "origin.git", server, store, venv)
            share_first_run(team)
            yield team
        finally:
            server.stop()


def share_first_run(team: Team) -> None:
    """The project moves to the stack as its guide says, then shares its first run."""
    project, env = team.project, team.env
    git_init_commit(project)
    run(["make", "setup"], project, env=env)
    (project / ".env").write_text(team.fill(env_line(team.guide())) + "\n")
    for line in guide_block(team.guide(), "Shared data"):
        run(shlex.split(team.fill(line)), project, env=env)
    commit_all(project, "Keep data and models in the team's object store")
    run(["make", "repro"], project, env=env)
    commit_all(project, "First run on the team server")
    run(["uv", "run", "--locked", "dvc", "push"], project, env=env)
    run(["git", "clone", "--quiet", "--bare", str(project), str(team.origin)], team.folder)
    run(["git", "remote", "add", "origin", str(team.origin)], project)


def test_the_guide_names_the_stack_and_the_commands_it_takes(team: Team) -> None:
    page = team.guide()
    assert "make stack-up" in page
    assert "MLFLOW_TRACKING_URI=http://<stack-host>:5000" in page
    commands = guide_block(page, "Shared data")
    assert commands[0] == 'uv add "dvc[s3]"'  # the default project's remote is a folder
    assert f"s3://dvc/{SLUG}" in commands[1]
    assert commands[-1] == "uv run dvc push"


def test_a_run_logs_to_the_server_and_the_promoted_model_loads_back(team: Team) -> None:
    project = team.project
    record = json.loads((project / "reports" / "run.json").read_text())
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    model_md5 = hashlib.md5((project / "models" / "pipeline.joblib").read_bytes()).hexdigest()
    code = f"""
import hashlib, json, pathlib, mlflow
client = mlflow.MlflowClient({team.server.uri!r})
run = client.get_run({record["run_id"]!r})
folder = mlflow.artifacts.download_artifacts(
    run_id=run.info.run_id, artifact_path="model-file", tracking_uri={team.server.uri!r})
print(json.dumps({{
    "params": run.data.params, "metrics": run.data.metrics, "tags": run.data.tags,
    "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id)),
    "model_md5": hashlib.md5(pathlib.Path(folder, "pipeline.joblib").read_bytes()).hexdigest(),
}}))
"""
    logged = json.loads(server_python(team, project, code))
    assert logged["params"]["seed"] == "42"
    assert logged["params"]["train.estimator"] == "logistic_regression"
    # Every number of metrics.json (the splits, their intervals, the dummy's) as logged.
    for name, value in flattened(metrics).items():
        assert logged["metrics"][name] == pytest.approx(value, abs=1e-4), name
    tags = logged["tags"]
    assert tags["provenance.content_key"] == record["content_key"]
    assert tags["mlflow.source.git.commit"] == record["git_commit"]
    assert "provenance.environment.uv_lock_md5" in tags
    assert {"run.json", "model-file", "metrics.json"} <= set(logged["artifacts"])
    assert logged["model_md5"] == model_md5  # through the server, no S3 keys here
    keys = [
        item["Key"]
        for item in stack.s3_client(team.store).list_objects_v2(Bucket="mlflow")["Contents"]  # type: ignore[attr-defined]
    ]
    assert any(record["run_id"] in key and key.endswith("pipeline.joblib") for key in keys)

    promoted = run(["make", "promote", "EXP=HEAD"], project, env=team.env, check=False)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert f"MLflow model {SLUG} version" in promoted.stdout + promoted.stderr
    code = f"""
import joblib, mlflow, mlflow.sklearn, numpy, pandas
mlflow.set_tracking_uri({team.server.uri!r})
version = mlflow.MlflowClient().get_model_version_by_alias({SLUG!r}, "champion")
loaded = mlflow.sklearn.load_model("models:/{SLUG}@champion")
local = joblib.load("models/pipeline.joblib")
rows = pandas.read_parquet("data/interim/test.parquet").drop(columns=["fraud"])
numpy.testing.assert_array_equal(loaded.predict_proba(rows), local.predict_proba(rows))
numpy.testing.assert_array_equal(loaded.predict(rows), local.predict(rows))
print(version.run_id)
"""
    assert server_python(team, project, code).strip() == record["run_id"]


def start_queue(team: Team, clone: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["uv", "run", "--locked", "--env-file", ".env", "dvc", "queue", "start", "-j", "2"],
        cwd=clone,
        env=team.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_queue(team: Team, clone: Path) -> str:
    """Wait until the clone's queue has nothing queued or running; return its status."""
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = run(["uv", "run", "--locked", "dvc", "queue", "status"], clone, env=team.env)
        states = status.stdout
        if not re.search(r"\b(Queued|Running)\b", states):
            return states
        time.sleep(3)
    raise AssertionError(f"the queue of {clone.name} did not finish:\n{states}")


def test_two_teammates_run_two_queued_experiments_each_at_the_same_time(team: Team) -> None:
    before = set(run_ids_on_server(team))
    clones = {name: team.clone(name) for name in ("alice", "bob")}
    names = {}
    for number, (name, clone) in enumerate(clones.items()):
        for variant in range(2):
            experiment = f"{name}-c{number}{variant}"
            value = f"{0.05 * (1 + 2 * number + variant):.2f}"
            queue = ["dvc", "exp", "run", "--queue", "-n", experiment]
            setting = f"train.logistic_regression.C={value}"
            run(["uv", "run", "--locked", *queue, "-S", setting], clone, env=team.env)
            names[experiment] = clone
    starters = [start_queue(team, clone) for clone in clones.values()]
    for starter in starters:
        starter.wait(timeout=300)
    statuses = {name: wait_for_queue(team, clone) for name, clone in clones.items()}
    for name, status in statuses.items():
        assert "Failed" not in status, f"{name}:\n{status}"
    new = {run_id: exp for run_id, exp in run_ids_on_server(team).items() if run_id not in before}
    assert sorted(new.values()) == sorted(names), new
    for experiment, clone in names.items():
        shown = run(["uv", "run", "--locked", "dvc", "exp", "show", "--json"], clone)
        assert experiment in shown.stdout


def test_make_share_experiment_logs_the_run_and_pushes_code_and_outputs(team: Team) -> None:
    """What each job of the CI experiment grid runs, here in a teammate's clone."""
    clone = team.clone("dave")
    shared = run(
        ["make", "share-experiment", "SET=train.logistic_regression.C=0.2"], clone, env=team.env
    )
    record = json.loads((clone / "reports" / "run.json").read_text())
    assert record["run_id"] in run_ids_on_server(team)
    refs = run(["git", "ls-remote", str(team.origin), "refs/exps/*"], clone).stdout
    assert record["experiment"] in refs, shared.stdout + shared.stderr
    md5 = hashlib.md5((clone / "models" / "model.joblib").read_bytes()).hexdigest()
    key = f"{SLUG}/files/md5/{md5[:2]}/{md5[2:]}"
    found = stack.s3_client(team.store).list_objects_v2(Bucket="dvc", Prefix=key)  # type: ignore[attr-defined]
    assert found.get("KeyCount") == 1, f"{key} is not in the DVC remote"


def test_a_fresh_clone_pulls_every_output_bit_for_bit(team: Team) -> None:
    clone = team.clone("carol")
    run(["uv", "run", "--locked", "dvc", "pull"], clone, env=team.env)
    expected = output_digests(team.project)
    assert expected, "dvc.lock records outputs"
    assert output_digests(clone) == expected
    status = run(["uv", "run", "--locked", "dvc", "status", "--json"], clone, env=team.env)
    assert json.loads(status.stdout) == {}


def test_local_runs_move_to_the_server_once_with_make_move_runs(team: Team) -> None:
    local = team.folder / "local-runs"
    shutil.copytree(team.project, local, symlinks=True, ignore=shutil.ignore_patterns(".env"))
    (local / "params.yaml").write_text(
        (local / "params.yaml").read_text().replace("C: 1.0", "C: 0.3")
    )
    run(["make", "repro"], local, env=tool_env())  # no .env: the local SQLite store
    local_run = json.loads((local / "reports" / "run.json").read_text())["run_id"]
    assert local_run not in run_ids_on_server(team)
    (command,) = [
        line for line in team.guide().split("### 3.", 1)[1].splitlines() if "move-runs" in line
    ][:1]
    moved = run(shlex.split(team.fill(command)), local, env=tool_env())
    assert f"{local_run} -> " in moved.stdout
    again = run(shlex.split(team.fill(command)), local, env=tool_env())
    assert "0 run(s) copied" in again.stdout
    code = f"""
import json, mlflow
client = mlflow.MlflowClient({team.server.uri!r})
experiment = client.get_experiment_by_name({SLUG!r})
query = "params.`train.logistic_regression.C` = '0.3'"
runs = client.search_runs([experiment.experiment_id], query)
print(json.dumps([
    [r.data.tags.get("provenance.content_key"), r.data.tags.get("moved.from_run_id"),
     sorted(a.path for a in client.list_artifacts(r.info.run_id, "model-file"))]
    for r in runs
]))
"""
    content_key = json.loads((local / "reports" / "run.json").read_text())["content_key"]
    assert json.loads(server_python(team, team.project, code)) == [
        [content_key, local_run, ["model-file/pipeline.joblib"]]
    ]


def test_a_server_stopped_mid_pipeline_fails_the_run_naming_its_uri(team: Team) -> None:
    project = team.folder / "outage"
    shutil.copytree(team.project, project, symlinks=True)
    second = stack.TrackingServer(team.venv, team.server.database, team.store, "mlflow", project)
    second.start()
    (project / ".env").write_text(f"MLFLOW_TRACKING_URI={second.uri}\n")
    params = (project / "params.yaml").read_text().replace("C: 1.0", "C: 0.7")
    (project / "params.yaml").write_text(params)
    try:
        run(["uv", "run", "--locked", "--env-file", ".env", "dvc", "repro", "train"], project)
    finally:
        second.stop()
    trained = hashlib.md5((project / "models" / "model.joblib").read_bytes()).hexdigest()
    reports = folder_bytes(project / "reports")
    failed = run(["make", "repro"], project, env=tool_env(), check=False, timeout=120)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"MLflow tracking server {second.uri} is unreachable" in output
    assert hashlib.md5((project / "models" / "model.joblib").read_bytes()).hexdigest() == trained
    assert folder_bytes(project / "reports") == reports


def flattened(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics as the tracker logs them: dotted names (``intervals.test.recall.low``)."""
    flat: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = float(value)
    return flat

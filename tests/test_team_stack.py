"""The team stack of an MLflow project, proven on real services (see stack.py).

One default project follows its own "Working as a team" page
(``docs/guides/team.md``): a real ``mlflow server`` with MLflow's basic
authentication, on PostgreSQL, whose artifacts live in SeaweedFS; the admin
makes every teammate's account with the page's own code, each ``.env`` holds
the server and that account, and the DVC remote becomes the stack's bucket
with the page's own commands. The lead's first run is committed and pushed to
a bare git repository (the team's origin) and to the bucket. Then:

- the server lets no one in without an account, and the project's check
  before a run (and ``make doctor``'s) names the variables to set;
- an account with READ only can read but cannot register a model version
  or move the ``champion`` alias;
- the run is on the server with its params, metrics, provenance and
  artifacts, the artifacts are in the bucket, the lead promotes it and a
  read-only account loads the champion back through the server, with no
  object-store keys on the client;
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
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stack
from support import commit_all, git_init_commit, render, run, tool_env

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("team-stack")]

SLUG = "claims-fraud-detection"
PACKAGE = SLUG.replace("-", "_")
BUCKETS = ["mlflow", "dvc"]  # what compose.yaml's object store creates
LEAD = "lead"  # the one teammate who may promote
VIEWER = "viewer"  # an account that may read, and nothing more
PASSWORDS = {
    name: f"{name}-password-0123" for name in ("lead", "alice", "bob", "carol", "dave", VIEWER)
}
# The admin's API, after the guide's code: an account with READ on the
# experiment and the registered model, and nothing more.
VIEWER_ACCOUNT = f"""
import mlflow
from mlflow.server import get_app_client
accounts = get_app_client("basic-auth", tracking_uri=mlflow.get_tracking_uri())
accounts.create_user({VIEWER!r}, {PASSWORDS[VIEWER]!r})
experiment = mlflow.MlflowClient().get_experiment_by_name({SLUG!r})
accounts.grant_user_permission({VIEWER!r}, "experiment", experiment.experiment_id, "READ")
accounts.grant_user_permission({VIEWER!r}, "registered_model", {SLUG!r}, "READ")
"""


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
        """A teammate's shell: the server's URI, the account only in the project's ``.env``."""
        return stack.client_env(self.server)

    def as_account(self, username: str, password: str | None = None) -> dict[str, str]:
        password = PASSWORDS[username] if password is None else password
        return stack.client_env(self.server, stack.account_env(username, password))

    def guide(self) -> str:
        return (self.project / "docs" / "guides" / "team.md").read_text()

    def placeholders(self) -> dict[str, str]:
        return {
            "<stack-host>:8333": self.store.endpoint.removeprefix("http://"),
            "<stack-host>:5000": self.server.uri.removeprefix("http://"),
            "<access-key>": stack.ACCESS_KEY,
            "<secret-key>": stack.SECRET_KEY,
        }

    def make_accounts(self, promoters: set[str], then: str = "") -> None:
        """The admin runs the guide's own code for every teammate, from the admin's ``.env``.

        One process runs the guide's Python once per account (then ``then``), so
        MLflow is imported once.
        """
        command, body = step_block(self.guide(), "2").split("\n", 1)
        body = body.removesuffix("EOF\n")
        scripts = []
        for username in PASSWORDS.keys() - {VIEWER}:
            script = body.replace("promotes = False", f"promotes = {username in promoters}")
            script = script.replace('"<teammate>"', repr(username))
            password = '"<their password, 12 characters or more>"'
            scripts.append(script.replace(password, repr(PASSWORDS[username])))
        admin = self.folder / "admin"
        admin.mkdir(exist_ok=True)
        (admin / ".env").write_text(
            env_lines(self.guide(), self.fill, stack.ADMIN_USERNAME, stack.ADMIN_PASSWORD)
        )
        command = command.replace("--env-file .env", f"--env-file {admin / '.env'}")
        script = "\n".join([*scripts, then])
        run(["bash", "-c", f"{command}\n{script}\nEOF\n"], self.project, env=self.env)

    def write_env(self, project: Path, username: str) -> None:
        """Step 3 of the guide: the server and the teammate's account in ``.env``."""
        (project / ".env").write_text(
            env_lines(self.guide(), self.fill, username, PASSWORDS[username])
        )

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
        self.write_env(clone, name)
        return clone


def guide_block(page: str, heading: str) -> list[str]:
    """The commands of the first shell block under the ``## heading`` of the guide."""
    section = page.split(f"\n## {heading}", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block, f"no shell block under {heading!r}"
    return [line for line in block.group(1).splitlines() if line.strip()]


def step_block(page: str, step: str) -> str:
    """The first shell block under the guide's ``### {step}.`` heading, as a script."""
    section = page.split(f"\n### {step}.", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    assert block, f"no shell block under step {step}"
    return block.group(1)


def env_lines(page: str, fill: Any, username: str, password: str) -> str:
    """What step 3 of the guide puts in .env, for this account."""
    (block,) = re.findall(r"```sh\n(MLFLOW_TRACKING_URI=.*?)```", page, flags=re.DOTALL)
    block = block.replace("<your account>", username).replace("<your password>", password)
    return fill(block)


def server_python(team: Team, project: Path, code: str, account: str = LEAD) -> str:
    """Run ``code`` in ``project``'s environment as a teammate: the server's URI, no S3 keys."""
    env = team.as_account(account)
    return run(["uv", "run", "--locked", "python", "-c", code], project, env=env).stdout


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
        auth = project / "stack" / "basic_auth.ini"
        server = stack.TrackingServer(venv, database, store, "mlflow", folder, auth)
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
    team.make_accounts({LEAD}, then=VIEWER_ACCOUNT)
    team.write_env(project, LEAD)
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
    assert "MLFLOW_TRACKING_USERNAME=<your account>" in page
    assert "accounts.create_user(user, password)" in step_block(page, "2")
    # The admin's client adds the Flask-WTF the server pins.
    requirements = (team.project / "stack" / "requirements.txt").read_text().splitlines()
    assert f"--with {next(r for r in requirements if r.startswith('Flask-WTF=='))} " in page
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
    assert server_python(team, project, code, account=VIEWER).strip() == record["run_id"]


def status_of(request: urllib.request.Request | str) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_server_lets_no_stranger_in_and_the_project_names_the_variables(team: Team) -> None:
    search = f"{team.server.uri}/api/2.0/mlflow/experiments/search?max_results=1"
    assert status_of(f"{team.server.uri}/health") == 200  # what compose's health check asks
    assert status_of(search) == 401
    wrong = urllib.request.Request(search, headers={"Authorization": "Basic bGVhZDpub3BlCg=="})
    assert status_of(wrong) == 401
    check = ["uv", "run", "--locked", "python", "-m", f"{PACKAGE}.commands.check_tracker"]
    for env, says in (
        (team.env, "lets no one in without an account"),
        (team.as_account(LEAD, "not-the-password"), "refuses the account 'lead'"),
    ):
        refused = run(check, team.project, env=env, check=False)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert says in refused.stderr
        assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in .env" in refused.stderr
        assert "Traceback" not in refused.stderr
    doctor = f"""
from {PACKAGE}.commands import doctor
finding = doctor.check_open_runs(doctor.PROJECT_ROOT)
print(finding.status, finding.message)
"""
    found = run(["uv", "run", "--locked", "python", "-c", doctor], team.project, env=team.env)
    assert found.stdout.startswith("fail could not look for runs left open"), found.stdout
    assert "MLFLOW_TRACKING_PASSWORD" in found.stdout
    allowed = run(check, team.project, env=team.as_account(VIEWER))
    assert allowed.returncode == 0


def test_a_read_only_account_can_neither_register_a_version_nor_move_the_champion(
    team: Team,
) -> None:
    record = json.loads((team.project / "reports" / "run.json").read_text())
    attempts = f"""
import json, mlflow
from mlflow.exceptions import MlflowException
from {PACKAGE}.shared import tracking
client = mlflow.MlflowClient({team.server.uri!r})
run_id = {record["run_id"]!r}

def registry():
    versions = client.search_model_versions("name = '{SLUG}'")
    return [sorted(v.version for v in versions), client.get_registered_model({SLUG!r}).aliases]

before = registry()
client.get_run(run_id)  # reading is allowed
answers = {{}}
for name, attempt in {{
    "register": lambda: client.create_model_version(
        {SLUG!r}, f"runs:/{{run_id}}/model-file", run_id=run_id),
    "alias": lambda: client.set_registered_model_alias({SLUG!r}, "champion", "1"),
    "log": lambda: client.set_tag(run_id, "viewer.was.here", "yes"),
}}.items():
    try:
        attempt()
        answers[name] = "allowed"
    except MlflowException as error:
        answers[name] = error.error_code
try:  # what make promote calls
    tracking.register_model(run_id, {SLUG!r}, "champion", {{}})
    answers["promote"] = "allowed"
except tracking.TrackingError as error:
    answers["promote"] = str(error)
print(json.dumps({{"answers": answers, "unchanged": registry() == before}}))
"""
    found = json.loads(server_python(team, team.project, attempts, account=VIEWER))
    answers = found["answers"]
    denied = "PERMISSION_DENIED"
    assert {name: answers[name] for name in ("register", "alias", "log")} == {
        "register": denied,
        "alias": denied,
        "log": denied,
    }
    # The project's own registration says who was refused, in one line.
    assert "the account 'viewer' may not do this" in answers["promote"], answers["promote"]
    assert found["unchanged"]


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
    team.write_env(local, LEAD)
    (command,) = [
        line for line in team.guide().split("### 4.", 1)[1].splitlines() if "move-runs" in line
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
    auth = project / "stack" / "basic_auth.ini"
    second = stack.TrackingServer(
        team.venv, team.server.database, team.store, "mlflow", team.folder / "second", auth
    )
    second.start()
    team.write_env(project, LEAD)
    (project / ".env").write_text(
        (project / ".env").read_text().replace(team.server.uri, second.uri)
    )
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

"""The DVC pipeline of generated projects: what it declares, and that it reproduces.

Fast tests read the rendered dvc.yaml, params.yaml and .dvc/config. End-to-end
tests (``--e2e``) read the pipeline run of each problem type's project (the
shared ``ran_project``), re-run it, push and pull its outputs (to a local
folder and to an S3 server on loopback), and restore it in a fresh clone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import (
    DEFAULT_RUN,
    METRICS,
    PROBLEM_TYPES,
    free_port,
    git_init_commit,
    run,
    tool_env,
    write_user_data,
)

STAGES = ["prepare", "featurize", "train", "evaluate"]
# The metrics contract: every metric the problem type's policy can choose from.
POLICY_METRICS = {problem_type: set(names) for problem_type, names in METRICS.items()}


def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def dvc_config(project: Path) -> dict[str, dict[str, str]]:
    """Parse .dvc/config (DVC's configobj dialect: indented keys, quoted section names)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in (project / ".dvc" / "config").read_text(encoding="utf-8").splitlines():
        if header := re.fullmatch(r"\[(.+)\]", line.strip()):
            current = sections.setdefault(header.group(1).strip("'"), {})
        elif "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            current[key] = value
    return sections


def param(params: dict[str, Any], dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value[key]
    return value


# ---------------------------------------------------------------- fast: what is rendered


@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
@pytest.mark.parametrize("include_example", [True, False])
def test_every_stage_declares_params_that_exist(
    render_project: Callable[..., Path], problem_type: str, include_example: bool
) -> None:
    project = render_project(problem_type=problem_type, include_example=include_example)
    pipeline = read_yaml(project / "dvc.yaml")
    params = read_yaml(project / "params.yaml")
    expected = ["generate", *STAGES] if include_example else STAGES
    assert list(pipeline["stages"]) == expected
    for name, stage in pipeline["stages"].items():
        assert stage["cmd"].startswith("python -m claims_fraud_detection.")
        for entry in stage.get("params", []):
            # DVC's two forms: a key of params.yaml, or {other file: [its keys]}.
            files = entry if isinstance(entry, dict) else {"params.yaml": [entry]}
            for file, keys in files.items():
                values = params if file == "params.yaml" else read_yaml(project / file)
                for dotted in keys:
                    param(values, dotted)  # raises KeyError if the stage reads a missing key
        for dep in stage["deps"]:
            if dep.startswith("src/"):
                assert (project / dep).is_file(), f"{name} depends on missing {dep}"
    evaluate = pipeline["stages"]["evaluate"]
    assert evaluate["metrics"] == [{"reports/metrics.json": {"cache": False}}]
    plotted = {next(iter(plot)) for plot in pipeline["plots"]}
    assert all(path.startswith("reports/plots/") for path in plotted)


def test_seed_in_params_comes_from_the_random_seed_answer(
    render_project: Callable[..., Path],
) -> None:
    project = render_project(random_seed=1234)
    assert read_yaml(project / "params.yaml")["seed"] == 1234


def test_example_pipeline_generates_data_and_the_skeleton_reads_the_users(
    render_project: Callable[..., Path],
) -> None:
    example = render_project()
    skeleton = render_project(include_example=False)
    assert (example / "src/claims_fraud_detection/stages/generate.py").is_file()
    assert not (skeleton / "src/claims_fraud_detection/stages/generate.py").exists()
    assert "generate" not in read_yaml(skeleton / "params.yaml")
    prepare = read_yaml(skeleton / "dvc.yaml")["stages"]["prepare"]
    assert "data/raw/dataset.csv" in prepare["deps"]


@pytest.mark.parametrize(
    ("answers", "url"),
    [
        ({}, "../../claims-fraud-detection-dvc-storage"),
        ({"dvc_remote_url": "/srv/dvc/claims"}, "/srv/dvc/claims"),
        ({"dvc_remote_url": "storage/dvc"}, "../storage/dvc"),
        ({"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/claims"}, "s3://bucket/claims"),
        ({"dvc_remote": "gcs", "dvc_remote_url": "gs://bucket/claims"}, "gs://bucket/claims"),
        ({"dvc_remote": "azure", "dvc_remote_url": "azure://box/claims"}, "azure://box/claims"),
        ({"dvc_remote": "ssh", "dvc_remote_url": "ssh://me@host/dvc"}, "ssh://me@host/dvc"),
    ],
)
def test_dvc_config_renders_the_chosen_remote(
    render_project: Callable[..., Path], answers: dict[str, str], url: str
) -> None:
    project = render_project(**answers)
    config = dvc_config(project)
    assert config["core"] == {"analytics": "false", "remote": "storage"}
    assert config['remote "storage"'] == {"url": url}
    extra = {"s3": "[s3]", "gcs": "[gs]", "azure": "[azure]", "ssh": "[ssh]"}.get(
        answers.get("dvc_remote", "local"), ""
    )
    dependencies = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"dvc{extra}>=' in dependencies


def test_no_remote_leaves_dvc_without_one(render_project: Callable[..., Path]) -> None:
    project = render_project(dvc_remote="none")
    assert dvc_config(project) == {"core": {"analytics": "false"}}


def test_dvc_keeps_credentials_and_cache_out_of_git(default_project: Path) -> None:
    ignored = (default_project / ".dvc" / ".gitignore").read_text(encoding="utf-8").split()
    assert {"/config.local", "/cache", "/tmp"} <= set(ignored)


# ---------------------------------------------------------------- end to end: running it


def metrics(project: Path) -> dict[str, float]:
    return json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))


@pytest.mark.e2e
@pytest.mark.parametrize("ran_project", PROBLEM_TYPES, indirect=True)
def test_pipeline_runs_and_a_forced_rerun_is_bit_identical(ran_project: Path) -> None:
    project = ran_project
    problem_type = read_yaml(project / ".copier-answers.yml")["problem_type"]
    measured = metrics(project)
    assert set(measured) == {"validation", "test", "intervals", "baseline"}
    by_split = {split: measured[split] for split in ("validation", "test")}
    for split, scores in by_split.items():
        assert POLICY_METRICS[problem_type] <= scores.keys()
        assert all(isinstance(value, float) for value in scores.values())
        # Each policy metric's bootstrap interval holds its value; the dummy is measured too.
        intervals = measured["intervals"][split]
        assert POLICY_METRICS[problem_type] <= intervals.keys()
        for name, ends in intervals.items():
            assert ends["low"] <= scores[name] <= ends["high"], (split, name)
        assert POLICY_METRICS[problem_type] <= measured["baseline"][split].keys()
    if problem_type == "binary_classification":
        assert 0.6 <= by_split["test"]["recall"] <= 0.95
        assert by_split["test"]["precision"] < 0.9
    record = json.loads((project / "reports" / "run.json").read_text(encoding="utf-8"))
    assert record["outputs"]["models/model.joblib"] == next(
        out["md5"] for out in read_yaml(project / "dvc.lock")["stages"]["train"]["outs"]
    )

    verify = run(["make", "verify"], project)  # dvc repro --force, then compare
    assert "match dvc.lock bit for bit" in verify.stdout
    assert run(["git", "status", "--porcelain"], project).stdout == ""

    noop = run(["uv", "run", "--locked", "dvc", "repro"], project)
    assert "Running stage" not in noop.stdout
    shown = json.loads(run(["uv", "run", "dvc", "metrics", "show", "--json"], project).stdout)
    assert shown  # DVC reads the metrics file it declared
    plots = project / "dvc_plots"  # ignored by git
    run(["uv", "run", "dvc", "plots", "show", "--out", plots], project)
    assert (plots / "index.html").is_file()


@pytest.mark.e2e
@DEFAULT_RUN
def test_verify_names_an_output_that_does_not_reproduce(ran_project: Path) -> None:
    project = ran_project
    model = project / "models" / "model.joblib"
    # A model made by hand and committed as the run's: the pipeline cannot reproduce it.
    model.write_bytes(model.read_bytes() + b"made by hand")
    try:
        run(["uv", "run", "--locked", "dvc", "commit", "--force", "train"], project)
        result = run(["make", "verify"], project, check=False)
    finally:
        run(["git", "checkout", "--", "dvc.lock"], project)
        run(["uv", "run", "--locked", "dvc", "checkout", "--force"], project)
    assert result.returncode != 0
    assert "DIFFERS models/model.joblib (stage train)" in result.stdout
    assert "1 output(s) differ from dvc.lock: models/model.joblib" in result.stderr


@pytest.mark.e2e
@DEFAULT_RUN
def test_verify_refuses_to_run_over_a_hand_changed_model_and_leaves_it(
    ran_project: Path,
) -> None:
    project = ran_project
    model = project / "models" / "model.joblib"
    edited = model.read_bytes() + b"edited by hand"
    model.write_bytes(edited)
    try:
        result = run(["make", "verify"], project, check=False)
        assert model.read_bytes() == edited, "make verify overwrote the edited model"
    finally:
        restore = ["uv", "run", "--locked", "dvc", "checkout", "--force", "models/model.joblib"]
        run(restore, project)
    assert result.returncode != 0
    assert "models/model.joblib (stage train)" in result.stderr
    assert "dvc commit --force models/model.joblib" in result.stderr
    assert "dvc checkout models/model.joblib" in result.stderr
    assert "Running stage" not in result.stdout
    assert run(["git", "status", "--porcelain"], project).stdout == ""


@pytest.mark.e2e
@DEFAULT_RUN
def test_an_experiment_shows_its_params_and_metrics_diff(ran_project: Path) -> None:
    project = ran_project
    name = "hgb-diff"
    experiment = ["uv", "run", "--locked", "dvc", "exp", "run", "--temp", "--name", name]
    run([*experiment, "-S", "train.estimator=hist_gradient_boosting"], project)
    try:
        diff = json.loads(
            run(["uv", "run", "dvc", "exp", "diff", "HEAD", name, "--json"], project).stdout
        )
    finally:
        run(["uv", "run", "dvc", "exp", "remove", name], project)
    changed = diff["params"]["params.yaml"]["train.estimator"]
    assert changed == {"old": "logistic_regression", "new": "hist_gradient_boosting"}
    changed = diff["metrics"]["reports/metrics.json"].keys()
    # Validation recall is held at evaluate.min_recall by the threshold, so it may not move.
    assert "test.recall" in changed
    assert "validation.precision" in changed
    assert run(["git", "status", "--porcelain"], project).stdout == ""


@pytest.mark.e2e
@DEFAULT_RUN
def test_a_table_copied_over_the_examples_data_is_refused_not_replaced(
    ran_project: Path,
) -> None:
    """The example's output is where a user's table goes once the example is removed."""
    project = ran_project
    table = project / "data" / "raw" / "claims.csv"
    own = "claim_id,amount,fraud\n1,10.5,0\n2,99.0,1\n"
    table.write_text(own, encoding="utf-8")
    try:
        done = run(["make", "repro"], project, check=False)
        output = done.stdout + done.stderr
        assert done.returncode != 0
        assert "data/raw/claims.csv is not the file the generate stage wrote last" in output
        assert "Using your own data" in output
        assert "Traceback" not in output
        assert table.read_text(encoding="utf-8") == own
    finally:
        restore = ["uv", "run", "--locked", "dvc", "checkout", "--force", "data/raw/claims.csv"]
        run(restore, project)
    assert run(["git", "status", "--porcelain"], project).stdout == ""
    status = run(["uv", "run", "--locked", "dvc", "status", "--json"], project)
    assert json.loads(status.stdout) == {}


@pytest.mark.e2e
@pytest.mark.parametrize("problem_type", PROBLEM_TYPES)
def test_skeleton_pipeline_runs_on_the_users_data(
    render_project: Callable[..., Path], problem_type: str
) -> None:
    project = render_project(problem_type=problem_type, include_example=False)
    git_init_commit(project)
    run(["make", "setup"], project)
    write_user_data(project / "data" / "raw" / "dataset.csv", problem_type)
    run(["uv", "run", "--locked", "dvc", "add", "data/raw/dataset.csv"], project)
    run(["make", "repro"], project)
    by_split = metrics(project)
    assert POLICY_METRICS[problem_type] <= by_split["validation"].keys()
    assert POLICY_METRICS[problem_type] <= by_split["test"].keys()
    record = json.loads((project / "reports" / "run.json").read_text(encoding="utf-8"))
    assert list(record["data"]) == ["data/raw/dataset.csv"]


@pytest.mark.e2e
@DEFAULT_RUN
def test_fresh_clone_restores_data_and_models_from_the_local_remote(ran_project: Path) -> None:
    project = ran_project
    run(["uv", "run", "--locked", "dvc", "push"], project)
    storage = project.parent / "claims-fraud-detection-dvc-storage"
    assert (storage / "files" / "md5").is_dir()

    # A sibling clone: the default remote (../<slug>-dvc-storage) resolves to the same folder.
    clone = project.parent / "clone"
    run(["git", "clone", "--quiet", str(project), str(clone)], project.parent)
    run(["make", "setup"], clone)
    run(["uv", "run", "--locked", "dvc", "pull"], clone)
    for output in ("data/raw/claims.csv", "models/model.joblib", "models/preprocessor.joblib"):
        assert (clone / output).read_bytes() == (project / output).read_bytes(), output
    status = run(["uv", "run", "--locked", "dvc", "status", "--json"], clone)
    assert json.loads(status.stdout) == {}


# ---------------------------------------------------------------- S3 on loopback


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[str]:
    """An S3-compatible server (moto) on 127.0.0.1, stopped after the test."""
    pytest.importorskip("moto.server", reason="needs moto[server] in the test environment")
    port = free_port()
    log = (tmp_path / "moto.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("moto server did not start")
        request = urllib.request.Request(f"{endpoint}/claims-bucket", method="PUT")
        # The first S3 call loads moto's S3 backend: seconds on a busy machine.
        urllib.request.urlopen(request, timeout=120).close()
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


@pytest.mark.e2e
def test_push_and_pull_through_an_s3_server(
    render_project: Callable[..., Path], s3_server: str
) -> None:
    project = render_project(dvc_remote="s3", dvc_remote_url="s3://claims-bucket/dvc")
    git_init_commit(project)
    run(["make", "setup"], project)
    # Where users keep endpoints and credentials: .dvc/config.local and the environment.
    modify = ["uv", "run", "dvc", "remote", "modify", "--local", "storage"]
    run([*modify, "endpointurl", s3_server], project)
    env = tool_env({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    run(["uv", "run", "--locked", "dvc", "repro", "prepare"], project, env=env)
    run(["uv", "run", "--locked", "dvc", "push"], project, env=env)
    assert s3_server not in (project / ".dvc" / "config").read_text(encoding="utf-8")

    original = (project / "data" / "raw" / "claims.csv").read_bytes()
    shutil.rmtree(project / ".dvc" / "cache")
    shutil.rmtree(project / "data" / "interim")
    (project / "data" / "raw" / "claims.csv").unlink()
    run(["uv", "run", "--locked", "dvc", "pull", "--with-deps", "prepare"], project, env=env)
    assert (project / "data" / "raw" / "claims.csv").read_bytes() == original
    assert {p.name for p in (project / "data" / "interim").iterdir()} == {
        "train.parquet",
        "validation.parquet",
        "test.parquet",
    }

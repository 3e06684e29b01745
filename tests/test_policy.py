"""The metrics policy: the file each project carries, its schema, and the `make policy` gate."""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import CATALOGUE, METRICS, commit_all, git_init_commit, run, tool_env

ERRORS = {
    name
    for kind in CATALOGUE["problem_types"].values()
    for name, rule in kind["metrics"].items()
    if rule["direction"] == "minimize"
}

# What the example pipeline reports on its test split with the default answers.
EXAMPLE_METRICS = {
    "recall": 0.895833,
    "precision": 0.335938,
    "f1": 0.488636,
    "roc_auc": 0.961342,
    "average_precision": 0.63736,
    "balanced_accuracy": 0.903274,
    "decision_threshold": 0.580893,
}


def validation_errors(schema: dict[str, Any], policy: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(policy)]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def package_of(project: Path) -> str:
    return load_yaml(project / ".copier-answers.yml")["package_name"]


def gate(project: Path, *args: str | Path, cwd: Path | None = None) -> Any:
    """Run the project's gate, as `make policy` does, with this interpreter."""
    env = tool_env({"PYTHONPATH": str(project / "src")})
    command = [sys.executable, "-m", f"{package_of(project)}.policy", *map(str, args)]
    return run(command, cwd or project, check=False, env=env, timeout=60)


def write_metrics(path: Path, metrics: dict[str, float]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def example_metrics(tmp_path: Path) -> Path:
    return write_metrics(tmp_path / "metrics.json", EXAMPLE_METRICS)


@pytest.fixture(scope="session")
def schema(default_project: Path) -> dict[str, Any]:
    """The policy schema as every project carries it (rendered from the catalogue)."""
    return json.loads((default_project / "metrics_policy.schema.json").read_text())


@pytest.fixture
def default_policy(default_project: Path) -> dict[str, Any]:
    return load_yaml(default_project / "metrics_policy.yaml")


# ---------------------------------------------------------------- the file


def test_schema_offers_the_metrics_of_each_problem_type(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    assert {kind: defs[f"{kind}_metric"]["enum"] for kind in METRICS} == METRICS


@pytest.mark.parametrize(
    ("problem_type", "metric"),
    [(kind, metric) for kind, metrics in METRICS.items() for metric in metrics],
)
def test_policy_is_valid_for_every_problem_type_and_metric(
    render_project: Any, schema: dict[str, Any], problem_type: str, metric: str
) -> None:
    project = render_project(problem_type=problem_type, primary_metric=metric)
    policy = load_yaml(project / "metrics_policy.yaml")
    params = load_yaml(project / "params.yaml")
    answers = load_yaml(project / ".copier-answers.yml")

    assert validation_errors(schema, policy) == []
    assert json.loads((project / "metrics_policy.schema.json").read_text()) == schema
    assert policy["problem_type"] == problem_type
    assert policy["primary_metric"] == {
        "name": metric,
        "direction": "minimize" if metric in ERRORS else "maximize",
        "threshold": answers["primary_metric_threshold"],
    }
    assert policy["guardrails"]
    assert metric not in {guardrail["name"] for guardrail in policy["guardrails"]}
    protocol = policy["evaluation"]
    assert protocol["seed"] == params["seed"]
    assert protocol["test_size"] == params["prepare"]["test_size"]
    assert protocol["validation_size"] == params["prepare"]["validation_size"]
    assert (protocol["split"] == "stratified_holdout") == params["prepare"]["stratify"]
    binary = problem_type == "binary_classification"
    assert protocol.get("positive_label") == (1 if binary else None)


def test_policy_follows_the_answers(render_project: Any, schema: dict[str, Any]) -> None:
    project = render_project(
        project_name='Détection "Fraude": #1 d\'Œuvres',
        problem_type="regression",
        primary_metric="mae",
        primary_metric_threshold=0.00001,
        random_seed=7,
    )
    policy = load_yaml(project / "metrics_policy.yaml")
    assert validation_errors(schema, policy) == []
    assert policy["primary_metric"]["threshold"] == 0.00001
    assert policy["evaluation"]["seed"] == 7


def test_fraud_policy_guards_precision(default_policy: dict[str, Any]) -> None:
    assert default_policy["primary_metric"]["name"] == "recall"
    (guardrail,) = default_policy["guardrails"]
    assert guardrail["name"] == "precision"
    assert guardrail["direction"] == "maximize"
    assert 0 < guardrail["threshold"] < 1
    assert "investigators" in guardrail["reason"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("primary_metric.name", "rmse"),
        ("primary_metric.name", "recal"),
        ("guardrails.0.name", "r2"),
        ("primary_metric.direction", "minimize"),
        ("primary_metric.threshold", 1.5),
        ("primary_metric.threshold", "high"),
        ("guardrails.0.reason", ""),
        ("evaluation.split", "holdout"),
        ("evaluation.test_size", 1),
        ("regression.max_drop", -0.01),
        ("version", 2),
        ("owner", "someone"),
    ],
    ids=lambda item: str(item),
)
def test_schema_refuses_a_broken_policy(
    schema: dict[str, Any], default_policy: dict[str, Any], path: str, value: Any
) -> None:
    policy = copy.deepcopy(default_policy)
    *parents, key = path.split(".")
    target: Any = policy
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[key] = value
    assert validation_errors(schema, policy)


@pytest.mark.parametrize(
    "bound",
    [
        {"name": "rmse", "direction": "maximize", "threshold": 10.0},
        {"name": "mae", "direction": "minimize", "threshold": 0},
        {"name": "r2", "direction": "minimize", "threshold": 0.5},
        {"name": "r2", "direction": "maximize", "threshold": 1.2},
    ],
    ids=lambda bound: f"{bound['name']}-{bound['direction']}-{bound['threshold']}",
)
def test_schema_ties_direction_and_range_to_the_metric(
    schema: dict[str, Any], bound: dict[str, Any]
) -> None:
    policy = {
        "version": 1,
        "problem_type": "regression",
        "primary_metric": bound,
        "guardrails": [],
        "evaluation": {"split": "holdout", "test_size": 0.2, "seed": 1, "data": "test split"},
        "regression": {"baseline_ref": "main", "max_drop": 1.0},
    }
    assert validation_errors(schema, policy)
    fixed = {**bound, "direction": "minimize" if bound["name"] in ERRORS else "maximize"}
    fixed["threshold"] = 10.0 if bound["name"] in ERRORS else 0.5
    assert validation_errors(schema, {**policy, "primary_metric": fixed}) == []


# ---------------------------------------------------------------- the gate


def test_gate_passes_on_the_example(default_project: Path, example_metrics: Path) -> None:
    result = gate(default_project, "--metrics", example_metrics)
    assert result.returncode == 0, result.stderr
    assert "recall (primary)" in result.stdout
    assert "precision (guardrail)" in result.stdout
    assert "FAIL" not in result.stdout
    assert "no baseline at main: regression rule skipped" in result.stdout
    assert "metrics policy passed" in result.stdout


def test_gate_fails_when_the_threshold_is_out_of_reach(
    render_project: Any, example_metrics: Path
) -> None:
    project = render_project(primary_metric_threshold=0.99)
    result = gate(project, "--metrics", example_metrics, "--no-baseline")
    assert result.returncode == 1
    assert "recall (primary)" in result.stderr
    assert "precision" not in result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("recall"))
    assert row.split() == ["recall", "(primary)", "0.8958", ">=", "0.9900", "FAIL"]


def test_gate_fails_when_a_guardrail_is_broken(default_project: Path, tmp_path: Path) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", {**EXAMPLE_METRICS, "precision": 0.12})
    result = gate(default_project, "--metrics", metrics, "--no-baseline")
    assert result.returncode == 1
    assert "precision (guardrail) is 0.1200, needs >= 0.2000" in result.stderr
    assert "recall" not in result.stderr


def test_gate_fails_when_a_policy_metric_is_missing(default_project: Path, tmp_path: Path) -> None:
    metrics = write_metrics(tmp_path / "metrics.json", {"recall": 0.9})
    result = gate(default_project, "--metrics", metrics, "--no-baseline")
    assert result.returncode == 1
    assert "precision (guardrail) is missing" in result.stderr


@pytest.fixture
def repository(default_project: Path, tmp_path: Path) -> Path:
    """A copy of the default project, in git, with metrics committed on main."""
    project = shutil.copytree(default_project, tmp_path / "project")
    write_metrics(project / "reports" / "metrics.json", {**EXAMPLE_METRICS, "recall": 0.9})
    git_init_commit(project, "Baseline model")
    run(["git", "switch", "--quiet", "--create", "new-model"], project)
    return project


@pytest.mark.parametrize(
    ("recall", "passes"), [(0.89, True), (0.85, False)], ids=["small-drop", "regressed"]
)
def test_gate_applies_the_regression_rule_against_main(
    repository: Path, recall: float, passes: bool
) -> None:
    write_metrics(repository / "reports" / "metrics.json", {**EXAMPLE_METRICS, "recall": recall})
    result = gate(repository)
    assert "no baseline" not in result.stdout
    row = next(line for line in result.stdout.splitlines() if line.startswith("recall vs main"))
    assert row.split()[-3:] == [">=", "0.8800", "pass" if passes else "FAIL"]
    assert result.returncode == (0 if passes else 1)
    if not passes:
        assert "recall vs main is 0.8500, needs >= 0.8800" in result.stderr


def test_gate_compares_against_another_named_ref(repository: Path) -> None:
    run(["git", "tag", "v1"], repository)
    write_metrics(repository / "reports" / "metrics.json", {**EXAMPLE_METRICS, "recall": 0.85})
    run(["git", "commit", "--quiet", "--no-verify", "-am", "Worse model"], repository)

    assert gate(repository, "--baseline-ref", "HEAD").returncode == 0
    result = gate(repository, "--baseline-ref", "v1")
    assert result.returncode == 1
    assert "recall vs v1" in result.stderr
    assert gate(repository, "--no-baseline").returncode == 0


def test_gate_finds_main_in_a_clone_that_only_has_origin_main(
    repository: Path, tmp_path: Path
) -> None:
    """CI checks out the pull request's branch: main exists only as origin/main."""
    clone = tmp_path / "clone"
    run(["git", "clone", "--quiet", "--branch", "new-model", repository, clone], tmp_path)
    assert run(["git", "rev-parse", "--verify", "--quiet", "main"], clone, check=False).returncode
    write_metrics(clone / "reports" / "metrics.json", {**EXAMPLE_METRICS, "recall": 0.85})
    result = gate(clone)
    assert result.returncode == 1
    assert "recall vs main is 0.8500, needs >= 0.8800" in result.stderr


def test_gate_skips_the_regression_rule_without_a_baseline(
    default_project: Path, example_metrics: Path
) -> None:
    result = gate(default_project, "--metrics", example_metrics, "--baseline-ref", "release-9")
    assert result.returncode == 0, result.stderr
    assert "no baseline at release-9: regression rule skipped" in result.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "error: metrics policy not found: "),
        ("", "top level: None is not of type 'object'"),
        ("primary_metric: [recall\n", "is not valid YAML (line 2:"),
        ("- just\n- a list\n", "top level: ['just', 'a list'] is not of type 'object'"),
        ("version: 1\n", "'problem_type' is a required property"),
    ],
    ids=["missing", "empty", "bad-yaml", "not-a-mapping", "incomplete"],
)
def test_gate_refuses_a_malformed_policy_in_one_line(
    default_project: Path, example_metrics: Path, tmp_path: Path, text: str | None, message: str
) -> None:
    policy = tmp_path / "metrics_policy.yaml"
    if text is not None:
        policy.write_text(text, encoding="utf-8")
    result = gate(default_project, "--policy", policy, "--metrics", example_metrics)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_gate_names_the_field_of_a_policy_that_breaks_the_schema(
    default_project: Path, example_metrics: Path, tmp_path: Path
) -> None:
    text = (default_project / "metrics_policy.yaml").read_text()
    text = text.replace("name: recall", "name: r2")
    policy = tmp_path / "metrics_policy.yaml"
    policy.write_text(text, encoding="utf-8")
    result = gate(default_project, "--policy", policy, "--metrics", example_metrics)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "primary_metric.name: 'r2' is not one of ['recall', " in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "error: metrics file not found: "),
        ("{recall: 0.9}", "is not valid JSON"),
        ("[0.9]", "must hold a JSON object"),
    ],
    ids=["missing", "bad-json", "not-an-object"],
)
def test_gate_refuses_a_malformed_metrics_file_in_one_line(
    default_project: Path, tmp_path: Path, text: str | None, message: str
) -> None:
    metrics = tmp_path / "metrics.json"
    if text is not None:
        metrics.write_text(text, encoding="utf-8")
    result = gate(default_project, "--metrics", metrics)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert message in result.stderr


def test_gate_stays_off_the_heavy_imports(default_project: Path, example_metrics: Path) -> None:
    """The gate runs on every CI push: it must not import DVC, MLflow or scikit-learn."""
    probe = (
        "import sys, runpy; sys.argv = ['policy', '--metrics', sys.argv[1], '--no-baseline']\n"
        f"try: runpy.run_module('{package_of(default_project)}.policy', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "print(sorted({'dvc', 'mlflow', 'sklearn', 'pandas'} & set(sys.modules)))"
    )
    env = tool_env({"PYTHONPATH": str(default_project / "src")})
    result = run([sys.executable, "-c", probe, example_metrics], default_project, env=env)
    assert result.stdout.splitlines()[-1] == "[]"


# ---------------------------------------------------------------- in a generated project


@pytest.mark.e2e
def test_pre_commit_refuses_a_policy_that_breaks_the_schema(
    default_project: Path, tmp_path: Path
) -> None:
    project = shutil.copytree(default_project, tmp_path / "project")
    run(["git", "init", "--quiet"], project)
    hook = ["pre-commit", "run", "check-metrics-policy", "--files", "metrics_policy.yaml"]

    assert run(hook, project, check=False).returncode == 0
    policy = project / "metrics_policy.yaml"
    policy.write_text(policy.read_text().replace("direction: maximize", "direction: up", 1))
    result = run(hook, project, check=False)
    assert result.returncode == 1
    assert "metrics_policy.yaml" in result.stdout
    assert "'up' is not one of ['maximize', 'minimize']" in result.stdout


@pytest.mark.e2e
@pytest.mark.parametrize("problem_type", list(METRICS))
def test_example_pipeline_passes_the_gate_in_a_generated_project(
    render_project: Any, problem_type: str
) -> None:
    project = render_project(problem_type=problem_type, experiment_tracker="none")
    run(["git", "init", "--quiet", "--initial-branch=main"], project)
    run(["make", "setup"], project)
    commit_all(project, "Generate project")
    run(["make", "repro"], project)

    first = run(["make", "policy"], project)
    assert "metrics policy passed" in first.stdout
    assert "no baseline at main" in first.stdout
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(METRICS[problem_type]) <= set(metrics["validation"]) & set(metrics["test"])

    commit_all(project, "Baseline metrics")
    second = run(["make", "policy"], project)
    primary = load_yaml(project / "metrics_policy.yaml")["primary_metric"]["name"]
    assert f"{primary} vs main" in second.stdout
    run(["uv", "run", "--locked", "pytest", "tests/test_policy.py"], project)

"""The metrics policy: the file each project carries, and its schema.

The gate's rules are tested by each project's own tests/test_policy.py; the
end-to-end test at the bottom runs it in a generated project of each problem
type, after the gate has judged that project's real metrics.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support import CATALOGUE, METRICS, run

PACKAGE_POLICY = "claims_fraud_detection.commands.gate"
ERRORS = {
    name
    for kind in CATALOGUE["problem_types"].values()
    for name, rule in kind["metrics"].items()
    if rule["direction"] == "minimize"
}


def validation_errors(schema: dict[str, Any], policy: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema)
    return [error.message for error in validator.iter_errors(policy)]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


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
    # Experiments are ranked by the primary metric unless the decision threshold
    # pins it on validation (recall, for binary classification).
    selection = policy["selection"]
    expected = "average_precision" if binary and metric == "recall" else metric
    assert (selection["metric"], selection["within_noise"]) == (expected, "keep_baseline")
    assert selection["direction"] == ("minimize" if expected in ERRORS else "maximize")
    assert expected not in {rule["name"] for rule in selection["tie_break"]}
    # The dummy baseline is beaten on a maximised metric, by a margin.
    baseline = policy["baseline"]
    assert baseline["metric"] == (expected if expected not in ERRORS else "r2")
    assert (baseline["direction"], baseline["min_improvement"]) == ("maximize", 0.05)
    assert policy["regression"]["compare"] == "interval"


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
        ("regression.compare", "loosely"),
        ("selection.metric", "recall"),
        ("selection.direction", "minimize"),
        ("selection.within_noise", "always"),
        ("selection.tie_break.0.name", "rmse"),
        ("baseline.min_improvement", -0.1),
        ("baseline.metric", "mae"),
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


def test_a_policy_from_before_selection_and_baseline_stays_valid(
    schema: dict[str, Any], default_policy: dict[str, Any]
) -> None:
    """Projects updated from an older release keep their policy file until they merge ours."""
    policy = copy.deepcopy(default_policy)
    del policy["selection"], policy["baseline"], policy["regression"]["compare"]
    assert validation_errors(schema, policy) == []


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
@pytest.mark.parametrize("ran_project", list(METRICS), indirect=True)
def test_example_pipeline_passes_the_gate_in_a_generated_project(ran_project: Path) -> None:
    project = ran_project
    problem_type = load_yaml(project / ".copier-answers.yml")["problem_type"]
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert set(METRICS[problem_type]) <= set(metrics["validation"]) & set(metrics["test"])

    # The commit before the run has no metrics: the regression rule has nothing to compare.
    first = run(
        ["uv", "run", "--locked", "python", "-m", PACKAGE_POLICY, "--baseline-ref", "HEAD~1"],
        project,
    )
    assert "metrics policy passed" in first.stdout
    assert "no baseline at HEAD~1" in first.stdout

    second = run(["make", "policy"], project)  # against main, where the run is committed
    assert "metrics policy passed" in second.stdout
    primary = load_yaml(project / "metrics_policy.yaml")["primary_metric"]["name"]
    assert f"{primary} vs main" in second.stdout
    run(["uv", "run", "--locked", "pytest", "tests/test_policy.py"], project)

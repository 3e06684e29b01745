"""The team stack's files and the CI experiment grids, as rendered (test_team_stack.py runs them).

- ``compose.yaml`` validates against the Compose specification's JSON schema,
  names only pinned images, reads every secret from ``.env`` and runs the
  SeaweedFS release the tests start natively;
- ``stack/`` pins every package, at an MLflow the project's clients accept;
- the grid jobs (GitHub, GitLab) validate, run ``make share-experiment``, and
  their parameter sets name parameters that exist, for every problem type;
- each host's code-owners file is well-formed, gives an owner to the metrics
  policy, the gate, ``params.yaml``, ``dvc.yaml``, the CI files and itself,
  and the contributing guide says how that host makes their review required.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pathspec  # copier's own gitignore-style matcher
import pytest
import yaml
from support import generated_files, render, run
from test_render import CI_FILES, OWNERS_FILES

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
HADOLINT = Path(sys.executable).with_name("hadolint")
WEED = Path(sys.executable).with_name("weed")
GRID_WORKFLOW = ".github/workflows/experiment-grid.yml"
PROBLEMS = {
    "binary_classification": "recall",
    "multiclass_classification": "f1_macro",
    "regression": "r2",
}


def validate(path: Path, schema: str) -> None:
    result = run([CHECK_JSONSCHEMA, "--builtin-schema", schema, path], path.parent, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def compose(project: Path) -> dict:
    return yaml.safe_load((project / "compose.yaml").read_text())


def test_compose_validates_against_the_compose_specification(default_project: Path) -> None:
    validate(default_project / "compose.yaml", "vendor.compose-spec")
    assert set(compose(default_project)["services"]) == {"postgres", "object-store", "mlflow"}


def test_the_schema_check_rejects_a_broken_compose_file(
    default_project: Path, tmp_path: Path
) -> None:
    config = compose(default_project)
    config["services"]["postgres"]["helthcheck"] = {"test": ["CMD", "true"]}  # a typo
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(config))
    with pytest.raises(AssertionError):
        validate(broken, "vendor.compose-spec")


def test_every_service_is_pinned_checked_and_keeps_its_data(default_project: Path) -> None:
    services = compose(default_project)["services"]
    for name, service in services.items():
        assert "healthcheck" in service, name
        if "image" in service:
            assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+(-[\w.]+)?", service["image"]), name
        else:
            dockerfile = default_project / service["build"]["context"]
            text = (dockerfile / service["build"]["dockerfile"]).read_text()
            bases = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", text, flags=re.M)
            assert bases
            assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", bases[0])
    assert compose(default_project)["volumes"].keys() == {"postgres-data", "object-store-data"}
    assert services["mlflow"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "object-store": {"condition": "service_healthy"},
    }


def test_the_object_store_is_the_seaweedfs_release_the_tests_run(default_project: Path) -> None:
    image = compose(default_project)["services"]["object-store"]["image"]
    version = subprocess.run([WEED, "version"], capture_output=True, text=True, check=True)
    assert image == f"chrislusf/seaweedfs:{version.stdout.split()[2]}"


def test_secrets_come_from_env_and_env_example_lists_them(default_project: Path) -> None:
    text = (default_project / "compose.yaml").read_text()
    variables = set(re.findall(r"\$\{(STACK_\w+)", text))
    assert {"STACK_POSTGRES_PASSWORD", "STACK_S3_ACCESS_KEY", "STACK_S3_SECRET_KEY"} <= variables
    secrets = {"STACK_POSTGRES_PASSWORD", "STACK_S3_ACCESS_KEY", "STACK_S3_SECRET_KEY"}
    secrets |= {"STACK_MLFLOW_ADMIN_USERNAME", "STACK_MLFLOW_ADMIN_PASSWORD"}
    for secret in sorted(secrets | {"STACK_MLFLOW_SECRET_KEY"}):
        assert f"${{{secret}:?set {secret} in .env" in text, secret
    example = (default_project / ".env.example").read_text()
    for variable in variables:
        assert f"# {variable}=" in example, variable


def test_the_server_image_pins_every_package_at_an_mlflow_clients_accept(
    default_project: Path,
) -> None:
    lines = (default_project / "stack" / "requirements.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    pins = {name.split("[")[0]: version for name, version in pins.items()}  # mlflow[auth]
    assert set(pins) == {"mlflow", "Flask-WTF", "psycopg2-binary", "boto3"}
    pyproject = (default_project / "pyproject.toml").read_text()
    (minimum,) = re.findall(r'"mlflow>=([\d.]+)"', pyproject)
    as_tuple = lambda version: tuple(int(part) for part in version.split("."))  # noqa: E731
    assert as_tuple(pins["mlflow"]) >= as_tuple(minimum)
    dockerfile = default_project / "stack" / "mlflow.Dockerfile"
    result = run([HADOLINT, "--failure-threshold", "warning", dockerfile], default_project)
    assert result.returncode == 0


def test_stack_targets_refuse_to_start_without_env(render_project) -> None:
    project = render_project()
    missing = run(["make", "stack-up"], project, check=False)
    assert missing.returncode != 0
    assert "No .env: copy .env.example to .env" in missing.stderr
    (project / ".env").write_text("STACK_POSTGRES_PASSWORD=x\n")
    dry = run(["make", "--dry-run", "stack-up", "stack-down"], project).stdout
    assert "docker compose up --detach --wait" in dry
    assert "docker compose down" in dry
    podman = run(["make", "--dry-run", "stack-up", "COMPOSE=podman compose"], project).stdout
    assert "podman compose up --detach --wait" in podman


def test_only_mlflow_projects_get_the_stack(render_project) -> None:
    for tracker in ("dvclive", "none"):
        project = render_project(experiment_tracker=tracker)
        assert not (project / "compose.yaml").exists()
        assert not (project / "stack").exists()
        makefile = (project / "Makefile").read_text()
        assert "stack-up" not in makefile
        assert "make stack-up" not in (project / "docs" / "guides" / "team.md").read_text()


# ---------------------------------------------------------------- experiment grids


@pytest.fixture(scope="module", params=list(PROBLEMS))
def grid_projects(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    answers = {"problem_type": request.param, "primary_metric": PROBLEMS[request.param]}
    folder = tmp_path_factory.mktemp(request.param)
    github = render(folder / "github", **answers)
    gitlab = render(folder / "gitlab", ci_provider="gitlab", **answers)
    return github, gitlab


def grid_of(github: Path, gitlab: Path) -> tuple[list[str], list[str]]:
    workflow = yaml.safe_load((github / GRID_WORKFLOW).read_text())
    dispatch = workflow[True]["workflow_dispatch"]  # YAML 1.1 reads the key `on` as True
    github_grid = yaml.safe_load(dispatch["inputs"]["grid"]["default"])
    config = yaml.safe_load((gitlab / ".gitlab-ci.yml").read_text())
    (matrix,) = config["experiment-grid"]["parallel"]["matrix"]
    return github_grid, matrix["SET"]


def test_grid_workflows_validate_and_run_make_share_experiment(grid_projects) -> None:
    github, gitlab = grid_projects
    validate(github / GRID_WORKFLOW, "vendor.github-workflows")
    validate(gitlab / ".gitlab-ci.yml", "vendor.gitlab-ci")
    workflow = yaml.safe_load((github / GRID_WORKFLOW).read_text())
    steps = workflow["jobs"]["experiment"]["steps"]
    assert steps[-1]["run"].startswith('make share-experiment SET="$SET" GIT_REMOTE=')
    assert workflow["jobs"]["experiment"]["env"]["SET"] == "${{ matrix.set }}"
    assert workflow["jobs"]["experiment"]["strategy"]["fail-fast"] is False
    config = yaml.safe_load((gitlab / ".gitlab-ci.yml").read_text())
    assert config["experiment-grid"]["script"][-1] == 'make share-experiment SET="$SET"'
    assert config["experiment-grid"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "web" && $EXPERIMENT_GRID == "true"'}
    ]
    assert {"if": '$EXPERIMENT_GRID == "true"', "when": "never"} in config["ci"]["rules"]


def test_every_grid_parameter_exists_and_make_passes_it_to_dvc(grid_projects) -> None:
    github, gitlab = grid_projects
    github_grid, gitlab_grid = grid_of(github, gitlab)
    assert github_grid == gitlab_grid
    assert len(github_grid) >= 2
    params = yaml.safe_load((github / "params.yaml").read_text())
    for parameter_set in github_grid:
        for setting in parameter_set.split():
            key, value = setting.split("=", 1)
            section = params
            *parents, leaf = key.split(".")
            for part in parents:
                section = section[part]
            assert leaf in section, f"{key} is not in params.yaml"
            assert type(yaml.safe_load(value)) is type(section[leaf]), setting
        dry = run(["make", "--dry-run", "share-experiment", f"SET={parameter_set}"], github)
        expected = " ".join(f"--set-param {setting}" for setting in parameter_set.split())
        assert f"dvc exp run {expected}" in dry.stdout
        push = re.search(r"dvc exp push \$\((.*)\) --rev HEAD origin$", dry.stdout, re.M)
        assert push, dry.stdout
        assert push.group(1).endswith("dvc remote default >/dev/null 2>&1 || echo --no-cache")


# ---------------------------------------------------------------- code owners

# The files that decide what a better model means and how it is checked; the host's
# CI files come from test_render.py's list, without the dependency bots' settings.
OWNED = {"metrics_policy.yaml", "metrics_policy.schema.json", "params.yaml", "dvc.yaml"}
OWNED |= {"src/claims_fraud_detection/shared/policy.py"}
OWNED |= {"src/claims_fraud_detection/commands/gate.py"}
BOTS = ("dependabot.yml", "renovate.json")
# Every run rewrites dvc.lock and the metrics (owning them would send every experiment
# to review); README.md stands for the files no rule should catch.
NOT_OWNED = {"dvc.lock", "reports/metrics.json", "README.md"}
PLACEHOLDER_OWNER = "@your-org/ml-leads"
# Each host's render, with the owners' three sources: the code_owners answer, the
# author's email, the placeholder (the default project, for GitHub).
OWNER_ANSWERS = {
    "gitlab": {"code_owners": " @acme/ml  @acme/ml/leads lea@example.org "},
    "bitbucket": {"author_email": "ml-team@example.org"},
    "none": {"author_email": "ml-team@example.org", "code_owners": "@lea"},
}
EXPECTED_OWNERS = {
    "github": [PLACEHOLDER_OWNER],
    "gitlab": ["@acme/ml", "@acme/ml/leads", "lea@example.org"],
    "bitbucket": ["ml-team@example.org"],
    "none": ["@lea"],
}
OWNER = re.compile(r"@[A-Za-z0-9][\w.-]*(/[\w.-]+)*|[^@\s]+@[^@\s]+\.[^@\s.]+")
SECTION = re.compile(r"\^?\[[^\]\n]+\](\[[1-9]\d*\])?(\s+\S.*)?")


def code_owner_rules(text: str, host: str) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """The (pattern, owners) rules of a code-owners file, and what is wrong with its lines."""
    rules, problems, in_section = [], [], False
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("[", "^[")):
            if host != "gitlab":
                problems.append(f"line {number}: only GitLab has sections: {line}")
            elif not SECTION.fullmatch(line):
                problems.append(f"line {number}: malformed section: {line}")
            in_section = True
            continue
        pattern, *owners = line.split()
        if host == "gitlab" and not in_section:
            problems.append(f"line {number}: a rule before the first section")
        if pattern.startswith("!") or set("[]") & set(pattern):
            problems.append(f"line {number}: negation and character ranges are GitLab-only")
        if not owners:
            problems.append(f"line {number}: {pattern} has no owner")
        problems += [f"line {number}: not an owner: {o}" for o in owners if not OWNER.fullmatch(o)]
        rules.append((pattern, owners))
    return rules, problems


def owners_of(rules: list[tuple[str, list[str]]], path: str) -> list[str] | None:
    """The owners of a file: those of the last rule whose pattern matches it (gitignore style)."""
    owners = None
    for pattern, rule_owners in rules:
        if pathspec.GitIgnoreSpec.from_lines([pattern]).match_file(path):
            owners = rule_owners
    return owners


def code_owner_problems(project: Path, host: str, text: str) -> list[str]:
    rules, problems = code_owner_rules(text, host)
    files = generated_files(project)
    for pattern, _ in rules:
        if not any(owners_of([(pattern, [])], path) is not None for path in files):
            problems.append(f"{pattern} matches no file of the project")
    ci_files = {path for path in CI_FILES[host] if not path.endswith(BOTS)}
    for path in sorted(OWNED | ci_files | {OWNERS_FILES[host]}):
        assert path in files, path  # a file the rules must cover, missing from the render
        if not owners_of(rules, path):
            problems.append(f"{path} has no owner")
    problems += [f"{path} is owned" for path in sorted(NOT_OWNED) if owners_of(rules, path)]
    return problems


@pytest.fixture(scope="module", params=list(OWNERS_FILES))
def owned_project(
    request: pytest.FixtureRequest, default_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    host = request.param
    if host == "github":
        return host, default_project
    folder = tmp_path_factory.mktemp(f"owners-{host}")
    return host, render(folder / "project", ci_provider=host, **OWNER_ANSWERS[host])


def test_the_code_owners_file_covers_the_policy_pipeline_and_ci(owned_project) -> None:
    host, project = owned_project
    assert generated_files(project) & set(OWNERS_FILES.values()) == {OWNERS_FILES[host]}
    text = (project / OWNERS_FILES[host]).read_text()
    assert code_owner_problems(project, host, text) == []
    rules, _ = code_owner_rules(text, host)
    assert {" ".join(owners) for _, owners in rules} == {" ".join(EXPECTED_OWNERS[host])}
    if host == "gitlab":  # one approval rule per concern
        sections = re.findall(r"^\[([^\]]+)\]", text, flags=re.M)
        assert sections == ["Metrics policy", "Pipeline", "CI and code owners"]


def test_the_code_owners_check_rejects_a_broken_file(owned_project) -> None:
    host, project = owned_project
    text = (project / OWNERS_FILES[host]).read_text()
    broken = text.replace("/dvc.yaml ", "/dvc.yml ").replace(EXPECTED_OWNERS[host][0], "ml-leads")
    broken += "/dvc.lock @lea\n[Late section\n"
    problems = code_owner_problems(project, host, broken)
    assert "dvc.yaml has no owner" in problems
    assert "/dvc.yml matches no file of the project" in problems
    assert "dvc.lock is owned" in problems
    assert any("not an owner: ml-leads" in problem for problem in problems)
    assert any("Late section" in problem for problem in problems)


def test_the_contributing_guide_says_how_to_require_the_owners_review(owned_project) -> None:
    host, project = owned_project
    guide = (project / "docs" / "contributing.md").read_text()
    section = " ".join(guide.split("## Code owners\n", 1)[1].split("\n## ", 1)[0].split())
    assert f"`{OWNERS_FILES[host]}`" in section
    settings = {
        "github": "Require review from Code Owners",
        "gitlab": "Code owner approval",
        "bitbucket": "approval from default reviewers",
    }
    for other, setting in settings.items():
        assert (setting in section) is (other == host or host == "none"), (other, setting)
    assert (PLACEHOLDER_OWNER in section) is (host == "github")
    readme = (project / "README.md").read_text()
    assert f"| `{OWNERS_FILES[host]}` |" in readme

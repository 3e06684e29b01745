"""The CI configuration of generated projects: GitHub Actions, GitLab CI, Bitbucket Pipelines.

Each file is validated against its provider's schema (check-jsonschema's
built-in copies, no network), must run the same steps (pre-commit, tests, the
pipeline, the metrics policy gate, `make verify`) and may only call `make`
targets that exist, and do something, in the generated Makefile. The GitHub
workflows pass zizmor's audit, pin each action by commit at its current major
version, and keep no token in .git/config; Dependabot (GitHub) or Renovate
(GitLab, Bitbucket) keeps those pins, the images and uv.lock current.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonc
import pytest
import yaml
from support import render, run

CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
ZIZMOR = Path(sys.executable).with_name("zizmor")
UPDATE_WORKFLOW = ".github/workflows/template-update.yml"
GRID_WORKFLOW = ".github/workflows/experiment-grid.yml"
MONITOR_WORKFLOW = ".github/workflows/monitor.yml"
DEPENDABOT = ".github/dependabot.yml"
RENOVATE = "renovate.json"
# Every action the workflows use, and the major version it is pinned at (by
# commit, with the full version in a comment): bump both here and in the files.
ACTION_MAJORS = {
    "actions/checkout": 7,
    "actions/cache": 5,
    "actions/upload-artifact": 7,
    "astral-sh/setup-uv": 10,
    "peter-evans/create-pull-request": 8,
}
# Renovate's manager for each provider's CI file.
RENOVATE_CI_MANAGERS = {"gitlab": "gitlabci", "bitbucket": "bitbucket-pipelines"}
CI_FILES = {
    "github": ".github/workflows/ci.yml",
    "gitlab": ".gitlab-ci.yml",
    "bitbucket": "bitbucket-pipelines.yml",
}
SCHEMAS = {
    "github": "vendor.github-workflows",
    "gitlab": "vendor.gitlab-ci",
    "bitbucket": "vendor.bitbucket-pipelines",
}
CLOUD_REMOTES = {
    "s3": "s3://claims-bucket/dvc",
    "gcs": "gs://claims-bucket/dvc",
    "azure": "azure://claims-container/dvc",
    "ssh": "ssh://ml@storage.example.org/srv/dvc",
}
PLACEHOLDER = "not part of this template version yet"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Render a project per distinct set of answers, shared by this module's tests (read-only)."""
    projects: dict[tuple[tuple[str, Any], ...], Path] = {}

    def _render(**answers: Any) -> Path:
        key = tuple(sorted(answers.items()))
        if key not in projects:
            projects[key] = render(tmp_path_factory.mktemp("ci") / "project", **answers)
        return projects[key]

    return _render


def remote_answers(remote: str) -> dict[str, str]:
    answers = {"dvc_remote": remote}
    if remote in CLOUD_REMOTES:
        answers["dvc_remote_url"] = CLOUD_REMOTES[remote]
    return answers


def validate(provider: str, path: Path, schema: str | None = None) -> None:
    schema = schema or SCHEMAS[provider]
    result = run([CHECK_JSONSCHEMA, "--builtin-schema", schema, path], path.parent, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def workflows(project: Path) -> dict[str, dict[str, Any]]:
    """Each GitHub workflow of a project, parsed, by its path in the project."""
    found = sorted((project / ".github" / "workflows").glob("*.y*ml"))
    assert found, "no workflow"
    return {str(path.relative_to(project)): yaml.safe_load(path.read_text()) for path in found}


def steps(workflow: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for job in workflow["jobs"].values():
        yield from job["steps"]


def zizmor(path: Path) -> tuple[int, list[dict[str, Any]], str]:
    """zizmor's exit code, findings and log for ``path``, offline, regular persona."""
    result = run([ZIZMOR, "--offline", "--format=json", path.name], path.parent, check=False)
    return result.returncode, json.loads(result.stdout or "[]"), result.stderr


def jobs(provider: str, config: dict[str, Any]) -> dict[str, list[str]]:
    """Each job's shell commands, in order, by job name (Bitbucket: by pipeline)."""
    if provider == "github":
        return {
            name: [step["run"] for step in job["steps"] if "run" in step]
            for name, job in config["jobs"].items()
        }
    if provider == "gitlab":
        return {
            name: job["script"]
            for name, job in config.items()
            if isinstance(job, dict) and "script" in job
        }
    pipelines = {"default": config["pipelines"]["default"]}
    pipelines.update(config["pipelines"].get("custom", {}))
    return {
        name: [line for item in items if "step" in item for line in item["step"]["script"]]
        for name, items in pipelines.items()
    }


def commands(provider: str, config: dict[str, Any]) -> list[str]:
    """Every shell command of the checks that run on each push, in order."""
    by_job = jobs(provider, config)
    return (
        by_job["default"] if provider == "bitbucket" else [c for cs in by_job.values() for c in cs]
    )


def make_targets(lines: list[str]) -> Iterator[str]:
    for line in lines:
        yield from re.findall(r"(?:^|&&|;)\s*make\s+([\w-]+)", line, flags=re.M)


def makefile_recipes(makefile: str) -> dict[str, str]:
    """Each target of a Makefile and its recipe."""
    recipes: dict[str, str] = {}
    for match in re.finditer(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n?)*)", makefile, flags=re.M):
        recipes[match.group(1)] = match.group(2)
    return recipes


# ---------------------------------------------------------------- which files


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket", "none"])
@pytest.mark.parametrize(
    ("use_docker", "use_devcontainer"), [(True, True), (True, False), (False, False)]
)
def test_render_matrix_writes_exactly_the_chosen_ci_and_container_files(
    rendered: Callable[..., Path], provider: str, use_docker: bool, use_devcontainer: bool
) -> None:
    project = rendered(
        ci_provider=provider, use_docker=use_docker, use_devcontainer=use_devcontainer
    )
    for name, path in CI_FILES.items():
        assert (project / path).is_file() is (name == provider), path
    if provider != "github":
        assert not (project / ".github").exists()
    assert (project / "Dockerfile").is_file() is use_docker
    assert (project / ".dockerignore").is_file() is use_docker
    assert (project / ".devcontainer" / "devcontainer.json").is_file() is use_devcontainer
    if provider in CI_FILES:
        validate(provider, project / CI_FILES[provider])


# ---------------------------------------------------------------- schemas


@pytest.mark.parametrize("provider", list(CI_FILES))
@pytest.mark.parametrize("remote", ["local", "none", "s3", "gcs", "azure", "ssh"])
def test_ci_file_validates_against_its_provider_schema(
    rendered: Callable[..., Path], provider: str, remote: str
) -> None:
    project = rendered(ci_provider=provider, **remote_answers(remote))
    validate(provider, project / CI_FILES[provider])
    if provider == "github":
        # A job without a timeout can burn runner minutes for hours.
        validate(provider, project / CI_FILES[provider], "custom.github-workflows-require-timeout")
        for workflow in sorted((project / ".github" / "workflows").glob("*.y*ml")):
            validate(provider, workflow)


@pytest.mark.parametrize("provider", list(CI_FILES))
def test_schema_validation_rejects_a_broken_ci_file(
    rendered: Callable[..., Path], provider: str, tmp_path: Path
) -> None:
    source = rendered(ci_provider=provider, **remote_answers("local")) / CI_FILES[provider]
    config = yaml.safe_load(source.read_text())
    if provider == "github":
        del config["jobs"]["ci"]["runs-on"]
    elif provider == "gitlab":
        config["ci"]["script"] = {"not": "a list"}
    else:
        config["pipelines"]["default"][0]["step"]["max-time"] = "forever"
    path = tmp_path / source.name
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(AssertionError):
        validate(provider, path)


# ---------------------------------------------------------------- what CI runs


@pytest.mark.parametrize("provider", list(CI_FILES))
@pytest.mark.parametrize("remote", ["local", "none", "s3"])
def test_ci_installs_from_the_lock_and_runs_checks_pipeline_gate_and_verify(
    rendered: Callable[..., Path], provider: str, remote: str
) -> None:
    project = rendered(ci_provider=provider, **remote_answers(remote))
    config = yaml.safe_load((project / CI_FILES[provider]).read_text())
    lines = jobs(provider, config)["ci"] if provider == "gitlab" else commands(provider, config)
    assert "uv sync --locked" in lines
    assert lines.index("uv sync --locked") < lines.index("make test")
    assert any(line.startswith("uv run --locked pre-commit run --all-files") for line in lines)
    targets = list(make_targets(lines))
    assert targets == ["test", "repro", "doctor", "report", "docs", "policy", "verify"]
    pulls = [line for line in lines if "dvc pull" in line]
    if remote in CLOUD_REMOTES:
        assert pulls == ["uv run --locked dvc pull --allow-missing"]
        assert lines.index(pulls[0]) < next(i for i, x in enumerate(lines) if x == "make repro")
    else:
        assert pulls == [], "a local folder remote does not exist on a CI runner"


@pytest.mark.parametrize("provider", list(CI_FILES))
def test_every_make_target_ci_and_devcontainer_call_exists_in_the_makefile(
    rendered: Callable[..., Path], provider: str
) -> None:
    project = rendered(ci_provider=provider, **remote_answers("local"))
    files = [
        CI_FILES[provider],
        *([UPDATE_WORKFLOW, GRID_WORKFLOW, MONITOR_WORKFLOW] if provider == "github" else []),
    ]
    lines = [
        line
        for name in files
        for job in jobs(provider, yaml.safe_load((project / name).read_text())).values()
        for line in job
    ]
    devcontainer = jsonc.loads((project / ".devcontainer" / "devcontainer.json").read_text())
    assert isinstance(devcontainer, dict)
    lines.append(devcontainer["postCreateCommand"])
    called = set(make_targets(lines))
    assert called >= {"setup", "test", "repro", "policy", "verify", "update-template"}
    if provider in {"github", "gitlab"}:
        assert "share-experiment" in called
    if provider != "none":
        assert "monitor" in called  # the scheduled check of a batch
    recipes = makefile_recipes((project / "Makefile").read_text())
    for target in sorted(called):
        assert target in recipes, f"make {target} is not in the Makefile"
        assert recipes[target].strip(), f"make {target} has no recipe"
        assert PLACEHOLDER not in recipes[target], f"make {target} is still a placeholder"
        dry_run = run(["make", "--dry-run", target], project, check=False)
        assert dry_run.returncode == 0, dry_run.stderr


# ---------------------------------------------------------------- pinning


def test_actions_and_images_are_pinned_and_agree_on_uv_and_python(
    rendered: Callable[..., Path],
) -> None:
    uv_versions: set[str] = set()
    for provider, path in CI_FILES.items():
        project = rendered(ci_provider=provider, python_version="3.11")
        text = (project / path).read_text()
        config = yaml.safe_load(text)
        if provider == "github":
            steps = config["jobs"]["ci"]["steps"]
            setup_uv = next(s for s in steps if s.get("uses", "").startswith("astral-sh/setup-uv"))
            assert setup_uv["with"]["enable-cache"] is True
            assert setup_uv["with"]["cache-dependency-glob"] == "uv.lock"
            uv_versions.add(setup_uv["with"]["version"])
            assert any("~/.cache/pre-commit" in str(s.get("with", {}).get("path")) for s in steps)
        else:
            images = re.findall(r"image: (\S+)", text)
            assert images
            for image in images:
                match = re.fullmatch(
                    r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)-python3\.11-bookworm", image
                )
                assert match, image
                uv_versions.add(match.group(1))
            assert "uv.lock" in text
            assert ".pre-commit-config.yaml" in text
        dockerfile = (project / "Dockerfile").read_text()
        uv_image = re.search(r"^ARG UV_IMAGE=ghcr\.io/astral-sh/uv:(\S+)$", dockerfile, re.M)
        assert uv_image
        uv_versions.add(uv_image.group(1))
    assert len(uv_versions) == 1, f"uv versions disagree: {uv_versions}"


def test_github_actions_are_pinned_by_commit_at_their_current_major(
    rendered: Callable[..., Path],
) -> None:
    project = rendered(ci_provider="github")
    pins: dict[str, set[str]] = {}
    for path in workflows(project):
        lines = [line for line in (project / path).read_text().splitlines() if "uses:" in line]
        assert lines, f"{path} uses no action"
        for line in lines:
            pin = re.fullmatch(
                r"\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # v(\d+)\.\d+\.\d+", line
            )
            assert pin, f"{path}: {line.strip()} is not pinned to a commit with its version"
            action, major = pin.group(1), int(pin.group(3))
            assert action in ACTION_MAJORS, f"{path}: {action} is not in ACTION_MAJORS"
            assert major == ACTION_MAJORS[action], f"{path}: {action} is at v{major}"
            pins.setdefault(action, set()).add(line.split("@", 1)[1])
    assert all(len(versions) == 1 for versions in pins.values()), f"the files disagree: {pins}"
    assert set(pins) == set(ACTION_MAJORS), "ACTION_MAJORS lists an action no workflow uses"


@pytest.mark.parametrize("remote", ["local", "s3"])
def test_no_checkout_leaves_its_token_in_git_config(
    rendered: Callable[..., Path], remote: str
) -> None:
    """zizmor's artipacked: later steps (and copier update --trust) must not find a token."""
    project = rendered(ci_provider="github", **remote_answers(remote))
    for path, workflow in workflows(project).items():
        checkouts = [s for s in steps(workflow) if "actions/checkout@" in s.get("uses", "")]
        assert checkouts, f"{path} checks nothing out"
        for step in checkouts:
            assert step["with"]["persist-credentials"] is False, path
    # What still pushes gets its own token: create-pull-request from its input,
    # the grid's push step from its environment (and only that step).
    update = workflows(project)[UPDATE_WORKFLOW]
    (propose,) = [s for s in steps(update) if "create-pull-request" in s.get("uses", "")]
    assert "github.token" in propose["with"]["token"]
    grid = workflows(project)[GRID_WORKFLOW]
    with_token = [s for s in steps(grid) if "github.token" in str(s)]
    assert [s["name"] for s in with_token] == ["Run and push the experiment"]
    (push,) = with_token
    assert push["env"] == {"PUSH_TOKEN": "${{ github.token }}"}
    assert 'GIT_REMOTE="https://x-access-token:${PUSH_TOKEN}@' in push["run"]
    assert "github.token" not in str(grid["jobs"]["experiment"].get("env"))


@pytest.mark.parametrize("answers", [{}, {"use_docker": False}], ids=["default", "no-docker"])
def test_zizmor_finds_nothing_in_the_github_folder(
    rendered: Callable[..., Path], answers: dict[str, Any]
) -> None:
    github = rendered(ci_provider="github", **answers) / ".github"
    assert not (github / "zizmor.yml").exists(), "no finding is configured away"
    code, findings, log = zizmor(github)
    assert findings == [], json.dumps(findings, indent=2)
    assert code == 0, log
    assert "completed .github/dependabot.yml" in log  # the Dependabot config is audited too


def test_zizmor_reports_a_checkout_that_keeps_its_token(
    rendered: Callable[..., Path], tmp_path: Path
) -> None:
    github = tmp_path / ".github"
    shutil.copytree(rendered(ci_provider="github") / ".github", github)
    ci = github / "workflows" / "ci.yml"
    text = ci.read_text()
    ci.write_text(re.sub(r"\n\s*persist-credentials: false[^\n]*", "", text, count=1))
    code, findings, _ = zizmor(github)
    assert code != 0
    assert [finding["ident"] for finding in findings] == ["artipacked"]


# ---------------------------------------------------------------- dependency updates


@pytest.mark.parametrize("provider", ["github", "gitlab", "bitbucket", "none"])
@pytest.mark.parametrize(
    ("use_docker", "use_devcontainer"), [(True, True), (True, False), (False, False)]
)
def test_dependency_updates_are_configured_for_the_provider(
    rendered: Callable[..., Path], provider: str, use_docker: bool, use_devcontainer: bool
) -> None:
    project = rendered(
        ci_provider=provider, use_docker=use_docker, use_devcontainer=use_devcontainer
    )
    assert (project / DEPENDABOT).is_file() is (provider == "github")
    assert (project / RENOVATE).is_file() is (provider in RENOVATE_CI_MANAGERS)
    if provider == "github":
        validate(provider, project / DEPENDABOT, "vendor.dependabot")
        updates = yaml.safe_load((project / DEPENDABOT).read_text())["updates"]
        ecosystems = [update["package-ecosystem"] for update in updates]
        expected = ["github-actions", "uv"]
        expected += ["docker"] * use_docker + ["devcontainers"] * use_devcontainer
        assert ecosystems == expected
        for update in updates:
            name = update["package-ecosystem"]
            assert update["directory"] == "/", name
            assert update["schedule"]["interval"] == "weekly", name
            assert update["cooldown"]["default-days"] >= 7, name
            assert update["groups"], f"{name}: one pull request per update is too many"
    elif provider in RENOVATE_CI_MANAGERS:
        validate(provider, project / RENOVATE, "vendor.renovate")
        config = json.loads((project / RENOVATE).read_text())
        managers = {RENOVATE_CI_MANAGERS[provider], "pep621", "pre-commit"}
        managers |= {"dockerfile"} if use_docker else set()
        assert set(config["enabledManagers"]) == managers
        assert config["pre-commit"]["enabled"] is True  # off by default in Renovate
        assert "schedule:weekly" in config["extends"]
        assert config["lockFileMaintenance"]["enabled"] is True  # uv.lock as a whole
        assert config["minimumReleaseAge"] == "7 days"
        groups = {rule.get("groupName") for rule in config["packageRules"]}
        assert {"Python packages", "pre-commit hooks", "uv"} <= groups
        # The image Renovate groups is the one the CI file (and the Dockerfile) names.
        (uv_rule,) = [r for r in config["packageRules"] if r.get("groupName") == "uv"]
        (uv_image,) = uv_rule["matchPackageNames"]
        assert f"image: {uv_image}:" in (project / CI_FILES[provider]).read_text()
        if use_docker:
            assert f"ARG UV_IMAGE={uv_image}:" in (project / "Dockerfile").read_text()
    else:
        assert not list(project.glob("renovate.json*"))


@pytest.mark.parametrize("provider", list(CI_FILES))
def test_ci_clones_the_full_history_for_the_policy_baseline(
    provider: str, rendered: Callable[..., Path]
) -> None:
    """The gate's regression rule reads the metrics committed on main."""
    project = rendered(ci_provider=provider)
    config = yaml.safe_load((project / CI_FILES[provider]).read_text())
    if provider == "github":
        (job,) = config["jobs"].values()
        steps = [step for step in job["steps"] if "actions/checkout" in step.get("uses", "")]
        assert steps[0]["with"]["fetch-depth"] == 0
    elif provider == "gitlab":
        assert config["variables"]["GIT_DEPTH"] == 0
        # A runner fetches the pipeline's own branch and no other: the job
        # fetches main (and every branch) before the report and the gate read it.
        script = config["ci"]["script"]
        fetch = 'git fetch --quiet origin "+refs/heads/*:refs/remotes/origin/*"'
        assert script.index(fetch) < script.index("make report") < script.index("make policy")
    else:
        assert config["clone"]["depth"] == "full"


@pytest.mark.parametrize("provider", list(CI_FILES))
def test_the_monitor_job_fetches_the_registry_tags(
    provider: str, rendered: Callable[..., Path]
) -> None:
    """The champion is a git tag, often on a promoted experiment's commit, off the branch."""
    project = rendered(ci_provider=provider)
    if provider == "github":
        config = yaml.safe_load((project / MONITOR_WORKFLOW).read_text())
        (job,) = config["jobs"].values()
        steps = [step for step in job["steps"] if "actions/checkout" in step.get("uses", "")]
        assert steps[0]["with"]["fetch-depth"] == 0  # every branch and tag
    elif provider == "gitlab":
        script = yaml.safe_load((project / CI_FILES[provider]).read_text())["monitor"]["script"]
        fetch = "git fetch --quiet --tags origin"
        assert script.index(fetch) < next(i for i, x in enumerate(script) if "make monitor" in x)
    else:
        config = yaml.safe_load((project / CI_FILES[provider]).read_text())
        assert config["clone"]["depth"] == "full"

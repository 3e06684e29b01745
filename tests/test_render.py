"""Render the template across the answer matrix and check every generated file."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import jsonc
import pytest
import yaml
from support import REPORT_FILES, TEMPLATE_ROOT, generated_files, render, run, tool_env

AWKWARD = {
    "project_name": 'Détection "Fraude": #1 {v2} \\ d\'Œuvres',
    "description": 'Flags claims: "suspicious" ones first; {{ not jinja }} # not a comment \\n',
    "author_name": "Zoë O'Brien-Łukasz",
    "author_email": "zoe.obrien@example.org",
}

# One row per combination worth rendering: every choice of every question
# appears at least once, and the awkward text meets every file type.
MATRIX = {
    "default": {},
    "awkward-text": AWKWARD,
    "minimal": {
        "experiment_tracker": "none",
        "dvc_remote": "none",
        "ci_provider": "none",
        "use_docker": False,
        "include_example": False,
        "license": "Proprietary",
    },
    "multiclass-dvclive-gitlab": {
        "problem_type": "multiclass_classification",
        "experiment_tracker": "dvclive",
        "ci_provider": "gitlab",
        "dvc_remote": "s3",
        "dvc_remote_url": "s3://claims-bucket/dvc",
        "license": "Apache-2.0",
        "python_version": "3.10",
    },
    "regression-wandb-bitbucket": {
        "problem_type": "regression",
        "primary_metric": "rmse",
        "primary_metric_threshold": 2500.0,
        "experiment_tracker": "wandb",
        "ci_provider": "bitbucket",
        "dvc_remote": "gcs",
        "dvc_remote_url": "gs://claims-bucket/dvc",
        "use_devcontainer": False,
        "license": "BSD-3-Clause",
        "python_version": "3.13",
    },
    "comet-azure": {
        "experiment_tracker": "comet",
        "dvc_remote": "azure",
        "dvc_remote_url": "azure://claims/dvc",
        "primary_metric": "average_precision",
        "python_version": "3.11",
    },
    "longest-names": {
        "project_name": "Q" * 80,
        "project_slug": "claims-" + "x" * 57,
        "description": "d" * 300,
    },
    "neptune-ssh-no-example": {
        "experiment_tracker": "neptune",
        "dvc_remote": "ssh",
        "dvc_remote_url": "ssh://dvc@storage.internal/srv/dvc",
        "include_example": False,
        "author_name": "Fraud Team",
    },
}

CORE_FILES = {
    ".copier-answers.yml",
    ".dvc/.gitignore",
    ".dvc/config",
    ".dvcignore",
    ".env.example",
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "LICENSE",
    "Makefile",
    "README.md",
    "dvc.yaml",
    "metrics_policy.schema.json",
    "metrics_policy.yaml",
    "mkdocs.yml",
    "params.yaml",
    "pyproject.toml",
    "data/.gitignore",
    "data/raw/.gitkeep",
    "models/.gitignore",
    "notebooks/.gitkeep",
    "reports/.gitkeep",
    *(
        f"tests/test_{name}.py"
        for name in (
            "baseline",
            "doctor",
            "evaluate",
            "evidence",
            "experiments",
            "explain",
            "featurize",
            "imports",
            "inference",
            "intervals",
            "learned",
            "monitor",
            "params",
            "pipeline_code",
            "policy",
            "predict",
            "prepare",
            "promote",
            "queue",
            "records",
            "registry",
            "report",
            "reproduce",
            "resources",
            "serve",
            "slices",
            "tracking",
            "train",
            "tune",
            "verify",
        )
    ),
    "tests/conftest.py",
}
# The package's modules on their floors (the report's subpackage is listed by test_results.py).
MODULES = {"__init__", "shared/__init__", "stages/__init__", "commands/__init__"}
MODULES |= {
    f"shared/{name}" for name in ("display", "git", "intervals", "lock", "params", "paths")
}
MODULES |= {f"shared/{name}" for name in ("policy", "records", "seeding", "slices", "splits")}
MODULES |= {f"shared/{name}" for name in ("checks", "evidence", "learned", "tracking")}
MODULES |= {f"stages/{name}" for name in ("prepare", "featurize", "train", "evaluate")}
MODULES |= {f"commands/{name}" for name in ("arguments", "check_tracker", "doctor", "experiments")}
MODULES |= {"commands/find_run"}
MODULES |= {f"commands/{name}" for name in ("gate", "promote", "rebuild", "reproduce", "verify")}
MODULES |= {"commands/queue", "commands/tune"}
MODULES |= {"shared/drift", "shared/inference", "shared/registry", "shared/resources"}
MODULES |= {f"commands/{name}" for name in ("explain", "monitor", "predict", "rollback", "serve")}
CI_FILES = {
    "github": {
        ".github/workflows/ci.yml",
        ".github/workflows/experiment-grid.yml",
        ".github/workflows/monitor.yml",
        ".github/workflows/template-update.yml",
        ".github/dependabot.yml",
    },
    "gitlab": {".gitlab-ci.yml", "renovate.json"},
    "bitbucket": {"bitbucket-pipelines.yml", "renovate.json"},
    "none": set(),
}
# Who must review the policy, the pipeline and CI, where each host reads it.
OWNERS_FILES = {
    "github": ".github/CODEOWNERS",
    "gitlab": ".gitlab/CODEOWNERS",
    "bitbucket": ".bitbucket/CODEOWNERS",
    "none": "CODEOWNERS",
}


def expected_files(answers: dict) -> set[str]:
    """Every file outside docs/ (test_docs.py checks the docs) for these answers."""
    package = answers["package_name"]
    files = CORE_FILES | {f"src/{package}/{module}.py" for module in MODULES}
    files |= {f"src/{package}/commands/report/{name}" for name in REPORT_FILES}
    if answers["include_example"]:
        files |= {f"src/{package}/stages/generate.py", "tests/test_generate.py"}
        files |= {"data/raw/.gitignore"}
    if answers["use_docker"]:
        files |= {"Dockerfile", ".dockerignore"}
    if answers.get("use_devcontainer"):
        files |= {".devcontainer/devcontainer.json"}
    if answers["experiment_tracker"] == "mlflow":  # the team stack
        files |= {
            "compose.yaml",
            "stack/mlflow.Dockerfile",
            "stack/requirements.txt",
            "stack/basic_auth.ini",
        }
        files |= {f"src/{package}/commands/move_runs.py", f"src/{package}/shared/mlflow_store.py"}
    return files | CI_FILES[answers["ci_provider"]] | {OWNERS_FILES[answers["ci_provider"]]}


@pytest.fixture(scope="module", params=list(MATRIX), ids=list(MATRIX))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp(request.param) / "project", **MATRIX[request.param])


def package_of(project: Path) -> str:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]


def test_exactly_the_expected_files_are_generated(project: Path) -> None:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    generated = {path for path in generated_files(project) if not path.startswith("docs/")}
    assert generated == expected_files(answers)


def test_no_template_syntax_is_left(project: Path) -> None:
    # GitHub Actions expressions (${{ ... }}) are not Jinja.
    leftovers = re.compile(r"(?<!\$)\{\{-?\s*[\w(]|\{%-?\s|\s-?%\}|\.jinja\b")
    for relpath in generated_files(project):
        if relpath.startswith(("docs/", "mkdocs.yml")) or relpath == ".copier-answers.yml":
            continue  # checked by test_docs.py; answers may quote user text verbatim
        if relpath.endswith(".j2"):
            continue  # a Jinja template of the project's own (the report page), copied as is
        text = (project / relpath).read_text(encoding="utf-8")
        assert not leftovers.search(text.replace("{{ not jinja }}", "")), relpath
        assert not relpath.endswith(".jinja"), relpath


def test_structured_files_parse(project: Path) -> None:
    for relpath in generated_files(project):
        path = project / relpath
        if path.suffix in {".yml", ".yaml"}:
            list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        elif path.suffix == ".toml":
            tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.name == "devcontainer.json":  # JSON with comments, per its spec
            jsonc.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))


def test_text_files_end_cleanly(project: Path) -> None:
    """What pre-commit's end-of-file and whitespace fixers would otherwise change."""
    for relpath in generated_files(project):
        text = (project / relpath).read_text(encoding="utf-8")
        if not text:
            continue
        assert text.endswith("\n"), f"{relpath}: no newline at the end"
        assert not text.endswith("\n\n"), f"{relpath}: blank lines at the end"
        trailing = [n for n, line in enumerate(text.splitlines(), 1) if line != line.rstrip()]
        assert not trailing, f"{relpath}: trailing whitespace on lines {trailing}"


def test_user_text_survives_rendering(project: Path) -> None:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == answers["description"]
    authors = pyproject["project"].get("authors", [])
    if answers["author_name"]:
        assert authors[0]["name"] == answers["author_name"]
    assert (
        (project / "README.md")
        .read_text(encoding="utf-8")
        .startswith(f"# {answers['project_name']}\n")
    )


def test_ruff_finds_nothing_to_fix(project: Path) -> None:
    env = tool_env()
    run(["ruff", "check", "--no-cache", "."], project, env=env)
    run(["ruff", "format", "--no-cache", "--check", "."], project, env=env)


def test_python_files_compile(project: Path) -> None:
    for relpath in generated_files(project):
        if relpath.endswith(".py"):
            source = (project / relpath).read_text(encoding="utf-8")
            compile(source, relpath, "exec")


def test_python_version_is_pinned_consistently(project: Path) -> None:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    version = answers["python_version"]
    assert (project / ".python-version").read_text() == f"{version}\n"
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    minor = int(version.split(".")[1])
    assert pyproject["project"]["requires-python"] == f">={version},<3.{minor + 1}"
    assert "target-version" not in pyproject["tool"]["ruff"]  # ruff reads requires-python


def test_license_matches_the_answer(project: Path) -> None:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    first_line = (project / "LICENSE").read_text(encoding="utf-8").lstrip().splitlines()[0]
    expected = {
        "MIT": "MIT License",
        "Apache-2.0": "Apache License",
        "BSD-3-Clause": "BSD 3-Clause License",
        "Proprietary": "Copyright (c)",
    }[answers["license"]]
    assert first_line.startswith(expected)


def test_only_the_chosen_tracker_is_a_dependency(project: Path) -> None:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    names = {re.split(r"[\[<>=~! ]", dep)[0] for dep in pyproject["project"]["dependencies"]}
    trackers = {"mlflow", "dvclive", "comet-ml", "wandb", "neptune"}
    chosen = {"comet": "comet-ml", "none": None}.get(
        answers["experiment_tracker"], answers["experiment_tracker"]
    )
    assert names & trackers == ({chosen} if chosen else set())


PROJECT_TOOL_HOOKS = {"ruff-check": "ruff", "ruff-format": "ruff", "ty": "ty", "zizmor": "zizmor"}


def test_pre_commit_runs_the_locked_tools_and_pinned_hooks(default_project: Path) -> None:
    """The project's tools run from uv.lock (one pin each); the other hooks install from PyPI."""
    hooks = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text())
    pyproject = tomllib.loads((default_project / "pyproject.toml").read_text())
    dev = pyproject["dependency-groups"]["dev"]
    ids = set()
    for repo in hooks["repos"]:
        assert repo["repo"] == "local"
        for hook in repo["hooks"]:
            ids.add(hook["id"])
            if hook["id"] in PROJECT_TOOL_HOOKS:
                tool = PROJECT_TOOL_HOOKS[hook["id"]]
                assert hook["language"] == "system", hook["id"]
                assert hook["entry"].startswith(f"uv run --locked {tool} "), hook["id"]
                assert "additional_dependencies" not in hook, hook["id"]
                assert any(dep.startswith(f"{tool}==") for dep in dev), tool
                continue
            assert hook["language"] == "python", hook["id"]
            assert all("==" in dep for dep in hook["additional_dependencies"]), hook["id"]
    assert {
        *PROJECT_TOOL_HOOKS,
        "check-yaml",
        "check-toml",
        "end-of-file-fixer",
        "trailing-whitespace",
        "detect-private-key",
        "check-added-large-files",
        "check-merge-conflict",
        "nbstripout",
    } <= ids
    template_repo = tomllib.loads((TEMPLATE_ROOT / "pyproject.toml").read_text())
    ruff_pin = next(dep for dep in dev if dep.startswith("ruff=="))
    assert ruff_pin in template_repo["dependency-groups"]["dev"]


def test_gitignore_leaves_data_to_dvc(default_project: Path) -> None:
    ignored = (default_project / ".gitignore").read_text().splitlines()
    assert not {"data", "data/", "/data", "/data/", "models/", "/models/"} & set(ignored)
    assert ".env" in ignored


def test_makefile_has_every_documented_target(default_project: Path) -> None:
    makefile = (default_project / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.MULTILINE))
    assert {
        "setup",
        "repro",
        "test",
        "lint",
        "format",
        "policy",
        "verify",
        "docs",
        "docker",
        "help",
    } <= targets

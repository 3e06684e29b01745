"""How a project learns of a new template version and takes it.

`copier check-update` and `make check-update`, `make update-template` (and the
template source it checks), the Makefile's pinned copier, and the scheduled CI
jobs that propose an update: GitHub's workflow, GitLab's and Bitbucket's jobs,
run here against a local remote.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version
from support import (
    TEMPLATE_ROOT,
    answers,
    commit_all,
    conflict_markers,
    edit,
    generate,
    git,
    release,
    run,
    template_clone,
    tool_env,
    update,
)

# ---------------------------------------------------------------- drift


WORKFLOW = ".github/workflows/template-update.yml"


def release_0_2_0(template: Path) -> None:
    edit(
        template / "template" / "Makefile.jinja",
        ".DEFAULT_GOAL := help\n",
        ".DEFAULT_GOAL := help\n.SUFFIXES:\n",
    )
    release(template, "v0.2.0", "Release 0.2.0")


def project_behind_its_template(root: Path, **data: str) -> Path:
    """A project generated at v0.1.0 whose template has released v0.2.0 since."""
    template = template_clone(root / "template")
    project = generate(template, root / "project", **data)
    release_0_2_0(template)
    return project


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return project_behind_its_template(tmp_path_factory.mktemp("drift"))


def test_check_update_reports_a_project_behind_its_template(behind: Path) -> None:
    # The workflow relies on these exit codes: 2 when behind, 0 when current.
    check = [sys.executable, "-m", "copier", "check-update"]
    assert run([*check, "--quiet"], behind, check=False).returncode == 2
    assert "latest version is 0.2.0" in run(check, behind).stdout
    update(behind)
    commit_all(behind, "Update from the template")
    assert run([*check, "--quiet"], behind, check=False).returncode == 0


@pytest.mark.e2e
def test_make_check_update_names_the_new_version(tmp_path: Path) -> None:
    project = project_behind_its_template(tmp_path)
    result = run(["make", "check-update"], project)
    assert "latest version is 0.2.0" in result.stdout


def conflict_with_0_2_0(project: Path) -> None:
    """The user changes the very line v0.2.0 adds a line after: a real conflict."""
    edit(project / "Makefile", ".DEFAULT_GOAL := help\n", ".DEFAULT_GOAL := check\n")
    commit_all(project, "make with no target runs the checks")


@pytest.mark.e2e
def test_make_update_template_fails_naming_the_conflicting_files(tmp_path: Path) -> None:
    project = project_behind_its_template(tmp_path)
    conflict_with_0_2_0(project)
    result = run(["make", "update-template"], project, check=False)
    assert result.returncode != 0
    assert answers(project)["_commit"] == "v0.2.0"
    assert conflict_markers((project / "Makefile").read_text())
    conflicts = "You and the template changed the same lines in these files:\nMakefile\n"
    assert conflicts in result.stderr


@pytest.mark.e2e
def test_github_update_step_proposes_an_update_that_left_conflicts(tmp_path: Path) -> None:
    project = project_behind_its_template(tmp_path)
    conflict_with_0_2_0(project)
    (step,) = [s for s in workflow_steps(project) if s.get("name") == "Update from the template"]
    github_env = tmp_path / "github-env"
    env = tool_env({"GITHUB_ENV": str(github_env)})
    result = run(["bash", "-eo", "pipefail", "-c", step["run"]], project, check=False, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(github_env.read_text().splitlines()) == {"CONFLICTS=yes", "VERSION=v0.2.0"}


def test_makefile_pins_the_copier_the_template_is_tested_with(default_project: Path) -> None:
    makefile = (default_project / "Makefile").read_text()
    pinned = re.search(r"^COPIER := uvx --from copier==([\d.]+) copier$", makefile, flags=re.M)
    assert pinned, "the Makefile must pin copier for check-update and update-template"
    assert pinned.group(1) == importlib.metadata.version("copier")
    minimum = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())["_min_copier_version"]
    assert Version(pinned.group(1)) >= Version(minimum)


@pytest.mark.parametrize(
    ("source", "reachable"),
    [
        ("gh:acme/ml-template", True),
        ("'https://git.example.org/ml/template.git'", True),
        ("git@git.example.org:ml/template.git", True),
        ("{template}", True),
        ("/home/me/no-such-template", False),
        ("../moved-away", False),
        (".", False),  # the project itself: what `copier copy .` records
        ("{tmp}", False),  # a folder, but no template
    ],
)
def test_make_template_source_refuses_a_source_it_cannot_reach(
    default_project: Path, tmp_path: Path, source: str, reachable: bool
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("Makefile", ".python-version"):
        shutil.copy(default_project / name, project / name)
    (tmp_path / "template").mkdir()
    (tmp_path / "template" / "copier.yml").write_text("_subdirectory: template\n")
    source = source.format(template=tmp_path / "template", tmp=tmp_path)
    (project / ".copier-answers.yml").write_text(f"_commit: v0.1.0\n_src_path: {source}\n")
    result = run(["make", "--silent", "template-source"], project, check=False)
    assert (result.returncode == 0) is reachable, result.stderr
    if not reachable:
        assert f"_src_path in .copier-answers.yml is '{source}'" in result.stderr


def workflow_steps(project: Path) -> list[dict]:
    return yaml.safe_load((project / WORKFLOW).read_text())["jobs"]["update"]["steps"]


def test_update_workflow_is_valid_and_pinned(default_project: Path) -> None:
    workflow = default_project / WORKFLOW
    schema_check = Path(sys.executable).parent / "check-jsonschema"
    run([schema_check, "--builtin-schema", "vendor.github-workflows", workflow], default_project)
    spec = yaml.safe_load(workflow.read_text())
    assert spec[True]["schedule"], "the workflow must run on a schedule"  # YAML 1.1: on == True
    for step in workflow_steps(default_project):
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    runs = "\n".join(step.get("run", "") for step in workflow_steps(default_project))
    assert "make update-template" in runs


def test_update_workflow_exists_only_for_github(render_project) -> None:
    assert not (render_project(ci_provider="gitlab") / WORKFLOW).exists()
    assert not (render_project(ci_provider="none") / ".github").exists()


def test_gitlab_runs_the_update_job_alone_on_its_schedule(render_project) -> None:
    config = yaml.safe_load((render_project(ci_provider="gitlab") / ".gitlab-ci.yml").read_text())
    assert config["template-update"]["rules"] == [
        {"if": '$CI_PIPELINE_SOURCE == "schedule" && $TEMPLATE_UPDATE == "true"'}
    ]
    assert config["ci"]["rules"][0] == {"if": '$TEMPLATE_UPDATE == "true"', "when": "never"}


# ------------------------------------------ the GitLab and Bitbucket update jobs, run here

CURL_STUB = """#!/bin/sh
# Bitbucket's REST API, as far as the template-update pipeline uses it.
printf '%s\\n' "$*" >>"$CURL_LOG"
for arg in "$@"; do
  case "$arg" in @*) cp "${arg#@}" "$CURL_LOG.json" ;; esac
done
case " $* " in
  *" --get "*) echo '{"size": 0, "values": []}' ;;
  *) echo '{"id": 7}' ;;
esac
"""


def update_job_script(project: Path, provider: str) -> str:
    if provider == "gitlab":
        config = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
        lines = config["template-update"]["script"]
    else:
        pipeline = yaml.safe_load((project / "bitbucket-pipelines.yml").read_text())
        lines = pipeline["pipelines"]["custom"]["template-update"][0]["step"]["script"]
    return "\n".join(lines)


def run_update_job(project: Path, provider: str, remote: Path, token: str = "secret"):
    """The provider's update job as its runner would run it, against a local remote."""
    env = {"TEMPLATE_UPDATE_TOKEN": token, "CURL_LOG": str(remote.parent / "curl.log")}
    if provider == "gitlab":
        env |= {
            "CI_SERVER_PROTOCOL": "https",
            "CI_SERVER_HOST": "gitlab.example.org",
            "CI_SERVER_PORT": "443",
            "CI_PROJECT_PATH": "acme/claims",
            "CI_DEFAULT_BRANCH": "main",
            # The push URL the job builds, pointed at the local bare repository.
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": f"url.{remote}.insteadOf",
            "GIT_CONFIG_VALUE_0": "https://template-update:secret@gitlab.example.org:443/acme/claims.git",
        }
    else:
        env |= {"BITBUCKET_REPO_FULL_NAME": "acme/claims", "BITBUCKET_BRANCH": "main"}
        stubs = remote.parent / "bin"
        stubs.mkdir(exist_ok=True)
        (stubs / "curl").write_text(CURL_STUB)
        (stubs / "curl").chmod(0o755)
        env["PATH"] = f"{stubs}{os.pathsep}{tool_env()['PATH']}"
    script = update_job_script(project, provider)
    return run(["bash", "-eo", "pipefail", "-c", script], project, check=False, env=tool_env(env))


@pytest.mark.e2e
@pytest.mark.parametrize("provider", ["gitlab", "bitbucket"])
def test_scheduled_update_job_proposes_the_new_version(tmp_path: Path, provider: str) -> None:
    template = template_clone(tmp_path / "template")
    project = generate(template, tmp_path / "project", ci_provider=provider)
    remote = tmp_path / "remote.git"
    run(["git", "init", "--quiet", "--bare", remote], tmp_path)
    git(remote, "config", "receive.advertisePushOptions", "true")
    git(project, "remote", "add", "origin", str(remote))
    git(project, "push", "--quiet", "origin", "main")

    no_token = run_update_job(project, provider, remote, token="")
    assert no_token.returncode == 1
    assert "TEMPLATE_UPDATE_TOKEN" in no_token.stderr

    current = run_update_job(project, provider, remote)
    assert current.returncode == 0, current.stdout + current.stderr
    assert "nothing to propose" in current.stdout
    assert "template-update" not in git(remote, "branch", "--list")

    conflict_with_0_2_0(project)
    git(project, "push", "--quiet", "origin", "main")
    release_0_2_0(template)
    proposed = run_update_job(project, provider, remote)
    assert proposed.returncode == 0, proposed.stdout + proposed.stderr
    branch_answers = yaml.safe_load(git(remote, "show", "template-update:.copier-answers.yml"))
    assert branch_answers["_commit"] == "v0.2.0"
    # Proposed with its conflict, for the user to resolve on the branch.
    assert conflict_markers(git(remote, "show", "template-update:Makefile"))
    title = "Update from the project template (v0.2.0)"
    assert git(remote, "log", "-1", "--format=%s", "template-update").strip() == title
    assert git(remote, "rev-parse", "main") == git(project, "rev-parse", "main")
    if provider == "bitbucket":
        request = json.loads((tmp_path / "curl.log.json").read_text())
        assert request["title"] == title
        assert request["source"]["branch"]["name"] == "template-update"
        assert request["destination"]["branch"]["name"] == "main"

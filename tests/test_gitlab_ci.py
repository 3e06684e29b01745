"""The generated `.gitlab-ci.yml`, run by a real runner: gitlab-ci-local's shell executor.

One GitLab project (default answers otherwise), locked and committed on main
with a bare git repository as its `origin`, runs its pipelines as GitLab
would start them, the rules of every job deciding which run:

- a push to main runs the `ci` job alone, and it passes, from `uv sync` to
  `make verify`; its outputs are then committed and pushed, as main's;
- a scheduled pipeline with `MONITOR_INPUT` runs the `monitor` job alone, and
  it checks the batch against the champion, whose tags only `origin` has (a
  runner fetches the pipeline's branch, not every tag);
- on a branch that raises the policy's slice floor out of reach, `ci` fails
  at the policy gate, which names the check, after comparing with main's
  metrics that only `origin` has (a runner fetches no other branch).

gitlab-ci-local (npm; `.ci/run` installs it) runs each job's script on this
machine with `--force-shell-executor`: the job's image is not pulled, so uv
and Python are this machine's. GitHub Actions and Bitbucket Pipelines have no
such runner here (tests/test_ci_files.py checks their files).

The tests share one project on one worker (``xdist_group``); each holds in any order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from support import commit_all, git, git_init_commit, render, run

GITLAB_CI_LOCAL = shutil.which("gitlab-ci-local")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.xdist_group("gitlab-ci"),
    pytest.mark.skipif(
        GITLAB_CI_LOCAL is None,
        reason="gitlab-ci-local is not on PATH (.ci/run installs it: npm gitlab-ci-local@4.70.1)",
    ),
]

MODEL = "claims-fraud-detection"
# A batch for the monitor job: the example's raw table, tracked by DVC.
BATCH = "data/raw/claims.csv"
# A floor for the primary metric (recall) on every slice that no model reaches
# on this data. The slice floor, because the project's own tests judge models
# they train against the policy's primary metric, guardrails and baseline
# margin: raised out of reach, those fail `make test` before the gate runs.
OUT_OF_REACH = 0.99


def gitlab_ci_local(project: Path, *variables: str) -> subprocess.CompletedProcess[str]:
    """Run the pipeline GitLab would start with ``variables`` (NAME=value), as one output.

    gitlab-ci-local gives a job that names an image ``/builds/<group>/<project>``
    as CI_PROJECT_DIR, even when it runs the job in the project itself: the
    job's caches (``UV_CACHE_DIR``, ``PRE_COMMIT_HOME``) would land outside
    it, so CI_PROJECT_DIR is set to where the job runs, as a shell runner sets it.
    """
    assert GITLAB_CI_LOCAL is not None
    names = [variable.split("=", 1)[0] for variable in variables]
    overridden = ["CI_PROJECT_DIR", *(name for name in names if name.startswith("CI_"))]
    result = run(
        [
            GITLAB_CI_LOCAL,
            "--force-shell-executor",
            "--home",
            project.parent / "gitlab-ci-local-home",  # no personal variables.yml
            "--no-color",
            "--max-job-name-padding=0",
            f"--ignore-predefined-vars={','.join(overridden)}",
            "--variable",
            f"CI_PROJECT_DIR={project}",
            *(arg for variable in variables for arg in ("--variable", variable)),
        ],
        project,
        check=False,
        timeout=1800,
    )
    result.stdout += result.stderr
    return result


def started(output: str) -> list[str]:
    """The jobs a gitlab-ci-local run started, in order."""
    return re.findall(r"^(\S+) starting shell", output, flags=re.MULTILINE)


class Project:
    """The GitLab project and the passing push pipeline it ran first."""

    def __init__(self, root: Path) -> None:
        self.project = render(root / MODEL, ci_provider="gitlab")
        run(["uv", "lock", "--quiet"], self.project)
        git_init_commit(self.project)
        (self.project / ".git" / "info" / "exclude").write_text(".gitlab-ci-local/\n")
        origin = root / "origin.git"
        run(["git", "init", "--quiet", "--bare", origin], root)
        git(self.project, "remote", "add", "origin", str(origin))
        git(self.project, "push", "--quiet", "origin", "main")
        git(self.project, "remote", "set-head", "origin", "main")
        self.push = gitlab_ci_local(self.project)
        if self.push.returncode == 0:
            commit_all(self.project, "Run the pipeline")
            git(self.project, "push", "--quiet", "origin", "main")


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory: pytest.TempPathFactory) -> Project:
    return Project(tmp_path_factory.mktemp("gitlab-ci"))


def test_a_push_runs_the_ci_job_alone_and_it_passes(gitlab: Project) -> None:
    output = gitlab.push.stdout
    assert gitlab.push.returncode == 0, output
    assert started(output) == ["ci"], output
    script = yaml.safe_load((gitlab.project / ".gitlab-ci.yml").read_text())["ci"]["script"]
    for line in script:
        assert f"ci $ {line}" in output, f"the ci job did not run {line!r}\n{output}"
    assert "metrics policy passed" in output, output
    assert re.search(r"All \d+ outputs match dvc\.lock bit for bit", output), output
    assert re.search(r"^ PASS +ci\b", output, flags=re.MULTILINE), output
    assert (gitlab.project / "reports" / "report.html").is_file()  # the job's artifact
    assert (gitlab.project / "site" / "metrics-policy" / "index.html").is_file()  # make docs
    # The caches the job declares, in the project (CI_PROJECT_DIR), as a runner keeps them.
    assert (gitlab.project / ".cache" / "uv").is_dir()
    assert (gitlab.project / ".cache" / "pre-commit").is_dir()


def test_a_scheduled_pipeline_runs_the_monitor_job_alone_on_the_champion(
    gitlab: Project,
) -> None:
    project = gitlab.project
    assert gitlab.push.returncode == 0, "the push pipeline failed: see the test above"
    run(["make", "promote", "EXP=HEAD"], project)
    # The registry's tags reach the runner only through the job's own fetch.
    git(project, "push", "--quiet", "origin", "--tags")
    tags = git(project, "tag", "--list").split()
    assert tags
    git(project, "tag", "--delete", *tags)

    result = gitlab_ci_local(project, "CI_PIPELINE_SOURCE=schedule", f"MONITOR_INPUT={BATCH}")

    output = result.stdout
    assert result.returncode == 0, output
    assert started(output) == ["monitor"], output
    assert f"against {MODEL}@v1.0.0" in output, output
    assert "No alert: the model's checks all hold on this batch." in output, output
    assert (project / "reports" / "monitoring" / "claims.html").is_file()  # the job's artifact
    assert sorted(git(project, "tag", "--list").split()) == sorted(tags)


def test_a_policy_out_of_reach_fails_the_ci_job_at_the_gate(gitlab: Project) -> None:
    project = gitlab.project
    assert gitlab.push.returncode == 0, "the push pipeline failed: see the test above"
    policy = project / "metrics_policy.yaml"
    text = policy.read_text()
    raised = re.sub(
        r"(^slices:\n(?:  .*\n)*?  threshold: )\S+",
        rf"\g<1>{OUT_OF_REACH}",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    assert raised != text, "metrics_policy.yaml has no slices.threshold"
    git(project, "switch", "--quiet", "--create", "raise-the-bar")
    try:
        policy.write_text(raised)
        commit_all(project, "Raise the bar")
        # A runner's clone has the pipeline's branch only: main's metrics, the
        # gate's baseline, come from the job's own fetch.
        git(project, "branch", "--delete", "--force", "main")
        git(project, "update-ref", "-d", "refs/remotes/origin/main")

        result = gitlab_ci_local(project)

        output = result.stdout
        assert result.returncode != 0, output
        assert started(output) == ["ci"], output
        assert re.search(r"^ FAIL +ci\b", output, flags=re.MULTILINE), output
        bound = rf">= {OUT_OF_REACH:.4f}"
        assert re.search(rf"^ci > recall on \S+=\S+ .*{bound} +FAIL$", output, flags=re.M), output
        assert re.search(r"^ci > recall \(primary\) .* pass$", output, flags=re.M), output
        assert re.search(
            rf"^ci > metrics policy failed: recall on \S+=.* is [\d.]+, needs {bound}$",
            output,
            flags=re.M,
        ), output
        assert re.search(r"^ci > recall vs main \(interval\) .* pass$", output, flags=re.M), (
            f"the gate did not compare with main's metrics\n{output}"
        )
        assert "ci $ make verify" not in output, "the job went on after the gate failed"
    finally:
        git(project, "fetch", "--quiet", "origin", "+refs/heads/main:refs/heads/main")
        git(project, "switch", "--quiet", "--discard-changes", "main")
        git(project, "branch", "--delete", "--force", "raise-the-bar")

"""A person can answer the questions in a terminal, conditional ones included."""

from __future__ import annotations

import sys
from pathlib import Path

import pexpect
import pytest
import yaml
from support import TEMPLATE_ROOT, tool_env

DOWN = "\x1b[B"
ENTER = "\r"


@pytest.fixture
def copier_session(tmp_path: Path):
    destination = tmp_path / "answered"
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "copier",
            "copy",
            "--vcs-ref",
            "HEAD",
            "--skip-tasks",
            str(TEMPLATE_ROOT),
            str(destination),
        ],
        env=tool_env({"TERM": "xterm", "COLUMNS": "160", "LINES": "50"}),
        encoding="utf-8",
        timeout=30,
        dimensions=(50, 160),
    )
    yield child, destination
    child.close(force=True)


def answer(child: pexpect.spawn, prompt: str, keys: str = ENTER) -> None:
    child.expect_exact(prompt)
    child.send(keys)


def test_a_person_can_answer_every_prompt(copier_session) -> None:
    child, destination = copier_session
    answer(child, "Project name", "Claims Fraud Detection" + ENTER)
    # A bad slug is refused on the spot, with the question named, and asked again.
    answer(child, "Repository and distribution name", "\x7f" * 40 + "Bad Slug" + ENTER)
    child.expect_exact("project_slug must start with a lowercase letter")
    child.send("\x7f" * 40 + "claims-fraud" + ENTER)
    answer(child, "Python import name")
    answer(child, "Include the worked example pipeline")
    answer(child, "One sentence on what the project predicts")
    answer(child, "Author or team name", "Fraud Team" + ENTER)
    answer(child, "Contact email", "fraud-team@example.org" + ENTER)
    answer(child, "License")
    answer(child, "Python version pinned")
    answer(child, "Kind of prediction")
    answer(child, "Primary metric of the metrics policy", DOWN + ENTER)  # precision
    answer(child, "Smallest acceptable precision", "\x7f" * 10 + "0.6" + ENTER)
    answer(child, "Experiment tracker")
    answer(child, "Where DVC stores data", DOWN + ENTER)  # s3: asks for its URL
    answer(child, "URL of the s3 remote", "s3://claims-bucket/dvc" + ENTER)
    answer(child, "CI service")
    # Owners are checked on the spot: a bare name is neither a handle nor an email.
    answer(child, "Who must review changes", "\x7f" * 40 + "fraud-leads" + ENTER)
    child.expect_exact("code_owners takes handles")
    child.send("\x7f" * 40 + "@acme/fraud-leads" + ENTER)
    answer(child, "Add a Dockerfile", "n")  # no Docker: the devcontainer is not asked
    answer(child, "Seed for every random source", "\x7f" * 5 + "7" + ENTER)
    child.expect(pexpect.EOF, timeout=120)
    assert "Add a devcontainer" not in child.before

    answers = yaml.safe_load((destination / ".copier-answers.yml").read_text())
    assert answers["project_slug"] == "claims-fraud"
    assert answers["package_name"] == "claims_fraud"
    assert answers["author_email"] == "fraud-team@example.org"
    assert answers["primary_metric"] == "precision"
    assert answers["primary_metric_threshold"] == 0.6
    assert answers["dvc_remote"] == "s3"
    assert answers["dvc_remote_url"] == "s3://claims-bucket/dvc"
    assert answers["use_docker"] is False
    assert answers["code_owners"] == "@acme/fraud-leads"
    assert "use_devcontainer" not in answers
    assert answers["random_seed"] == 7
    assert (destination / "src" / "claims_fraud" / "shared" / "paths.py").is_file()

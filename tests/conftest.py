from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import commit_all, git_init_commit, render, run


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--e2e",
        action="store_true",
        help="also run the end-to-end tests (generate projects and run their tools)",
    )


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A module-scoped project made by a parametrized fixture is built again on
    # every worker that runs one of its tests: keep each one's tests together.
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if "tracked_project" in params:
            item.add_marker(pytest.mark.xdist_group(f"tracking-{params['tracked_project']}"))
        if "ran_project" in params:
            item.add_marker(pytest.mark.xdist_group(f"ran-{params['ran_project']}"))
    if config.getoption("--e2e"):
        return
    skip = pytest.mark.skip(reason="end-to-end test: run with --e2e")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(trylast=True)  # after pytest-xdist has named each test's group
def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run when a worker would not keep a group together.

    The tests of one group share an expensive fixture (a project, the team
    stack, podman's image store): split across workers, they build it twice
    and race. pytest-xdist marks a grouped test by appending ``@<group>`` to
    its id; without that, it schedules the group's tests one by one.
    """
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist's workers
        return
    for item in session.items:
        if item.get_closest_marker("xdist_group") and "@" not in item.nodeid:
            raise pytest.UsageError(
                f"{item.nodeid} is in an xdist_group, but pytest-xdist did not group it: "
                "the installed pytest and pytest-xdist do not work together (see pyproject.toml)"
            )


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project generated with default answers (rendered once, read-only)."""
    return render(tmp_path_factory.mktemp("default") / "claims-fraud-detection")


@pytest.fixture
def render_project(tmp_path: Path) -> Callable[..., Path]:
    """Render a project with the given answers into a fresh folder."""
    counter = iter(range(1_000))

    def _render(**answers: Any) -> Path:
        return render(tmp_path / f"project-{next(counter)}", **answers)

    return _render


@pytest.fixture(scope="session")
def ran_project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project of one problem type, set up, its pipeline run and committed.

    Parametrize it indirectly with a problem type. Built once per worker and
    shared by every test that only reads it: such a test may write ignored or
    untracked scratch (``site/``, a plot folder), and puts back any tracked file
    it changes, so ``git status`` stays clean for the next one.
    """
    problem_type = request.param
    project = render(
        tmp_path_factory.mktemp(problem_type) / "claims-fraud-detection",
        problem_type=problem_type,
    )
    git_init_commit(project)
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    commit_all(project, "Run the pipeline")
    return project

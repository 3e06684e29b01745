"""A project made from the real 0.5.0, on its owner's data and with their edits, updates and runs.

0.5.0's own Makefile knows nothing of the re-lock later releases added, so
the update itself (hooks/migrations/relock.py) must leave a lock that matches
the new pyproject.toml. The project has run its pipeline on its own table
and its owner has edited a stage module, params.yaml and the README; after
their own `make update-template`, with no manual step, `make repro`, `make
test`, `make lint` and `make doctor` pass and every edit is still there.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import (
    answers,
    commit_all,
    conflicted_files,
    edit,
    generate,
    released_template,
    run,
    write_user_data,
)

RAW = "data/raw/dataset.csv"
BLANKS = '("impute", SimpleImputer(strategy="constant", fill_value="missing")),'
OUR_COMMENT = "  # our forms"
OUR_README = "\n## Our data\n\nThe monthly export of the customer table, from billing.\n"


@pytest.fixture(scope="module")
def own_data_0_5_0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """0.5.0 without the example, run on its owner's table, edited, updated by its own target."""
    root = tmp_path_factory.mktemp("since-0.5.0")
    template, new = released_template(root, "0.5.0")
    project = generate(
        template, root / "churn", vcs_ref="v0.5.0", include_example=False, project_name="Churn"
    )
    run(["make", "setup"], project)
    write_user_data(project / RAW, "binary_classification")
    run(["uv", "run", "--locked", "dvc", "add", RAW], project)
    edit(project / "src" / "churn" / "features.py", BLANKS, BLANKS + OUR_COMMENT)
    edit(project / "params.yaml", "min_category_frequency: 0.01", "min_category_frequency: 0.02")
    (project / "README.md").write_text(
        (project / "README.md").read_text(encoding="utf-8") + OUR_README, encoding="utf-8"
    )
    run(["make", "repro"], project)
    commit_all(project, "Our data, our settings, our notes")

    updated = run(["make", "update-template"], project)
    return {"project": project, "version": new, "updated": updated}


@pytest.mark.e2e
@pytest.mark.xdist_group("since-0.5.0")
def test_an_own_data_0_5_0_project_updates_keeping_its_edits_and_runs_with_no_manual_step(
    own_data_0_5_0: dict[str, Any],
) -> None:
    project = own_data_0_5_0["project"]
    assert answers(project)["_commit"] == f"v{own_data_0_5_0['version']}"
    assert "uv.lock re-locked for the updated pyproject.toml" in own_data_0_5_0["updated"].stderr
    assert conflicted_files(project) == []
    featurize = project / "src" / "churn" / "stages" / "featurize.py"
    assert BLANKS + OUR_COMMENT in featurize.read_text(encoding="utf-8")
    assert "min_category_frequency: 0.02" in (project / "params.yaml").read_text()
    assert OUR_README in (project / "README.md").read_text(encoding="utf-8")
    # No `uv lock`, no `make setup`: what a user types first after an update.
    for target in ("repro", "test", "lint", "doctor"):
        run(["make", target], project)
    assert (project / "data" / "raw" / "dataset.csv.dvc").is_file()

"""A project made from the real 0.7.0, with its owner's edits to the stage modules, updates.

0.8.0 moved every module of the package (stages/, commands/, shared/). Copier
removes the old modules, edits and all; the rename migration carries the
owner's edits to the new homes by a three-way merge. After `make
update-template` the project runs, tests and lints, and its pipeline makes
the same splits, model and metrics to the last bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from support import (
    PACKAGE,
    answers,
    commit_all,
    conflict_markers,
    edit,
    generate,
    git,
    released_template,
    run,
)

# What the owner changed in 0.7.0's modules, and where 0.8.0 keeps each edit.
EDITS = {
    "data.py": ("MOSTLY_NUMBERS = 0.95", "MOSTLY_NUMBERS = 0.9", "stages/prepare.py"),
    "features.py": (
        "dtype=np.uint8,  # 0 or 1: a byte a cell, not eight",
        "dtype=np.uint8,  # one byte per cell: our dashboards read the splits",
        "stages/featurize.py",
    ),
    "train.py": (
        "Switch estimators without touching code",
        "Our team switches estimators without touching code",
        "stages/train.py",
    ),
}
# The pipeline's results, which a refactor of the code must leave as they were:
# the fitted models byte for byte, and each split's metrics (0.9.0 added the
# metrics' intervals and a dummy baseline beside them).
RESULTS = ("models/model.joblib", "models/preprocessor.joblib")
SPLITS = ("validation", "test")


def digests(project: Path) -> dict[str, Any]:
    found: dict[str, Any] = {
        name: hashlib.md5((project / name).read_bytes(), usedforsecurity=False).hexdigest()
        for name in RESULTS
    }
    metrics = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    found.update({split: metrics[split] for split in SPLITS})
    return found


@pytest.fixture(scope="module")
def edited_0_7_0(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """0.7.0 generated, run, edited by its owner in three stage modules, then updated."""
    root = tmp_path_factory.mktemp("since-0.7.0")
    template, new = released_template(root, "0.7.0")
    project = generate(template, root / "claims-fraud-detection", vcs_ref="v0.7.0")
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    commit_all(project, "First run")
    before = digests(project)
    policy = (project / "metrics_policy.yaml").read_text(encoding="utf-8")
    for module, (old, changed, _) in EDITS.items():
        edit(project / "src" / PACKAGE / module, old, changed)
    run(["make", "repro"], project)  # the edits change no result
    commit_all(project, "Our changes")

    updated = run(["make", "update-template"], project, check=False)

    return {
        "project": project,
        "version": new,
        "before": before,
        "updated": updated,
        "policy": policy,
    }


@pytest.mark.e2e
@pytest.mark.xdist_group("since-0.7.0")
def test_an_edited_0_7_0_project_updates_with_its_edits_in_the_new_modules(
    edited_0_7_0: dict[str, Any],
) -> None:
    project, updated = edited_0_7_0["project"], edited_0_7_0["updated"]
    assert updated.returncode == 0, updated.stdout + updated.stderr
    assert answers(project)["_commit"] == f"v{edited_0_7_0['version']}"
    package = project / "src" / PACKAGE
    for module, (_, changed, home) in EDITS.items():
        assert not (package / module).exists(), f"{module} was left at its old place"
        text = (package / home).read_text(encoding="utf-8")
        assert changed in text, f"the edit of {module} is not in {home}"
        assert not conflict_markers(text)
    assert "merged your edits of" in updated.stderr
    leftovers = sorted(path.name for path in package.glob("*.py") if path.name != "__init__.py")
    assert leftovers == [], f"modules left on the old floor: {leftovers}"
    # The policy is the owner's: kept as written, the sections new commands read appended.
    policy = (project / "metrics_policy.yaml").read_text(encoding="utf-8")
    assert policy.startswith(edited_0_7_0["policy"].rstrip("\n"))
    appended = policy[len(edited_0_7_0["policy"].rstrip("\n")) :]
    assert "\nmonitoring:\n" in appended
    assert "\nresources:\n" in appended
    assert "\nselection:" not in appended  # a new rule is not forced on an old project
    assert "added the section(s) monitoring, resources" in updated.stderr


@pytest.mark.e2e
@pytest.mark.xdist_group("since-0.7.0")
def test_the_updated_project_runs_tests_and_lints_with_the_same_results(
    edited_0_7_0: dict[str, Any],
) -> None:
    project = edited_0_7_0["project"]
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    assert digests(project) == edited_0_7_0["before"], "the refactor changed a result"
    metrics = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    assert {"intervals", "baseline"} <= metrics.keys()
    run(["make", "test"], project)
    run(["make", "lint"], project)
    # The docs move from MkDocs to ProperDocs with the update, hooks and all.
    run(["make", "docs"], project)
    policy_page = project / "site" / "metrics-policy" / "index.html"
    assert "<code>recall</code>" in policy_page.read_text(encoding="utf-8")
    commit_all(project, f"Update to template {edited_0_7_0['version']}")
    assert git(project, "status", "--porcelain") == ""
    export = "import pandas; pandas.read_parquet('data/interim/test.parquet').to_csv('rows.csv')"
    run(["uv", "run", "--locked", "python", "-c", export], project)
    checked = run(["make", "monitor", "INPUT=rows.csv", "MODEL=HEAD"], project)
    assert "No alert" in checked.stdout

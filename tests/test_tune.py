"""`make tune` in a generated project: a declared search, one experiment per trial.

The project's `tune` section is narrowed to a two-trial grid; the search runs
through DVC's queue like any experiment, each trial is recorded once (one
DVC experiment, one MLflow run of the same name), ranked by the policy's
selection metric beside the checked-out commit, and the search is written to
`reports/tune.json` with the pick the command names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from support import commit_all, git_init_commit, render, run

pytestmark = pytest.mark.e2e

SPACE = """tune:
  trials: 2
  space:
    logistic_regression:
      C: [0.05, 20.0]
"""


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A default project, run and committed, then `make tune` over a two-trial grid."""
    project = render(tmp_path_factory.mktemp("tune") / "claims-fraud-detection")
    git_init_commit(project)
    run(["make", "setup"], project)
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    params.write_text(text[: text.index("\ntune:\n")] + "\n" + SPACE, encoding="utf-8")
    run(["make", "repro"], project)
    commit_all(project, "Run the pipeline, with a small search declared")
    done = run(["make", "tune", "JOBS=2"], project)
    return project, done.stdout


def test_each_trial_is_one_experiment_and_one_tracked_run(tuned: tuple[Path, str]) -> None:
    project, _ = tuned
    record = json.loads((project / "reports" / "tune.json").read_text(encoding="utf-8"))
    names = [trial["name"] for trial in record["trials"]]
    assert len(names) == 2
    assert all(name.startswith(record["search"] + "-") for name in names)
    assert [trial["params"]["train.logistic_regression.C"] for trial in record["trials"]] == [
        0.05,
        20.0,
    ]
    assert all(trial["status"] == "done" for trial in record["trials"])
    listed = run(["uv", "run", "--locked", "dvc", "exp", "list", "--name-only"], project).stdout
    assert sorted(line for line in listed.split() if line.startswith(record["search"])) == names
    probe = (
        "import json, mlflow\n"
        "client = mlflow.MlflowClient('sqlite:///mlflow.db')\n"
        "runs = client.search_runs([e.experiment_id for e in client.search_experiments()])\n"
        "print(json.dumps([r.info.run_name for r in runs]))\n"
    )
    found = run(["uv", "run", "--locked", "python", "-c", probe], project).stdout
    run_names = json.loads(found.splitlines()[-1])
    assert [run_names.count(name) for name in names] == [1, 1]


def test_the_trials_are_ranked_by_the_selection_metric_and_the_pick_is_named(
    tuned: tuple[Path, str],
) -> None:
    project, output = tuned
    record = json.loads((project / "reports" / "tune.json").read_text(encoding="utf-8"))
    assert record["selection"] == "average_precision"
    assert record["space"]["space"] == {"logistic_regression": {"C": [0.05, 20.0]}}
    assert all(trial["average_precision"] is not None for trial in record["trials"])
    assert all(len(trial["interval"]) == 2 for trial in record["trials"])
    header = re.search(r"^experiment +changed params .*$", output, re.MULTILINE)
    assert header, output
    table = output[header.start() :].splitlines()
    assert table[0].split()[3:5] == ["average_precision", "interval"]
    (picked,) = [line.split()[0] for line in table if line.rstrip().endswith("<- pick")]
    assert picked == record["pick"]
    if picked in {trial["name"] for trial in record["trials"]}:
        assert f"The policy picks {picked}; `make promote EXP={picked}`" in output
    else:  # no trial beat the checked-out commit beyond noise
        assert f"No trial beats {picked}, the checked-out commit, beyond noise" in output

"""The experiment lifecycle of a generated project, used as a team would use it.

One project (the default answers: MLflow on SQLite, a local DVC remote)
commits run A, then run B, and pushes both to a bare git remote and to its
DVC remote. Then:

- a fresh clone that has only those two remotes rebuilds run A by its run id;
- the original rebuilds A by its commit, compared with what MLflow recorded,
  and the result lands on A's MLflow run and as a git note on A's commit;
- a commit with an unseeded random draw does not reproduce, and says which
  output differs;
- queued experiments are compared on the validation split, the policy's pick
  is promoted (a git tag, an MLflow model version with alias champion, a row
  on the model card), and a run that fails the gate is refused.

The tests share one project on one worker (``xdist_group``); each holds in any order.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from support import commit_all, git_init_commit, render, run

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("lifecycle")]

PACKAGE = "claims_fraud_detection"
MODEL = "claims-fraud-detection"


def workspace_digest(project: Path) -> dict[str, str]:
    """The hash of every file in the workspace outside .git, .venv and bytecode caches."""
    digests = {}
    for path in sorted(project.rglob("*")):
        parts = path.relative_to(project).parts
        if path.is_file() and parts[0] not in {".git", ".venv"} and "__pycache__" not in parts:
            digests["/".join(parts)] = hashlib.md5(path.read_bytes()).hexdigest()
    return digests


def uv_python(project: Path, code: str) -> str:
    return run(["uv", "run", "--locked", "python", "-c", code], project).stdout


def record(project: Path) -> dict:
    return json.loads((project / "reports" / "run.json").read_text())


def table_rows(output: str) -> dict[str, list[str]]:
    """The rows of the comparison table `make reproduce` prints, by output or metric."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) >= 4 and (cells[-1] == "same" or "DIFFERS" in cells):
            rows[cells[0]] = cells
    return rows


class Team:
    """The shared project and what its first two commits recorded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.project = render(root / "claims-fraud-detection")
        self.origin = root / "origin.git"
        git_init_commit(self.project)
        run(["make", "setup"], self.project)
        run(["make", "repro"], self.project)
        commit_all(self.project, "Run A")
        run(["uv", "run", "--locked", "dvc", "push", "--quiet"], self.project)
        self.run_a = record(self.project)
        self.commit_a = self.head()
        params = self.project / "params.yaml"
        params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
        run(["make", "repro"], self.project)
        commit_all(self.project, "Run B: C=0.5")
        self.commit_b = self.head()
        run(["git", "init", "--quiet", "--bare", "--initial-branch=main", self.origin], root)
        run(["git", "remote", "add", "origin", self.origin], self.project)
        run(["git", "push", "--quiet", "origin", "main"], self.project)
        run(["uv", "run", "--locked", "dvc", "push", "--quiet"], self.project)

    def head(self) -> str:
        return run(["git", "rev-parse", "HEAD"], self.project).stdout.strip()


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Team:
    return Team(tmp_path_factory.mktemp("lifecycle"))


def test_a_fresh_clone_rebuilds_a_past_run_by_its_run_id(team: Team) -> None:
    clone = team.root / "fresh-clone"
    run(["git", "clone", "--quiet", team.origin, clone], team.root)
    run(["make", "setup"], clone)
    before = workspace_digest(clone)
    done = run(["make", "reproduce", f"RUN={team.run_a['run_id']}"], clone, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert f"commit {team.commit_a[:12]}" in output
    rows = table_rows(output)
    assert set(team.run_a["outputs"]) <= rows.keys()
    assert {"validation.recall", "test.recall", "test.precision"} <= rows.keys()
    assert all(cells[-1] == "same" for cells in rows.values()), output
    assert "lacks" not in output, "the DVC remote holds everything run A needs"
    # This clone has no MLflow store: the tracker is not asked, and that is said.
    assert "no MLflow store" in output
    assert workspace_digest(clone) == before
    assert run(["git", "rev-parse", "HEAD"], clone).stdout.strip() == team.commit_b
    assert len(run(["git", "worktree", "list"], clone).stdout.splitlines()) == 1


def test_a_rebuild_is_compared_with_the_tracker_and_recorded_on_the_run(team: Team) -> None:
    project = team.project
    before = workspace_digest(project)
    done = run(["make", "reproduce", f"RUN={team.commit_a}"], project, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    rows = table_rows(output)
    metrics = json.loads(
        run(["git", "show", f"{team.commit_a}:reports/metrics.json"], project).stdout
    )
    recall = rows["test.recall"]
    # recorded, tracker and reproduced values, all equal to the committed one
    assert recall[1:4] == [f"{metrics['test']['recall']:.6f}"] * 3
    # The tracker's store changed on purpose (the run is tagged); nothing else did.
    changed = {
        path for path, digest in workspace_digest(project).items() if before.get(path) != digest
    }
    assert changed == {"mlflow.db"}
    note = json.loads(
        run(["git", "notes", "--ref=reproductions", "show", team.commit_a], project).stdout
    )
    assert note["result"] == "same"
    assert note["differs"] == []
    tags = uv_python(
        project,
        "import json, mlflow\n"
        "client = mlflow.MlflowClient('sqlite:///mlflow.db')\n"
        f"print(json.dumps(client.get_run({team.run_a['run_id']!r}).data.tags))",
    )
    assert json.loads(tags)["reproduction.result"] == "same"


def test_an_unseeded_random_draw_does_not_reproduce_and_the_output_is_named(
    team: Team,
) -> None:
    project = team.project
    train = project / "src" / PACKAGE / "stages" / "train.py"
    original = train.read_text()
    run(["git", "switch", "--quiet", "--create", "unseeded"], project)
    try:
        train.write_text(
            original.replace(
                "    joblib.dump(model, MODEL_FILE)",
                "    model.noise_ = __import__('numpy').random.default_rng().random()\n"
                "    joblib.dump(model, MODEL_FILE)",
            )
        )
        run(["make", "repro"], project)
        commit_all(project, "Train with an unseeded draw")
        done = run(["make", "reproduce", "RUN=unseeded"], project, check=False)
    finally:
        run(["git", "switch", "--quiet", "main"], project)
        run(["uv", "run", "--locked", "dvc", "checkout", "--quiet"], project)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "reproduce] Error 1" in done.stderr  # 1: it differs (2: it could not run)
    assert "did not reproduce" in done.stderr
    assert "models/model.joblib" in done.stderr
    rows = table_rows(done.stdout)
    assert "DIFFERS" in rows["models/model.joblib"]
    assert rows["test.recall"][-1] == "same"  # the draw changes the file, not the model


def test_bad_refs_exit_non_zero_naming_the_ref_and_the_fix(team: Team) -> None:
    project = team.project
    before = workspace_digest(project)
    unknown = run(["make", "reproduce", "RUN=no-such-run"], project, check=False)
    assert "reproduce] Error 2" in unknown.stderr
    assert "'no-such-run'" in unknown.stderr
    first = run(["git", "rev-list", "--max-parents=0", "HEAD"], project).stdout.strip()
    early = run(["make", "reproduce", f"RUN={first}"], project, check=False)
    assert "reproduce] Error 2" in early.stderr
    assert "predates the pipeline" in early.stderr
    assert "git log -- dvc.lock" in early.stderr
    missing = run(["make", "promote", "EXP=no-such-experiment"], project, check=False)
    assert "promote] Error 2" in missing.stderr
    assert "'no-such-experiment'" in missing.stderr
    assert workspace_digest(project) == before


def validation_metrics(project: Path, commit: str) -> dict[str, Any]:
    """A commit's validation metrics, and under ``interval`` each metric's bootstrap interval."""
    shown = json.loads(run(["git", "show", f"{commit}:reports/metrics.json"], project).stdout)
    return {**shown["validation"], "interval": shown["intervals"]["validation"]}


def test_experiments_are_compared_on_validation_and_the_pick_is_promoted(team: Team) -> None:
    project = team.project
    variations = {
        "c-0.05": "train.logistic_regression.C=0.05",
        "c-4": "train.logistic_regression.C=4",
        "hgb": "train.estimator=hist_gradient_boosting",
    }
    for name, setting in variations.items():
        queue = ["dvc", "exp", "run", "--queue", "-n", name, "-S", setting]
        run(["uv", "run", "--locked", *queue], project)
    run(["make", "queue", "JOBS=2"], project)
    listed = run(["make", "--silent", "experiments"], project).stdout
    assert max(len(line) for line in listed.splitlines()) <= 120
    lines = listed.splitlines()
    assert lines[0].startswith("Experiments on the validation split, ranked by average_precision")
    verdict = ("The policy picks", "The policy keeps")
    end = next(i for i, line in enumerate(lines) if line.startswith(verdict))
    rows = {line.split()[0]: line for line in lines[2:end]}
    assert {"main", *variations} <= rows.keys()
    assert "train.logistic_regression.C=4" in rows["c-4"]

    # Which one the policy should pick, worked out here from each row's committed metrics.
    exps = experiment_refs(project, variations)
    commits = {
        name: run(
            ["git", "rev-parse", f"refs/exps/{exps[name]}" if name in exps else name], project
        ).stdout.strip()
        for name in rows
    }
    measured = {name: validation_metrics(project, commit) for name, commit in commits.items()}

    # The declared rule: the best average precision among the rows that pass; the
    # checked-out commit is kept when the best lies within its interval.
    def merit(name: str) -> tuple[float, float]:
        return measured[name]["average_precision"], measured[name]["precision"]

    passing = [
        name
        for name, values in measured.items()
        if values["recall"] >= 0.8 - 1e-9 and values["precision"] >= 0.2 - 1e-9
    ]
    best = max(passing, key=merit)
    low, high = (measured["main"]["interval"]["average_precision"][end] for end in ("low", "high"))
    kept = "main" in passing and low <= measured[best]["average_precision"] <= high
    expected = "main" if kept else best
    (picked,) = [name for name, line in rows.items() if line.rstrip().endswith("<- pick")]
    assert picked == expected, listed
    if picked != best:
        assert rows[best].rstrip().endswith("best")
        assert "The policy keeps main, the checked-out commit" in listed
    else:
        assert f"The policy picks {picked}" in listed

    promoted = run(["make", "promote", f"EXP={expected}"], project)
    assert f"Promoted {expected} as {MODEL}@v1.0.0 (champion)" in promoted.stdout
    tagged = run(["git", "rev-parse", f"{MODEL}@v1.0.0^0"], project).stdout.strip()
    assert tagged == commits[expected]
    champion = uv_python(
        project,
        "import mlflow\n"
        "client = mlflow.MlflowClient('sqlite:///mlflow.db')\n"
        f"version = client.get_model_version_by_alias({MODEL!r}, 'champion')\n"
        "print(version.version, version.run_id, version.tags['git_tag'])",
    ).split()
    shown = run(["git", "show", f"{tagged}:reports/run.json"], project).stdout
    run_id = json.loads(shown)["run_id"]
    assert champion == ["1", run_id, f"{MODEL}@v1.0.0"]

    # A stricter policy: the next candidate fails the gate, and nothing is registered.
    policy = project / "metrics_policy.yaml"
    original = policy.read_text()
    other = next(name for name in variations if name != expected)
    try:
        policy.write_text(re.sub(r"threshold: 0\.2\b", "threshold: 0.99", original))
        refused = run(["make", "promote", f"EXP={other}"], project, check=False)
    finally:
        policy.write_text(original)
    assert "promote] Error 1" in refused.stderr
    assert "not promoted: precision (guardrail)" in refused.stderr
    assert run(["git", "tag", "--list", f"{MODEL}@*"], project).stdout.split() == [
        f"{MODEL}@v1.0.0"
    ]
    versions = uv_python(
        project,
        "import mlflow\n"
        "client = mlflow.MlflowClient('sqlite:///mlflow.db')\n"
        f"print(len(client.search_model_versions(\"name='{MODEL}'\")))",
    )
    assert versions.strip() == "1"

    # The docs build lists the promoted version on the model card.
    run(["make", "docs"], project)
    card = (project / "site" / "model-card" / "index.html").read_text(encoding="utf-8")
    assert f"{MODEL}@v1.0.0" in card
    assert "(champion)" in card
    assert run_id in card
    assert tagged[:12] in card


def experiment_refs(project: Path, names: dict[str, str]) -> dict[str, str]:
    """The ref (``<baseline>/<name>`` under refs/exps) of each named experiment."""
    listing = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], project).stdout
    refs = {}
    for ref in listing.split():
        name = ref.rsplit("/", 1)[1]
        if name in names:
            refs[name] = ref.removeprefix("refs/exps/")
    return refs

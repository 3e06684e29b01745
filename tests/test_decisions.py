"""From champion to decisions in a generated project: predict, serve, canary, rollback.

One default project (MLflow, binary classification) runs its pipeline and
promotes it, then follows its deployment and monitoring guides
(`docs/architecture/`), running the commands of each section as written: `make
predict` scores the raw test rows and reproduces the test metrics of
`reports/metrics.json` exactly, rescoring is byte for byte the same, MLflow's
registered pyfunc makes the same decisions, one decision is explained,
`make serve` answers a real HTTP client (and names a missing column in a
400), `make monitor` passes the test rows and names a tripled feature and a
collapsed recall, and a second promotion, shown against the champion, is
rolled back to version 1.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from support import (
    commit_all,
    free_port,
    git_init_commit,
    render,
    run,
    tool_env,
    write_user_data,
)

pytestmark = pytest.mark.e2e

MODEL = "claims-fraud-detection"
UV = ["uv", "run", "--locked", "python"]


def guide_commands(project: Path, heading: str, guide: str = "deployment") -> list[str]:
    """The commands of the first shell block under ``## heading`` of a guide (deployment)."""
    page = (project / "docs" / "architecture" / f"{guide}.md").read_text(encoding="utf-8")
    section = page.split(f"\n## {heading}\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, f"no shell block under {heading}"
    return [line for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def follow(project: Path, heading: str, guide: str = "deployment", **replacements: str) -> str:
    """Run the guide's commands under ``heading`` in ``project``; their output."""
    said = ""
    for line in guide_commands(project, heading, guide):
        for old, new in replacements.items():
            line = line.replace(old, new)
        said += run(["sh", "-c", line], project).stdout
    return said


@pytest.fixture(scope="module")
def promoted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default project, run, committed and promoted (v1), with its test rows as a CSV."""
    project = render(tmp_path_factory.mktemp("decisions") / MODEL)
    git_init_commit(project)
    run(["make", "setup"], project)
    run(["make", "repro"], project)
    commit_all(project, "Run the pipeline")
    run(["make", "promote", "EXP=HEAD"], project)
    export = (
        "import pandas\n"
        "pandas.read_parquet('data/interim/test.parquet').to_csv('test-rows.csv', index=False)\n"
    )
    run([*UV, "-c", export], project)
    shutil.copy(project / "test-rows.csv", project / "new-claims.csv")  # the guide's file
    return project


def test_predict_reproduces_the_test_metrics_and_rescoring_is_byte_identical(
    promoted: Path,
) -> None:
    project = promoted
    said = follow(project, "Score a batch")
    assert f"with {MODEL}@v1.0.0" in said
    scored = project / "scored" / "new-claims.csv"
    record = json.loads(scored.with_name(scored.name + ".record.json").read_text("utf-8"))
    assert record["model"]["version"] == f"{MODEL}@v1.0.0"
    assert record["model"]["stage"] == "champion"
    run_record = json.loads((project / "reports" / "run.json").read_text(encoding="utf-8"))
    assert record["model"]["run_id"] == run_record["run_id"]
    assert record["input"]["rows"] == record["output"]["rows"] > 0
    check = (
        "import json, pandas\n"
        "from sklearn import metrics\n"
        "rows = pandas.read_csv('test-rows.csv')\n"
        "out = pandas.read_csv('scored/new-claims.csv')\n"
        "truth, flagged = rows['fraud'] == 1, out['decision'] == 1\n"
        "print(json.dumps({\n"
        "  'recall': metrics.recall_score(truth, flagged),\n"
        "  'precision': metrics.precision_score(truth, flagged),\n"
        "  'roc_auc': metrics.roc_auc_score(truth, out['score']),\n"
        "  'average_precision': metrics.average_precision_score(truth, out['score']),\n"
        "}))\n"
    )
    found = json.loads(run([*UV, "-c", check], project).stdout.splitlines()[-1])
    recorded = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    for name, value in found.items():
        assert round(value, 6) == recorded["test"][name], name
    assert "byte for byte the recorded one" in follow(project, "Trace a decision to its run")
    probe = (
        "import mlflow, numpy, pandas\n"
        "mlflow.set_tracking_uri('sqlite:///mlflow.db')\n"
        f"model = mlflow.pyfunc.load_model('models:/{MODEL}@champion')\n"
        "rows = pandas.read_csv('test-rows.csv').drop(columns=['fraud'])\n"
        "mine = pandas.read_csv('scored/new-claims.csv')['decision'].to_numpy()\n"
        "print(numpy.array_equal(numpy.asarray(model.predict(rows)), mine))\n"
    )
    assert run([*UV, "-c", probe], project).stdout.splitlines()[-1] == "True"


def test_one_decision_is_explained_with_the_columns_that_pushed_its_score(
    promoted: Path,
) -> None:
    said = follow(promoted, "Explain one decision")
    assert f"scored by {MODEL}@v1.0.0" in said
    assert "threshold" in said
    assert "decision" in said
    pushes = said.split("What pushed the score most", 1)[1].splitlines()[2:]
    assert len(pushes) == 5
    raw = said.split("Raw values:", 1)[1].split("Features they became", 1)[0]
    columns = [line.split(":")[0].strip() for line in raw.strip().splitlines()]
    assert len(columns) == 10  # the model's raw feature columns
    assert all(line.split()[0] in columns for line in pushes)


def test_monitor_passes_the_test_rows_and_names_what_drifted_or_collapsed(
    promoted: Path,
) -> None:
    project = promoted
    said = follow(project, "Check a batch", guide="monitoring")
    assert f"against {MODEL}@v1.0.0" in said
    assert "No alert" in said
    folder = project / "reports" / "monitoring"
    first = {name: (folder / name).read_bytes() for name in ("new-claims.json", "new-claims.html")}
    follow(project, "Check a batch", guide="monitoring")
    for name, content in first.items():
        assert (folder / name).read_bytes() == content, f"{name} changed when made again"
    report = json.loads(first["new-claims.json"])
    assert report["performance"]["judged"] is True  # the test rows carry their labels
    assert report["alerts"] == []
    shifted = (
        "import pandas\n"
        "rows = pandas.read_csv('test-rows.csv')\n"
        "rows.assign(claim_amount=rows['claim_amount'] * 3).to_csv('tripled.csv', index=False)\n"
        "rows.assign(fraud=1 - rows['fraud']).to_csv('relabelled.csv', index=False)\n"
        "rows.drop(columns=['region']).to_csv('no-region.csv', index=False)\n"
    )
    run([*UV, "-c", shifted], project)
    tripled = run(["make", "monitor", "INPUT=tripled.csv"], project, check=False)
    assert tripled.returncode != 0
    assert "input drift: claim_amount" in tripled.stderr
    assert "input drift: region" not in tripled.stderr
    relabelled = run(["make", "monitor", "INPUT=relabelled.csv"], project, check=False)
    assert relabelled.returncode != 0
    assert "performance: recall" in relabelled.stderr
    refused = run(["make", "monitor", "INPUT=no-region.csv"], project, check=False)
    assert refused.returncode != 0
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, refused.stderr
    assert "'region'" in errors[0]
    assert "Traceback" not in refused.stderr
    assert not (folder / "no-region.json").exists()
    history = (folder / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["alerts"] > 0 for line in history] == [False, True, True]


def test_bad_input_is_refused_in_one_line_and_writes_nothing(promoted: Path) -> None:
    project = promoted
    (project / "bad.csv").write_text("claim_id,claim_amount\n1,12.5\n", encoding="utf-8")
    done = run(["make", "predict", "INPUT=bad.csv"], project, check=False)
    assert done.returncode != 0
    assert "bad.csv: the model needs columns 'policy_tenure_months'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "bad.predictions.csv").exists()
    asked = ["make", "predict", "INPUT=test-rows.csv", "MODEL=no-such-run"]
    done = run(asked, project, check=False)
    assert "MODEL=no-such-run" in done.stderr
    assert "Traceback" not in done.stderr


def request(url: str, body: bytes | None = None) -> tuple[int, dict, dict]:
    """POST ``body`` as JSON (or GET without one); the status, headers and JSON answer."""
    sent = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(sent, timeout=30) as answer:
            text = answer.read().decode()
            return answer.status, dict(answer.headers), json.loads(text) if text.strip() else {}
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read().decode())


def test_serve_answers_a_real_client_with_the_decisions_of_predict(promoted: Path) -> None:
    project = promoted
    run(["make", "predict", "INPUT=test-rows.csv", "OUTPUT=out/served.csv"], project)
    port = free_port()
    (command,) = guide_commands(project, "Serve")[:1]
    assert command == "make serve PORT=8080"
    server = subprocess.Popen(
        ["make", "serve", f"PORT={port}"],
        cwd=project,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    said = server.stdout.read() if server.stdout else ""
                    pytest.fail(f"make serve did not answer: {said}")
                time.sleep(0.5)
        probe = (
            "import json, pandas\n"
            "rows = pandas.read_csv('test-rows.csv').drop(columns=['fraud']).head(50)\n"
            "print(rows.to_json(orient='split', index=False))\n"
        )
        split = json.loads(run([*UV, "-c", probe], project).stdout.splitlines()[-1])
        body = json.dumps({"dataframe_split": split}).encode()
        status, headers, answer = request(f"{base}/invocations", body)
        assert status == 200, answer
        assert headers["X-Model-Version"] == f"{MODEL}@v1.0.0"
        expected = (project / "out" / "served.csv").read_text(encoding="utf-8").splitlines()[1:51]
        assert answer["predictions"] == [int(line.split(",")[-1]) for line in expected]
        assert len(answer["scores"]) == 50
        records = [dict(zip(split["columns"], row, strict=True)) for row in split["data"][:3]]
        status, _, answer = request(
            f"{base}/invocations", json.dumps({"dataframe_records": records}).encode()
        )
        assert status == 200
        assert len(answer["predictions"]) == 3
        missing = {"columns": split["columns"][1:], "data": [row[1:] for row in split["data"]]}
        status, _, answer = request(
            f"{base}/invocations", json.dumps({"dataframe_split": missing}).encode()
        )
        assert status == 400
        assert repr(split["columns"][0]) in answer["message"]
        status, _, answer = request(f"{base}/invocations", b"{not json")
        assert status == 400
        assert "not JSON" in answer["message"]
        assert request(f"{base}/ping")[0] == 200  # still serving
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_a_second_promotion_shows_its_canary_and_rollback_brings_back_v1(
    promoted: Path,
) -> None:
    project = promoted
    setting = "train.logistic_regression.C=0.1"
    run(["uv", "run", "--locked", "dvc", "exp", "run", "-n", "weaker-c", "-S", setting], project)
    done = run(["make", "promote", "EXP=weaker-c"], project)
    assert f"Canary against {MODEL}@v1.0.0" in done.stdout
    assert "agreement" in done.stdout
    rolled = follow(project, "Roll back")
    assert f"back from {MODEL}@v2.0.0 to {MODEL}@v1.0.0" in rolled
    assert "alias champion" in rolled
    probe = (
        "import mlflow\n"
        "client = mlflow.MlflowClient('sqlite:///mlflow.db')\n"
        f"print(client.get_model_version_by_alias('{MODEL}', 'champion').version)\n"
    )
    assert run([*UV, "-c", probe], project).stdout.splitlines()[-1] == "1"
    done = run(["make", "predict", "INPUT=test-rows.csv", "OUTPUT=out/after.csv"], project)
    assert f"with {MODEL}@v1.0.0" in done.stdout
    run(["make", "docs"], project)
    card = (project / "site" / "model-card" / "index.html").read_text(encoding="utf-8")
    assert f"<code>{MODEL}@v1.0.0</code> (champion)" in card, "the rolled-back champion"
    assert f"<code>{MODEL}@v2.0.0</code> (champion)" not in card
    follow(project, "Fetch a version elsewhere", **{"<repository>": "."})
    lock = yaml.safe_load(run(["git", "show", f"{MODEL}@v1.0.0:dvc.lock"], project).stdout)
    (v1,) = [
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == "models/pipeline.joblib"
    ]
    fetched = hashlib.md5((project / "champion.joblib").read_bytes()).hexdigest()
    assert fetched == v1, "dvc artifacts get --stage champion fetched v1's pipeline"
    refused = run(["make", "rollback"], project, check=False)
    assert refused.returncode != 0
    assert "first promoted version" in refused.stderr


# Each problem type, with a tracker other than MLflow: the labels the model
# decides in, the metric its decisions reproduce, and a setting for a second
# experiment that changes the model a little.
MATRIX = {
    "binary-yes-no": (
        {"include_example": False, "experiment_tracker": "none"},
        "train.logistic_regression.C=0.9",
    ),
    "multiclass": (
        {"problem_type": "multiclass_classification", "experiment_tracker": "none"},
        "train.logistic_regression.C=0.9",
    ),
    "regression": (
        {"problem_type": "regression", "experiment_tracker": "dvclive"},
        "train.hist_gradient_boosting.l2_regularization=0.9",
    ),
}
# The test metrics the decisions (or predictions) reproduce, computed in the project.
REPRODUCE = """
import json, sys
import pandas
from sklearn import metrics
target, kind = sys.argv[1], sys.argv[2]
truth = pandas.read_csv('test-rows.csv')[target]
out = pandas.read_csv('scored.csv', keep_default_na=False)
if kind == 'binary':
    found = {'recall': metrics.recall_score(truth == 'Yes', out['decision'] == 'Yes'),
             'roc_auc': metrics.roc_auc_score(truth == 'Yes', out['score'])}
elif kind == 'multiclass':
    found = {'f1_macro': metrics.f1_score(truth, out['decision'], average='macro')}
else:
    found = {'rmse': metrics.root_mean_squared_error(truth, out['prediction'])}
print(json.dumps({'found': found, 'labels': sorted(map(str, set(out.iloc[:, -1])))[:5]}))
"""


def test_a_train_stage_made_slower_than_the_policy_s_bound_is_flagged_by_name(
    promoted: Path,
) -> None:
    """Last in this module: it changes the project's training code."""
    project = promoted
    committed = json.loads(run(["git", "show", "main:reports/run.json"], project).stdout)
    before = committed["resources"]["train"]["seconds"]
    policy = project / "metrics_policy.yaml"
    text = policy.read_text(encoding="utf-8").replace("min_seconds: 5", "min_seconds: 0.1")
    policy.write_text(text, encoding="utf-8")
    train = next((project / "src").glob("*/stages/train.py"))
    code = train.read_text(encoding="utf-8")
    pause = f"__import__('time').sleep({max(2 * before, 2.0)})"
    slowed = code.replace("\n        main()\n", f"\n        {pause}\n        main()\n")
    assert slowed != code
    train.write_text(slowed, encoding="utf-8")
    run(["make", "repro"], project)
    shown = run(["make", "policy"], project)  # shown, not enforced
    (line,) = [found for found in shown.stdout.splitlines() if "train seconds vs main" in found]
    assert line.rstrip().endswith("FAIL")
    assert "shown, not enforced" in shown.stdout
    policy.write_text(text.replace("enforce: false", "enforce: true"), encoding="utf-8")
    enforced = run(["make", "policy"], project, check=False)
    assert enforced.returncode != 0
    assert "train seconds vs main" in enforced.stderr


@pytest.mark.parametrize("case", list(MATRIX))
def test_each_problem_type_predicts_in_its_labels_and_rolls_back_through_git_tags(
    tmp_path: Path, case: str
) -> None:
    answers, setting = MATRIX[case]
    project = render(tmp_path / MODEL, **answers)
    git_init_commit(project)
    run(["make", "setup"], project)
    target = "fraud"
    if case == "binary-yes-no":  # the user's own table, its target in words
        target = "target"
        raw = project / "data" / "raw" / "dataset.csv"
        write_user_data(raw, "binary_classification", rows=3000)
        text = raw.read_text(encoding="utf-8").splitlines()
        labels = {"0": "No", "1": "Yes"}
        rows = [line.rsplit(",", 1) for line in text[1:]]
        raw.write_text(
            "\n".join([text[0], *(f"{head},{labels[last]}" for head, last in rows)]) + "\n",
            encoding="utf-8",
        )
        policy = project / "metrics_policy.yaml"
        text = policy.read_text(encoding="utf-8")
        policy.write_text(text.replace("positive_label: 1", 'positive_label: "Yes"'), "utf-8")
        run(["uv", "run", "--locked", "dvc", "add", "data/raw/dataset.csv"], project)
    elif case == "multiclass":
        target = "complexity"
    elif case == "regression":
        target = "settlement_amount"
    run(["make", "repro"], project)
    commit_all(project, "Run the pipeline")
    run(["make", "promote", "EXP=HEAD"], project)
    export = (
        "import pandas\n"
        "pandas.read_parquet('data/interim/test.parquet').to_csv('test-rows.csv', index=False)\n"
    )
    run([*UV, "-c", export], project)
    done = run(["make", "predict", "INPUT=test-rows.csv", "OUTPUT=scored.csv"], project)
    assert f"with {MODEL}@v1.0.0" in done.stdout
    kind = case.split("-")[0]
    said = json.loads(run([*UV, "-c", REPRODUCE, target, kind], project).stdout.splitlines()[-1])
    recorded = json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))
    for name, value in said["found"].items():
        assert round(value, 6) == recorded["test"][name], name
    if kind == "binary":
        assert said["labels"] == ["No", "Yes"]
    run(["uv", "run", "--locked", "dvc", "exp", "run", "-n", "second", "-S", setting], project)
    run(["make", "promote", "EXP=second"], project)
    rolled = run(["make", "rollback"], project).stdout
    assert f"back from {MODEL}@v2.0.0 to {MODEL}@v1.0.0" in rolled
    tags = run(["git", "tag", "--list", f"{MODEL}#champion#*"], project).stdout.split()
    assert len(tags) == 3
    done = run(["make", "predict", "INPUT=test-rows.csv", "OUTPUT=again.csv"], project)
    assert f"with {MODEL}@v1.0.0" in done.stdout
    assert (project / "again.csv").read_bytes() == (project / "scored.csv").read_bytes()

"""A user's own table, broken the ways real exports break, in a generated project.

One skeleton project (``include_example=False``) runs its pipeline on good data
and commits the result. Each fault then replaces ``data/raw/dataset.csv``:
``make repro`` must stop with one message on stderr that names the file, the
column and the fix, without a traceback, and the command that message gives
must bring back the last good outputs, byte for byte, losing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import commit_all, git_init_commit, render, run, write_user_data

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("own-data")]

RAW = "data/raw/dataset.csv"
# Everything the good run wrote that a failed prepare stage could lose or change.
OUTPUTS = ("data/interim", "data/processed", "models", "reports", "dvc.lock")
GOOD_HEADER = "customer,amount,tenure,segment,target"


def replace_header(text: str) -> bytes:
    return text.replace(GOOD_HEADER, "customer,amount,target,segment,target", 1).encode()


def unknown_amounts(text: str) -> bytes:
    """Write ``unknown`` in 1% of the amounts (lines 9, 109, ...), as a free-text field might."""
    lines = text.splitlines(keepends=True)
    for number in range(8, len(lines), 100):
        customer, _, rest = lines[number].split(",", 2)
        lines[number] = f"{customer},unknown,{rest}"
    return "".join(lines).encode()


def latin1(text: str) -> bytes:
    """Save the table as Latin-1, with an accented segment on line 4."""
    lines = text.splitlines(keepends=True)
    customer, amount, tenure, _, target = lines[3].split(",")
    lines[3] = f"{customer},{amount},{tenure},détail,{target}"
    return "".join(lines).encode("latin-1")


def header_only(text: str) -> bytes:
    return f"{GOOD_HEADER}\n".encode()


def two_rows_per_class(text: str) -> bytes:
    header, *rows = text.splitlines()
    zeros = [row for row in rows if row.endswith(",0")][:2]
    ones = [row for row in rows if row.endswith(",1")][:2]
    return "\n".join([header, *zeros, *ones, ""]).encode()


def renamed_target(text: str) -> bytes:
    return text.replace(GOOD_HEADER, GOOD_HEADER.replace("target", "label"), 1).encode()


def yes_no_labels(text: str) -> bytes:
    header, *rows = text.splitlines()
    labelled = [row[:-1] + {"0": "no", "1": "yes"}[row[-1]] for row in rows]
    return "\n".join([header, *labelled, ""]).encode()


# fault: (what it does to the good file, what the message must say)
FAULTS: dict[str, tuple[Callable[[str], bytes], list[str]]] = {
    "repeated_column": (
        replace_header,
        ["'target' is columns 3 and 5", "('target.1')", "every name is unique"],
    ),
    "stray_text_in_numbers": (
        unknown_amounts,
        ["column 'amount' is numbers but for 'unknown' on line 9,", "data.categorical"],
    ),
    "empty_file": (lambda text: b"", ["the file is empty"]),
    "not_utf8": (
        latin1,
        ['line 4 has the byte 0xe9 in "', "d\\xe9tail", "Re-save it as UTF-8"],
    ),
    "header_only": (header_only, ["the file has a header but no rows"]),
    "too_few_rows": (
        two_rows_per_class,
        ["too few rows of each class of 'target'", "2 of 0 and 2 of 1", "10 of each class"],
    ),
    "missing_target": (
        renamed_target,
        ["'target' (data.target)", "'segment' and 'label'", "set data.target"],
    ),
    "labels_without_the_positive_label": (
        yes_no_labels,
        [
            "metrics_policy.yaml: evaluation.positive_label is 1",
            "the target column 'target', which holds 'no', 'yes'",
        ],
    ),
}


def snapshot(project: Path) -> dict[str, bytes]:
    """The bytes of every output file, by path."""
    files = {}
    for name in OUTPUTS:
        path = project / name
        for file in [path] if path.is_file() else sorted(path.rglob("*")):
            if file.is_file():
                files[file.relative_to(project).as_posix()] = file.read_bytes()
    return files


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A skeleton project whose pipeline ran on the user's good data, all committed."""
    project = render(
        tmp_path_factory.mktemp("own-data") / "claims-fraud-detection",
        include_example=False,
        experiment_tracker="none",
    )
    git_init_commit(project)
    run(["make", "setup"], project)
    write_user_data(project / RAW, "binary_classification")
    run(["uv", "run", "--locked", "dvc", "add", RAW], project)
    run(["make", "repro"], project)
    commit_all(project, "Run the pipeline on the user's data")
    return project


@pytest.fixture
def good_run(project: Path) -> Iterator[dict[str, bytes]]:
    """The good run's outputs; afterwards, the good data and outputs back in place."""
    good_data = (project / RAW).read_bytes()
    yield snapshot(project)
    (project / RAW).write_bytes(good_data)
    run(["git", "checkout", "--", f"{RAW}.dvc"], project)
    run(["uv", "run", "--locked", "dvc", "checkout", "--force"], project)


@pytest.mark.parametrize("fault", list(FAULTS))
def test_prepare_refuses_the_fault_in_one_message_and_its_fix_restores_the_last_run(
    project: Path, good_run: dict[str, bytes], fault: str
) -> None:
    break_data, expected = FAULTS[fault]
    broken = break_data((project / RAW).read_text(encoding="utf-8"))
    (project / RAW).write_bytes(broken)

    result = run(["make", "repro"], project, check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    (message,) = [line for line in result.stderr.splitlines() if line.startswith(f"{RAW}: ")]
    for words in expected:
        assert words in message, result.stderr
    (fix,) = re.findall(r"`(uv run dvc checkout \w+)`", result.stderr)

    run(fix.split(), project)
    assert snapshot(project) == good_run
    assert (project / RAW).read_bytes() == broken
    # DVC cached the broken table as the new raw data; the good one stays in the cache.
    committed = run(["git", "show", f"HEAD:{RAW}.dvc"], project).stdout
    md5 = re.search(r"md5: (\w+)", committed)
    assert md5
    assert (project / ".dvc" / "cache" / "files" / "md5" / md5[1][:2] / md5[1][2:]).is_file()


@pytest.mark.e2e
def test_a_column_that_gives_the_target_away_is_refused_until_it_is_excluded(
    project: Path, good_run: dict[str, bytes]
) -> None:
    """A field filled in after the fact (here, the outcome of an investigation)."""
    lines = (project / RAW).read_text(encoding="utf-8").splitlines()
    leaked = [f"{lines[0]},investigation_days"]
    for number, line in enumerate(lines[1:]):
        days = 30 + number % 60 if line.endswith(",1") else number % 5
        leaked.append(f"{line},{days}")
    (project / RAW).write_text("\n".join(leaked) + "\n", encoding="utf-8")
    params = project / "params.yaml"
    try:
        run(["make", "repro"], project)
        refused = run(["make", "policy"], project, check=False)
        assert "policy] Error 1" in refused.stderr  # the gate's exit status: a failed check
        assert "probable leak: investigation_days alone (roc_auc)" in refused.stderr
        assert "Traceback" not in refused.stdout + refused.stderr

        text = params.read_text(encoding="utf-8")
        reason = "excluded: {investigation_days: known only after the investigation}"
        params.write_text(text.replace("excluded: {}", reason, 1), encoding="utf-8")
        run(["make", "repro"], project)
        features = (project / "reports" / "features.json").read_text(encoding="utf-8")
        assert "investigation_days" not in features  # it never reached the model
        judged = run(["make", "policy"], project, check=False)
        assert "probable leak" not in judged.stdout + judged.stderr
    finally:
        run(["git", "checkout", "--", "params.yaml", "dvc.lock", "reports"], project)

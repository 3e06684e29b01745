"""The questions are the template's public interface: defaults, validators, `when`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from support import CATALOGUE, QUESTIONS, TEMPLATE_ROOT, render


def answers_of(project: Path) -> dict:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def test_every_question_has_help_and_a_type() -> None:
    for name, spec in QUESTIONS.items():
        assert spec.get("help"), f"{name} has no help text"
        assert spec.get("type") in {"str", "bool", "int", "float"}, name


def test_question_names_match_the_design() -> None:
    assert list(QUESTIONS) == [
        "project_name",
        "project_slug",
        "package_name",
        "include_example",
        "description",
        "author_name",
        "author_email",
        "license",
        "python_version",
        "problem_type",
        "primary_metric",
        "primary_metric_threshold",
        "experiment_tracker",
        "dvc_remote",
        "dvc_remote_url",
        "ci_provider",
        "code_owners",
        "use_docker",
        "use_devcontainer",
        "random_seed",
    ]


def test_defaults_follow_the_design(default_project: Path) -> None:
    answers = answers_of(default_project)
    assert answers["project_slug"] == "claims-fraud-detection"
    assert answers["package_name"] == "claims_fraud_detection"
    assert answers | {"_commit": None, "_src_path": None} == answers | {
        "_commit": None,
        "_src_path": None,
        "license": "MIT",
        "python_version": "3.12",
        "problem_type": "binary_classification",
        "primary_metric": "recall",
        "primary_metric_threshold": 0.8,
        "experiment_tracker": "mlflow",
        "dvc_remote": "local",
        "dvc_remote_url": "../claims-fraud-detection-dvc-storage",
        "ci_provider": "github",
        "use_docker": True,
        "use_devcontainer": True,
        "include_example": True,
        "random_seed": 42,
    }


@pytest.mark.parametrize(
    ("project_name", "slug", "package"),
    [
        ("Claims Fraud Detection", "claims-fraud-detection", "claims_fraud_detection"),
        ("  Détection de Fraude: Sinistres  ", "detection-de-fraude-sinistres", None),
        ('"Quoted" fraud #2 {v1}', "quoted-fraud-2-v1", "quoted_fraud_2_v1"),
        ("2024 Claims -- Œuvre", "claims-oeuvre", "claims_oeuvre"),
        ("Straße München", "strasse-munchen", "strasse_munchen"),
    ],
)
def test_slug_and_package_derive_from_the_name(
    tmp_path: Path, project_name: str, slug: str, package: str | None
) -> None:
    answers = answers_of(render(tmp_path / "p", project_name=project_name))
    assert answers["project_slug"] == slug
    assert answers["package_name"] == (package or slug.replace("-", "_"))


@pytest.mark.parametrize(
    ("problem_type", "metric", "threshold"),
    [
        ("binary_classification", "recall", 0.8),
        ("multiclass_classification", "f1_macro", 0.7),
        ("regression", "r2", 0.5),
    ],
)
def test_primary_metric_defaults_follow_the_problem_type(
    render_project, problem_type: str, metric: str, threshold: float
) -> None:
    answers = answers_of(render_project(problem_type=problem_type))
    assert (answers["primary_metric"], answers["primary_metric_threshold"]) == (metric, threshold)


def test_remote_url_is_not_asked_or_recorded_without_a_remote(render_project) -> None:
    answers = answers_of(render_project(dvc_remote="none"))
    assert "dvc_remote_url" not in answers


def test_devcontainer_is_not_asked_or_recorded_without_docker(render_project) -> None:
    answers = answers_of(render_project(use_docker=False))
    assert "use_devcontainer" not in answers


def test_a_cloud_remote_keeps_its_url(render_project) -> None:
    answers = answers_of(render_project(dvc_remote="s3", dvc_remote_url="s3://bucket/claims"))
    assert answers["dvc_remote_url"] == "s3://bucket/claims"


# Each bad answer must be refused with a message that names the question, and
# copier must write nothing at all.
BAD_ANSWERS = [
    ({"project_name": ""}, "project_name", "must not be empty"),
    ({"project_name": "   "}, "project_name", "must not be empty"),
    ({"project_name": "line\nbreak"}, "project_name", "single line"),
    ({"project_name": "x" * 81}, "project_name", "at most 80"),
    ({"project_slug": "claims fraud"}, "project_slug", "lowercase"),
    ({"project_slug": "../outside"}, "project_slug", "lowercase"),
    ({"project_slug": "claims..fraud"}, "project_slug", "lowercase"),
    ({"project_slug": "Claims"}, "project_slug", "lowercase"),
    ({"project_slug": "claims--fraud"}, "project_slug", "single hyphens"),
    ({"package_name": "class"}, "package_name", "keyword"),
    ({"package_name": "2fast"}, "package_name", "not starting with a digit"),
    ({"package_name": "claims-fraud"}, "package_name", "identifier"),
    ({"package_name": "../evil"}, "package_name", "identifier"),
    ({"package_name": "numpy"}, "package_name", "shadow"),
    ({"author_email": "not-an-email"}, "author_email", "name@example.org"),
    ({"author_email": "a@b"}, "author_email", "name@example.org"),
    ({"author_name": "Ada\tLovelace"}, "author_name", "single line"),
    ({"description": "two\nlines"}, "description", "single line"),
    ({"license": "GPL-3.0"}, "license", "GPL-3.0"),
    ({"python_version": "3.9"}, "python_version", "3.9"),
    ({"problem_type": "clustering"}, "problem_type", "clustering"),
    ({"problem_type": "regression", "primary_metric": "recall"}, "primary_metric", "recall"),
    ({"primary_metric_threshold": 1.5}, "primary_metric_threshold", "between 0 and 1"),
    ({"primary_metric_threshold": -0.1}, "primary_metric_threshold", "between 0 and 1"),
    (
        {"problem_type": "regression", "primary_metric": "r2", "primary_metric_threshold": -0.5},
        "primary_metric_threshold",
        "between 0 and 1",
    ),
    (
        {"problem_type": "regression", "primary_metric": "rmse", "primary_metric_threshold": 0},
        "primary_metric_threshold",
        "positive",
    ),
    ({"experiment_tracker": "tensorboard"}, "experiment_tracker", "tensorboard"),
    ({"dvc_remote": "ftp"}, "dvc_remote", "ftp"),
    ({"dvc_remote": "s3"}, "dvc_remote_url", "required"),
    ({"dvc_remote": "s3", "dvc_remote_url": "gs://bucket"}, "dvc_remote_url", "s3://"),
    ({"dvc_remote": "gcs", "dvc_remote_url": "s3://bucket"}, "dvc_remote_url", "gs://"),
    ({"dvc_remote": "azure", "dvc_remote_url": "azure://"}, "dvc_remote_url", "azure://"),
    ({"dvc_remote": "ssh", "dvc_remote_url": "user@host:/srv"}, "dvc_remote_url", "ssh://"),
    ({"dvc_remote": "local", "dvc_remote_url": "s3://bucket"}, "dvc_remote_url", "not a URL"),
    ({"dvc_remote_url": "../my storage"}, "dvc_remote_url", "spaces"),
    ({"ci_provider": "jenkins"}, "ci_provider", "jenkins"),
    ({"code_owners": "fraud-leads"}, "code_owners", "handles (@name, @org/team) or emails"),
    ({"code_owners": "@a/b, x@y.org"}, "code_owners", "got '@a/b,'"),
    ({"code_owners": "   "}, "code_owners", "at least one owner"),
    ({"random_seed": -1}, "random_seed", "between 0 and 4294967295"),
    ({"random_seed": 2**32}, "random_seed", "between 0 and 4294967295"),
    # Answers that copier's cast to the question's type would silently change.
    ({"random_seed": 1.5}, "random_seed", "whole number"),
    ({"random_seed": True}, "random_seed", "whole number"),
    ({"use_docker": "maybe"}, "use_docker", "true or false"),
    ({"use_docker": 2}, "use_docker", "true or false"),
    ({"use_docker": ""}, "use_docker", "true or false"),
    ({"use_devcontainer": "maybe"}, "use_devcontainer", "true or false"),
    ({"include_example": "sometimes"}, "include_example", "true or false"),
]


@pytest.mark.parametrize(
    ("answers", "question", "message"),
    BAD_ANSWERS,
    ids=[f"{q}-{i}" for i, (_, q, _) in enumerate(BAD_ANSWERS)],
)
def test_bad_answers_are_refused_naming_the_question(
    tmp_path: Path, answers: dict, question: str, message: str
) -> None:
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match=f"[\"']{question}[\"']") as refused:
        render(destination, **answers)
    assert message in str(refused.value)
    assert not destination.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_seed_that_is_not_a_number_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    # Copier casts with int() before any validator runs, so its own message
    # ("invalid literal for int()") is the one users see: no validator can name
    # the question. This guards that the answer is refused all the same.
    destination = tmp_path / "project"
    with pytest.raises(ValueError, match="'abc'"):
        render(destination, random_seed="abc")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("given", "recorded"), [("no", False), ("YES", True), ("off", False), (1, True)]
)
def test_bool_questions_take_the_usual_spellings_of_true_and_false(
    render_project, given: str | int, recorded: bool
) -> None:
    answers = answers_of(render_project(include_example=given, use_devcontainer=given))
    assert (answers["include_example"], answers["use_devcontainer"]) == (recorded, recorded)


def test_bad_answers_cover_every_validated_question() -> None:
    validated = {
        name for name, spec in QUESTIONS.items() if "validator" in spec or "choices" in spec
    }
    refused = {question for _, question, _ in BAD_ANSWERS}
    assert validated <= refused, f"no bad-answer case for {sorted(validated - refused)}"


def test_the_catalogue_is_consistent() -> None:
    """Each problem type's default metric is one it offers, with a threshold of its kind."""
    for kind, spec in CATALOGUE["problem_types"].items():
        assert spec["primary_metric"] in spec["metrics"], kind
        for metric, rule in spec["metrics"].items():
            assert rule["direction"] in {"maximize", "minimize"}, (kind, metric)
            if rule["direction"] == "maximize":
                assert 0 < rule["threshold"] <= 1, (kind, metric)
            else:
                assert rule["threshold"] > 0, (kind, metric)
        assert spec["grid"], kind
    assert set(CATALOGUE["trackers"]) >= {"mlflow", "none"}


def test_readme_documents_every_question_and_choice() -> None:
    """The README's question table lists copier.yml's questions, in order, with their choices."""
    readme = (TEMPLATE_ROOT / "README.md").read_text()
    table = readme.split("## Questions", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in table.splitlines():
        if line.startswith("| `"):
            names, rest = line[2:].split(" |", 1)
            for name in re.findall(r"`(\w+)`", names):
                rows[name] = rest
    assert list(rows) == list(QUESTIONS)
    static = {
        name: list(
            spec["choices"].values() if isinstance(spec["choices"], dict) else spec["choices"]
        )
        for name, spec in QUESTIONS.items()
        if isinstance(spec.get("choices"), (dict, list))
    }
    offered = {
        **static,
        "problem_type": list(CATALOGUE["problem_types"]),
        "experiment_tracker": list(CATALOGUE["trackers"]),
        "primary_metric": [
            m for kind in CATALOGUE["problem_types"].values() for m in kind["metrics"]
        ],
    }
    for name, choices in offered.items():
        row = rows[name]
        if name == "python_version":
            assert f"`{choices[0]}` to `{choices[-1]}`" in row, name
            continue
        missing = [choice for choice in choices if not re.search(rf"\b{re.escape(choice)}\b", row)]
        assert not missing, f"README's row for {name} does not name {missing}"


EXAMPLE_WORDS = re.compile(r"fraud|claim|insur", re.IGNORECASE)


@pytest.mark.parametrize(
    "answers",
    [
        {},
        {"primary_metric": "precision", "primary_metric_threshold": 0.6},
        {"problem_type": "multiclass_classification", "experiment_tracker": "dvclive"},
        {"problem_type": "regression", "primary_metric": "rmse", "ci_provider": "gitlab"},
    ],
    ids=["binary", "binary-precision", "multiclass", "regression"],
)
def test_a_skeleton_does_not_speak_of_the_example(tmp_path: Path, answers: dict) -> None:
    """Without the example, no default, reason, page or test speaks of fraud, claims, insurance."""
    project = render(
        tmp_path / "skeleton", project_name="Churn Model", include_example=False, **answers
    )
    assert answers_of(project)["description"], "the skeleton's description has a neutral default"
    found = []
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project).as_posix()
        # The license's own legal text ("CLAIM, DAMAGES") is not the example's.
        if not path.is_file() or relative == "LICENSE" or relative.startswith(".git/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if EXAMPLE_WORDS.search(line):
                found.append(f"{relative}:{number}: {line.strip()}")
    assert not found, "\n".join(found)

"""The generated documentation site: its pages per answers, its nav, its links and its build."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from support import DEFAULT_RUN, git_init_commit, render, run

MINIMAL = {
    "experiment_tracker": "none",
    "dvc_remote": "none",
    "use_docker": False,
    "include_example": False,
    "ci_provider": "none",
}
COMBINATIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "minimal": MINIMAL,
    "dvclive-s3-regression": {
        "experiment_tracker": "dvclive",
        "dvc_remote": "s3",
        "dvc_remote_url": "s3://claims-bucket/dvc",
        "problem_type": "regression",
    },
    "comet-gcs-multiclass": {
        "experiment_tracker": "comet",
        "dvc_remote": "gcs",
        "dvc_remote_url": "gs://claims-bucket/dvc",
        "problem_type": "multiclass_classification",
        "ci_provider": "gitlab",
    },
    "wandb-azure-no-devcontainer": {
        "experiment_tracker": "wandb",
        "dvc_remote": "azure",
        "dvc_remote_url": "azure://claims/dvc",
        "use_devcontainer": False,
        "primary_metric": "average_precision",
    },
    "neptune-ssh-bitbucket": {
        "experiment_tracker": "neptune",
        "dvc_remote": "ssh",
        "dvc_remote_url": "ssh://dvc@storage.example.org/srv/dvc",
        "ci_provider": "bitbucket",
        "include_example": False,
    },
}
# Pages the build writes itself (docs/hooks/policy_page.py), not rendered by copier.
GENERATED_PAGES = {"metrics-policy.md"}
# The tracker-specific section of the experiments guide, and a command it must show.
TRACKER_SECTIONS = {
    "mlflow": ("## MLflow", "uv run mlflow ui --backend-store-uri sqlite:///mlflow.db"),
    "dvclive": ("## DVCLive", "uv run dvc exp show"),
    "comet": ("## Comet", "uv run comet upload"),
    "wandb": ("## Weights & Biases", "uv run wandb sync"),
    "neptune": ("## Neptune (legacy)", ".neptune/"),
}
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
MAKE_COMMAND = re.compile(r"`make ([a-z-]+)")


@pytest.fixture(scope="module", params=list(COMBINATIONS))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered with one answer combination (read-only)."""
    folder = tmp_path_factory.mktemp(request.param) / "project"
    return render(folder, **COMBINATIONS[request.param])


def answers_of(project: Path) -> dict[str, Any]:
    """The answers the project was rendered with, as copier recorded them."""
    return yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))


def nav_pages(nav: list[Any]) -> Iterator[str]:
    """Every page path named in an MkDocs nav, at any depth."""
    for entry in nav:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from nav_pages(value) if isinstance(value, list) else [value]


def markdown_pages(project: Path) -> dict[str, str]:
    """Every Markdown page under docs/, by path relative to docs/, with its text."""
    docs = project / "docs"
    return {
        page.relative_to(docs).as_posix(): page.read_text(encoding="utf-8")
        for page in docs.rglob("*.md")
    }


def mkdocs_config(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "mkdocs.yml").read_text(encoding="utf-8"))


def test_nav_lists_every_rendered_page_and_nothing_else(project: Path) -> None:
    nav = list(nav_pages(mkdocs_config(project)["nav"]))
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"
    assert set(nav) == set(markdown_pages(project)) | GENERATED_PAGES


def test_rendered_docs_have_no_template_leftovers_or_blank_line_debris(project: Path) -> None:
    files = [*(project / "docs").rglob("*.md"), project / "mkdocs.yml"]
    for file in files:
        text = file.read_text(encoding="utf-8")
        name = file.relative_to(project)
        assert not re.search(r"\{\{|\{%|\{#|%\}|#\}", text), f"Jinja left in {name}"
        assert "\n\n\n" not in text, f"blank-line debris in {name}"
        assert text.endswith("\n"), f"no final newline in {name}"
        assert not text.endswith("\n\n"), f"blank lines at the end of {name}"
        assert not re.search(r"[ \t]+$", text, re.MULTILINE), f"trailing whitespace in {name}"


def test_every_relative_link_points_to_a_page(project: Path) -> None:
    pages = markdown_pages(project)
    known = set(pages) | GENERATED_PAGES
    for page, text in pages.items():
        for target in MARKDOWN_LINK.findall(text):
            if urlsplit(target).scheme or target.startswith("#"):
                continue
            path = (Path(page).parent / target.split("#")[0]).as_posix()
            resolved = Path(*[p for p in path.split("/") if p != "."])
            parts: list[str] = []
            for part in resolved.parts:
                if part == "..":
                    assert parts, f"{page} links outside docs/: {target}"
                    parts.pop()
                else:
                    parts.append(part)
            assert "/".join(parts) in known, f"{page} links to a missing page: {target}"


def test_docs_only_name_make_targets_that_exist(project: Path) -> None:
    targets = set(re.findall(r"^([a-z-]+):", (project / "Makefile").read_text(), re.MULTILINE))
    for page, text in markdown_pages(project).items():
        missing = set(MAKE_COMMAND.findall(text)) - targets
        assert not missing, f"{page} names make targets that do not exist: {missing}"


def test_tracker_section_follows_the_chosen_tracker(project: Path) -> None:
    tracker = answers_of(project)["experiment_tracker"]
    guide = markdown_pages(project)["guides/experiments.md"]
    for name, (heading, command) in TRACKER_SECTIONS.items():
        if name == tracker:
            assert heading in guide
            assert command in guide
        else:
            assert heading not in guide


def test_remote_and_docker_pages_follow_the_answers(project: Path) -> None:
    answers = answers_of(project)
    pages = markdown_pages(project)
    # The team pages add a remote in the stack's bucket and start the stack
    # with docker compose, whatever this project's own remote and Dockerfile.
    team_pages = {"guides/team.md", "decisions/0005-team-stack.md"}
    everything = "\n".join(text for page, text in pages.items() if page not in team_pages)
    has_remote = answers["dvc_remote"] != "none"
    assert ("guides/data-remote.md" in pages) is has_remote
    assert bool(re.search(r"\]\((\.\./)?guides/data-remote\.md", everything)) is has_remote
    if has_remote:
        assert answers["dvc_remote_url"] in pages["guides/data-remote.md"]
    else:
        assert "uv run dvc pull" not in everything
    assert ("guides/containers.md" in pages) is answers["use_docker"]
    assert ("docker" in everything.lower()) is answers["use_docker"]
    if answers["use_docker"]:
        assert ("## Devcontainer" in pages["guides/containers.md"]) is answers["use_devcontainer"]


def test_pages_name_the_project_and_its_metric(project: Path) -> None:
    answers = answers_of(project)
    pages = markdown_pages(project)
    assert pages["index.md"].startswith(f"# {answers['project_name']}\n")
    for page in ("index.md", "decisions/0002-primary-metric.md", "model-card.md"):
        assert f"`{answers['primary_metric']}`" in pages[page], page
    assert f"{answers['primary_metric_threshold']}" in pages["decisions/0002-primary-metric.md"]
    assert f"{answers['package_name']}.stages.train" in pages["index.md"]


def test_architecture_has_a_page_per_module_with_the_four_sections(project: Path) -> None:
    pages = markdown_pages(project)
    for module in (
        "data-collection",
        "preprocessing",
        "exploration",
        "modelling",
        "deployment",
        "monitoring",
    ):
        text = pages[f"architecture/{module}.md"]
        for section in ("## What it does", "## Inputs", "## Outputs", "## Owner"):
            assert section in text, f"{module} has no '{section}' section"
        assert "## Open questions" in text


def test_mkdocs_yml_keeps_awkward_answers_verbatim(tmp_path: Path) -> None:
    answers = {
        "project_name": 'Sinistres: "Fraude" #1 \\ Ünïcode',
        "description": "Flags claims: 'risky' ones # first, \"fast\".",
        "author_name": "Zoë O'Brien: Data \\ Team",
    }
    config = mkdocs_config(render(tmp_path / "project", **answers))
    assert config["site_name"] == answers["project_name"]
    assert config["site_description"] == answers["description"]
    assert config["site_author"] == answers["author_name"]


def test_policy_hook_passes_the_projects_own_ruff(default_project: Path) -> None:
    hooks = default_project / "docs" / "hooks"
    run(["ruff", "check", "--no-cache", hooks], default_project)
    run(["ruff", "format", "--check", "--no-cache", hooks], default_project)


# ------------------------------------------------------------------ end to end


class _Links(HTMLParser):
    """Collect every href and src of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.targets += [value for name, value in attrs if name in {"href", "src"} and value]


def broken_site_links(site: Path) -> list[str]:
    """Internal links of the built site whose target file does not exist."""
    broken = []
    for page in site.rglob("*.html"):
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for target in parser.targets:
            parts = urlsplit(target)
            if parts.scheme or parts.netloc or not parts.path:
                continue
            # 404.html links from the site root: it is served at any depth.
            base = site if parts.path.startswith("/") else page.parent
            resolved = (base / parts.path.lstrip("/")).resolve()
            if resolved.is_dir():
                resolved /= "index.html"
            if not resolved.exists():
                broken.append(f"{page.relative_to(site)} -> {target}")
    return broken


@pytest.fixture(scope="module")
def minimal_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The minimal project after `make setup` and a first `make docs` (no pipeline run)."""
    project = render(tmp_path_factory.mktemp("minimal") / "project", **MINIMAL)
    git_init_commit(project)
    run(["make", "setup"], project)
    run(["make", "docs"], project)
    return project


@pytest.fixture(scope="module")
def built_project(ran_project: Path) -> Path:
    """The default project, its pipeline run, after `make docs` (the site is ignored by git)."""
    run(["make", "docs"], ran_project)
    return ran_project


@pytest.mark.e2e
@DEFAULT_RUN
def test_make_docs_builds_every_nav_page_with_no_broken_link(
    built_project: Path, minimal_site: Path
) -> None:
    for project in (built_project, minimal_site):
        site = project / "site"
        for page in nav_pages(mkdocs_config(project)["nav"]):
            stem = page.removesuffix(".md")
            folder = stem.removesuffix("index") if Path(stem).name == "index" else f"{stem}/"
            assert (site / folder / "index.html").is_file(), f"{page} was not built"
        assert broken_site_links(site) == []


@pytest.mark.e2e
def test_make_docs_builds_with_properdocs_and_the_material_theme(minimal_site: Path) -> None:
    """ProperDocs (decision record 0010) reads mkdocs.yml, named on its command line, quietly."""
    built = run(["make", "docs"], minimal_site)
    output = built.stdout + built.stderr
    assert "properdocs build --strict" in output
    assert "properdocs.yml" not in output  # no notice about the config file's legacy name
    assert "end of life" not in output  # Material's notice, printed under `mkdocs` only
    home = (minimal_site / "site" / "index.html").read_text(encoding="utf-8")
    generator = re.search(r'<meta name="generator" content="([^"]+)"', home)
    assert generator, "the home page names no generator"
    assert "ProperDocs" in generator[1]
    assert "mkdocs-material" in generator[1]
    # The look the config asks for: the light and dark palettes, the code copy
    # button, and the search with its index.
    assert 'data-md-color-scheme="slate"' in home
    assert "content.code.copy" in home
    assert (minimal_site / "site" / "search" / "search_index.json").is_file()


@pytest.mark.e2e
@DEFAULT_RUN
def test_metrics_policy_page_is_generated_from_the_policy_file(built_project: Path) -> None:
    policy = yaml.safe_load((built_project / "metrics_policy.yaml").read_text(encoding="utf-8"))
    page = (built_project / "site" / "metrics-policy" / "index.html").read_text(encoding="utf-8")
    for rule in [policy["primary_metric"], *policy.get("guardrails", [])]:
        assert f"<code>{rule['name']}</code>" in page
        assert f"{rule['threshold']:g}" in page
    assert f"{policy['evaluation']['seed']}" in page

    policy["primary_metric"]["threshold"] = 0.123
    edited = yaml.safe_dump(policy, sort_keys=False)
    original = (built_project / "metrics_policy.yaml").read_text(encoding="utf-8")
    try:
        (built_project / "metrics_policy.yaml").write_text(edited, encoding="utf-8")
        run(["make", "docs"], built_project)
        page = (built_project / "site" / "metrics-policy" / "index.html").read_text("utf-8")
        assert "at least 0.123" in page or "at most 0.123" in page
    finally:
        (built_project / "metrics_policy.yaml").write_text(original, encoding="utf-8")


@pytest.mark.e2e
@DEFAULT_RUN
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (None, "metrics policy not found: metrics_policy.yaml"),
        (
            ("primary_metric:\n", "primary_metric: [\n"),
            "metrics_policy.yaml is not valid YAML (line",
        ),
        (
            ("direction: maximize", "direction: up"),
            "metrics_policy.yaml: primary_metric.direction: 'up' is not one of",
        ),
        (
            ("test_size: 0.2", "test_size: a fifth"),
            "metrics_policy.yaml: evaluation.test_size: 'a fifth' is not of type 'number'",
        ),
    ],
    ids=["missing", "not-yaml", "bad-direction", "wrong-type"],
)
def test_make_docs_fails_clearly_on_a_missing_or_malformed_policy(
    built_project: Path, edit: tuple[str, str] | None, message: str
) -> None:
    """The page reads the policy with the gate's loader: the same schema, the same message."""
    policy = built_project / "metrics_policy.yaml"
    original = policy.read_text(encoding="utf-8")
    try:
        if edit is None:
            policy.unlink()
        else:
            assert edit[0] in original
            policy.write_text(original.replace(edit[0], edit[1], 1), encoding="utf-8")
        result = run(["make", "docs"], built_project, check=False)
        assert result.returncode != 0
        assert f"metrics policy page: {message}" in result.stdout + result.stderr
    finally:
        policy.write_text(original, encoding="utf-8")


@pytest.mark.e2e
@DEFAULT_RUN
@pytest.mark.parametrize(
    "link", ["[gone](no-such-page.md)", "[gone](model-card.md#no-such-section)"]
)
def test_make_docs_fails_on_a_broken_internal_link(built_project: Path, link: str) -> None:
    page = built_project / "docs" / "onboarding.md"
    original = page.read_text(encoding="utf-8")
    try:
        page.write_text(original + f"\nSee {link}.\n", encoding="utf-8")
        result = run(["make", "docs"], built_project, check=False)
        assert result.returncode != 0
        assert link.split("(")[1].rstrip(")") in result.stdout + result.stderr
    finally:
        page.write_text(original, encoding="utf-8")


@pytest.mark.e2e
@DEFAULT_RUN
def test_make_docs_fails_on_a_page_missing_from_the_nav(built_project: Path) -> None:
    record = built_project / "docs" / "decisions" / "0005-unlisted.md"
    record.write_text("# 0005 A record nobody added to the nav\n", encoding="utf-8")
    try:
        result = run(["make", "docs"], built_project, check=False)
        assert result.returncode != 0
        assert "decisions/0005-unlisted.md" in result.stdout + result.stderr
    finally:
        record.unlink()


@pytest.mark.e2e
@DEFAULT_RUN
def test_the_model_card_says_when_no_version_was_promoted(built_project: Path) -> None:
    card = (built_project / "site" / "model-card" / "index.html").read_text(encoding="utf-8")
    assert "No version promoted yet." in card
    assert "<!-- promoted-versions -->" not in card

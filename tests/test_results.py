"""The results a reviewer sees, opened in a real browser, for every problem type.

After the pipeline ran (``ran_project``), ``make docs`` and ``make report`` are
run once per problem type; headless Chromium then opens the model card, the
metrics policy page and ``reports/report.html``, in the light and the dark
theme. The tests read the DOM the browser rendered: the charts are there at
their size, and the metric values are those of ``reports/metrics.json`` with
the verdict the policy gives. Screenshots are kept for a person to look at
(the folder is printed; copied to ``$RESULTS_ARTIFACTS`` when it is set).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from support import PROBLEM_TYPES, REPORT_FILES, run

CHROMIUM = shutil.which("chromium")
PAGES = {
    "model-card": "site/model-card/index.html",
    "metrics-policy": "site/metrics-policy/index.html",
    "report": "reports/report.html",
}
DOCS_PAGES = ["model-card", "metrics-policy"]
# The charts each problem type draws, from the tables its evaluate stage writes.
CHARTS = {
    "binary_classification": {"precision_recall", "roc", "confusion_matrix"},
    "multiclass_classification": {"confusion_matrix"},
    "regression": {"predictions", "residuals"},
}
THEMES = {"light": [], "dark": ["--blink-settings=preferredColorScheme=0"]}
# Runs in the page before the DOM is dumped: what the browser laid out and painted with.
PROBE = """<script>
for (const svg of document.querySelectorAll("svg.results-chart")) {
  const box = svg.getBoundingClientRect();
  svg.dataset.rendered = `${box.width.toFixed(1)}x${box.height.toFixed(1)}`;
  svg.dataset.color = getComputedStyle(svg).color;
}
</script>"""
EVERY_PROBLEM_TYPE = pytest.mark.parametrize("ran_project", PROBLEM_TYPES, indirect=True)
# src/<package>/commands/report/: its modules and the page's markup, a packaged Jinja2
# template (test_render.py's list of generated files leaves them to this one).

pytestmark = pytest.mark.e2e


def chromium(*args: str, user_data: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium with nothing reaching the network."""
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={user_data}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


@dataclass(frozen=True)
class Rendered:
    """A page as the browser rendered it, per theme: the DOM, with the probe's findings."""

    dom: dict[str, str]  # theme -> DOM


@pytest.fixture(scope="module")
def results_project(ran_project: Path) -> Path:
    """The project after one `make docs` and one `make report` (both outputs ignored by git)."""
    run(["make", "docs"], ran_project)
    run(["make", "report"], ran_project)
    status = run(["git", "status", "--porcelain"], ran_project).stdout
    assert status == "", f"make docs or make report left files for git:\n{status}"
    return ran_project


@pytest.fixture(scope="module")
def rendered(
    results_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Rendered]:
    """Each page opened in Chromium in both themes; screenshots kept for a person."""
    if CHROMIUM is None:
        message = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI installs it in .ci/run")
        pytest.skip(message)
    problem_type = yaml.safe_load((results_project / ".copier-answers.yml").read_text())[
        "problem_type"
    ]
    scratch = tmp_path_factory.mktemp(f"browser-{problem_type}")
    shots = scratch / "screenshots"
    shots.mkdir()
    pages = {}
    for name, path in PAGES.items():
        page = results_project / path
        # The probe goes into a copy outside the project; <base> keeps its links working.
        source = page.read_text(encoding="utf-8")
        base = f'<base href="{page.parent.as_uri()}/">'
        probe = scratch / f"{name}.html"
        probe.write_text(
            source.replace("<head>", f"<head>{base}", 1).replace("</body>", f"{PROBE}</body>"),
            encoding="utf-8",
        )
        doms = {}
        for theme, flags in THEMES.items():
            profile = scratch / f"profile-{name}-{theme}"  # fresh: no palette stored
            doms[theme] = chromium(*flags, "--dump-dom", probe.as_uri(), user_data=profile).stdout
            shot = shots / f"{problem_type}-{name}-{theme}.png"
            chromium(
                *flags,
                f"--screenshot={shot}",
                "--window-size=1280,2000",
                page.as_uri(),
                user_data=profile,
            )
            assert shot.stat().st_size > 10_000, f"{shot.name} is blank"
        pages[name] = Rendered(doms)
    print(f"screenshots of the {problem_type} pages: {shots}")
    if os.environ.get("RESULTS_ARTIFACTS"):
        target = Path(os.environ["RESULTS_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, target / shot.name)
    return pages


class _Tables(HTMLParser):
    """Every table of a page, as rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in {"td", "th"}:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in {"td", "th"} and self._cell is not None and self.tables:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables(dom: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(dom)
    return parser.tables


def charts(dom: str) -> dict[str, dict[str, str]]:
    """The attributes of each results chart in the DOM, by chart name."""
    found = {}
    for tag in re.findall(r"<svg\b[^>]*\bclass=\"results-chart\"[^>]*>", dom):
        attributes = dict(re.findall(r'([\w:-]+)="([^"]*)"', tag))
        found[attributes["data-chart"]] = attributes
    return found


def metrics_of(project: Path) -> dict[str, dict[str, float]]:
    return json.loads((project / "reports" / "metrics.json").read_text(encoding="utf-8"))


def verdicts(project: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """What the pages must say per policy rule on the test split: the bound and the verdict.

    Keyed by metric and role: the primary metric, each guardrail, and the
    margin over the dummy baseline (a row of its own).
    """
    rules = yaml.safe_load((project / "metrics_policy.yaml").read_text(encoding="utf-8"))
    measured = metrics_of(project)
    test = measured["test"]
    margin = rules["baseline"]
    baseline = {
        "name": margin["metric"],
        "direction": "maximize",
        "threshold": measured["baseline"]["test"][margin["metric"]] + margin["min_improvement"],
    }
    judged = [("primary", rules["primary_metric"])]
    judged += [("guardrail", rule) for rule in rules["guardrails"]] + [("baseline", baseline)]
    expected = {}
    for role, rule in judged:
        value, threshold = test[rule["name"]], rule["threshold"]
        maximize = rule["direction"] == "maximize"
        passes = value >= threshold if maximize else value <= threshold
        bound = f"{'>=' if maximize else '<='} {threshold:.4f}"
        expected[rule["name"], role] = (bound, "pass" if passes else "FAIL")
    return expected


def problem_type_of(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))
    return answers["problem_type"]


def chart_markup(dom: str, name: str) -> str:
    """The markup of one chart of the DOM."""
    start = dom.index(f'data-chart="{name}"')
    return dom[start : dom.index("</svg>", start)]


def assert_charts_rendered(dom: str, expected: set[str]) -> None:
    """Each expected chart is in the DOM, laid out at its size (or scaled down to fit)."""
    drawn = charts(dom)
    assert set(drawn) == expected
    for name, chart in drawn.items():
        width = float(chart["width"].removesuffix("pt")) * 4 / 3  # CSS px
        height = float(chart["height"].removesuffix("pt")) * 4 / 3
        shown_width, shown_height = map(float, chart["data-rendered"].split("x"))
        assert 0.5 * width <= shown_width <= width + 1, f"{name} is {shown_width} px wide"
        assert shown_height == pytest.approx(shown_width * height / width, abs=2), name


@EVERY_PROBLEM_TYPE
@pytest.mark.parametrize("page", DOCS_PAGES)
def test_docs_pages_draw_the_charts_of_the_results_in_both_themes(
    results_project: Path, rendered: dict[str, Rendered], page: str
) -> None:
    expected = CHARTS[problem_type_of(results_project)]
    colours = set()
    for dom in rendered[page].dom.values():
        assert_charts_rendered(dom, expected)
        colours |= {chart["data-color"] for chart in charts(dom).values()}
    # Text and axes are drawn in the page's text colour, which the theme changes.
    assert len(colours) == 2, colours


@EVERY_PROBLEM_TYPE
@pytest.mark.parametrize("page", DOCS_PAGES)
def test_docs_pages_show_the_committed_metrics_with_the_gates_verdict(
    results_project: Path, rendered: dict[str, Rendered], page: str
) -> None:
    metrics = metrics_of(results_project)
    expected = verdicts(results_project)
    found = tables(rendered[page].dom["light"])
    rows = {
        (row[0], row[1]): row
        for table in found
        for row in table[1:]
        if table[0][:5] == ["metric", "role", "passes when", "validation", "test"]
    }
    measured = {name for name, role in rows if role in {"primary", "guardrail", "baseline", "-"}}
    assert measured == set(metrics["test"])
    for (name, role), row in rows.items():
        if name not in metrics["test"]:
            continue
        _, _, bound, validation, test, interval, dummy, result = row
        value = metrics["test"][name]
        assert validation == f"{metrics['validation'][name]:.4f}", name
        assert test == f"{value:.4f}", name
        assert (bound, result) == expected.get((name, role), ("-", "-")), (name, role)
        ends = metrics["intervals"]["test"].get(name)
        assert interval == (f"[{ends['low']:.4f}, {ends['high']:.4f}]" if ends else "-"), name
        assert dummy == f"{metrics['baseline']['test'][name]:.4f}", name
    # The slice floor and the leak check are checks of their own, and both pass here.
    roles = [role for _, role in rows]
    assert roles.count("leak check") == 1
    assert all(row[-1] == "pass" for (_, role), row in rows.items() if role != "-")
    # The test split per slice, and the feature evidence, each a table of the page.
    per_slice = json.loads((results_project / "reports" / "slices.json").read_text())
    features = json.loads((results_project / "reports" / "features.json").read_text())
    heads = {table[0][0]: table for table in found}
    if per_slice:
        slices_shown = {row[0]: row for row in heads["slice"][1:]}
        for column, values in per_slice.items():
            for value, entry in values.items():
                assert slices_shown[f"{column}={value}"][1] == str(entry["rows"])
    shown_features = {row[0]: row for row in heads["feature"][1:]}
    assert set(shown_features) == set(features["importance"]["columns"])
    for column, found_importance in features["importance"]["columns"].items():
        assert shown_features[column][1] == f"{found_importance['mean']:.4f}"
        assert shown_features[column][3] == f"{features['alone']['columns'][column]:.4f}"
    record = json.loads((results_project / "reports" / "run.json").read_text(encoding="utf-8"))
    text = re.sub(r"<[^>]+>", "", rendered[page].dom["light"])
    assert f"run {record['run_id']}, on commit {record['git_commit'][:12]}" in text


@EVERY_PROBLEM_TYPE
def test_report_overlays_the_baseline_and_compares_the_values(
    results_project: Path, rendered: dict[str, Rendered]
) -> None:
    dom = rendered["report"].dom["light"]
    assert_charts_rendered(dom, CHARTS[problem_type_of(results_project)])
    # The baseline is main, where the run was committed: its values are the workspace's.
    metrics = metrics_of(results_project)
    expected = verdicts(results_project)
    test_table, validation_table = [t for t in tables(dom) if t[0][0] == "metric"][:2]
    assert test_table[0][3:] == [
        "main",
        "workspace",
        "change",
        "interval (workspace)",
        "dummy baseline (workspace)",
        "result (main)",
        "result (workspace)",
    ]
    for split, table in (("test", test_table), ("validation", validation_table)):
        rows = {(row[0], row[1]): row for row in table[1:]}
        measured = {
            name for name, role in rows if role in {"primary", "guardrail", "baseline", "-"}
        }
        assert measured == set(metrics[split])
        for (name, role), row in rows.items():
            if name not in metrics[split]:
                continue  # the slice floor and the leak check
            value = metrics[split][name]
            assert row[3:6] == [f"{value:.4f}", f"{value:.4f}", "+0.0000"], name
            ends = metrics["intervals"][split].get(name)
            assert row[6] == (f"[{ends['low']:.4f}, {ends['high']:.4f}]" if ends else "-"), name
            assert row[7] == f"{metrics['baseline'][split][name]:.4f}", name
            if split == "test":
                verdict = expected.get((name, role), ("-", "-"))[1]
                assert row[8:] == [verdict, verdict], name
    for name in CHARTS[problem_type_of(results_project)]:
        assert ">main<" in chart_markup(dom, name), f"{name} has no baseline series"


@EVERY_PROBLEM_TYPE
def test_report_is_the_same_bytes_when_made_again(results_project: Path, tmp_path: Path) -> None:
    package = yaml.safe_load((results_project / ".copier-answers.yml").read_text())["package_name"]
    again = tmp_path / "report.html"
    run(
        ["uv", "run", "--locked", "python", "-m", f"{package}.commands.report", "--output", again],
        results_project,
    )
    assert again.read_bytes() == (results_project / "reports" / "report.html").read_bytes()


@EVERY_PROBLEM_TYPE
def test_the_report_is_its_modules_and_one_template(results_project: Path) -> None:
    package = yaml.safe_load((results_project / ".copier-answers.yml").read_text())["package_name"]
    folder = results_project / "src" / package / "commands" / "report"
    assert {path.name for path in folder.iterdir() if path.is_file()} == REPORT_FILES

"""MkDocs hook: render the metrics policy page from ``metrics_policy.yaml``.

The policy file is the single source of truth (`make policy` reads it too), so
its page is generated at every build instead of being copied by hand: the
docs can never disagree with the gate. A missing or malformed file stops the
build with a message that names the problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

POLICY_FILENAME = "metrics_policy.yaml"
PAGE_PATH = "metrics-policy.md"
DIRECTIONS = {"maximize": "at least", "minimize": "at most"}
SPLITS = {
    "stratified_holdout": "a stratified hold-out split (class proportions kept in every part)",
    "holdout": "a random hold-out split",
}


def policy_path(config: MkDocsConfig) -> Path:
    """The policy lives at the project root, next to ``mkdocs.yml``."""
    return Path(config.config_file_path).parent / POLICY_FILENAME


def load_policy(path: Path) -> dict[str, Any]:
    """Read the policy and check the keys the page needs, failing with a clear message."""
    if not path.is_file():
        raise PluginError(f"{path} not found: the metrics policy page is built from it")
    try:
        policy = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise PluginError(f"{POLICY_FILENAME} is not valid YAML: {error}") from error
    if not isinstance(policy, dict):
        raise PluginError(f"{POLICY_FILENAME} must hold a mapping at the top level")
    for key in ("problem_type", "primary_metric", "evaluation"):
        if key not in policy:
            raise PluginError(f"{POLICY_FILENAME} has no '{key}' key")
    for rule in [policy["primary_metric"], *(policy.get("guardrails") or [])]:
        check_rule(rule)
    if not isinstance(policy["evaluation"], dict):
        raise PluginError(f"{POLICY_FILENAME}: 'evaluation' must be a mapping")
    return policy


def check_rule(rule: Any) -> None:
    """A rule is a metric name, a direction and a numeric threshold."""
    if not isinstance(rule, dict) or not {"name", "direction", "threshold"} <= rule.keys():
        raise PluginError(
            f"{POLICY_FILENAME}: a metric rule needs name, direction and threshold; got {rule!r}"
        )
    if rule["direction"] not in DIRECTIONS:
        raise PluginError(
            f"{POLICY_FILENAME}: direction of {rule['name']!r} must be maximize or minimize, "
            f"not {rule['direction']!r}"
        )
    if isinstance(rule["threshold"], bool) or not isinstance(rule["threshold"], int | float):
        raise PluginError(f"{POLICY_FILENAME}: threshold of {rule['name']!r} must be a number")


def rule_row(role: str, rule: dict[str, Any]) -> str:
    """One table row: the metric, what passes, and why it is there."""
    passes = f"{DIRECTIONS[rule['direction']]} {rule['threshold']:g}"
    reason = " ".join(str(rule.get("reason", "decides whether a model is better")).split())
    reason = reason.replace("|", r"\|")
    return f"| {role} | `{rule['name']}` | {rule['direction']} | {passes} | {reason} |"


def protocol_prose(evaluation: dict[str, Any]) -> list[str]:
    """The evaluation protocol as sentences, one per item the policy sets."""
    sentences = []
    if "split" in evaluation:
        split = SPLITS.get(evaluation["split"], f"the `{evaluation['split']}` split")
        sizes = [
            f"{evaluation[key]:.0%} of the rows for {part}"
            for key, part in (("test_size", "test"), ("validation_size", "validation"))
            if key in evaluation
        ]
        sentences.append(
            f"- **Split.** Data is divided with {split}"
            + (f", keeping {' and '.join(sizes)}." if sizes else ".")
        )
    if "seed" in evaluation:
        sentences.append(
            f"- **Seed.** The split and every random source use seed `{evaluation['seed']}`."
        )
    if "positive_label" in evaluation:
        sentences.append(
            f"- **Positive class.** Label `{evaluation['positive_label']}` is the positive class."
        )
    if "decision_threshold" in evaluation:
        sentences.append(f"- **Decision threshold.** {evaluation['decision_threshold']}")
    if "data" in evaluation:
        sentences.append(f"- **Data.** {evaluation['data']}")
    return sentences


def render_page(policy: dict[str, Any]) -> str:
    """The whole page, in Markdown."""
    primary = policy["primary_metric"]
    guardrails = policy.get("guardrails") or []
    problem = str(policy["problem_type"]).replace("_", " ")
    lines = [
        "# Metrics policy",
        "",
        f"This page is generated from `{POLICY_FILENAME}` at every docs build: edit that",
        "file, not this page. `make policy` checks `reports/metrics.json` against the same",
        "file, so the page and the gate cannot disagree.",
        "",
        f"Problem type: **{problem}**. A model is acceptable only when `{primary['name']}`",
        "and every guardrail pass on the test split.",
        "",
        "## Metrics and thresholds",
        "",
        "| role | metric | direction | passes when | why |",
        "| --- | --- | --- | --- | --- |",
        rule_row("primary", primary),
        *(rule_row("guardrail", rule) for rule in guardrails),
        "",
        "## Evaluation protocol",
        "",
        *protocol_prose(policy["evaluation"]),
    ]
    regression = policy.get("regression")
    if isinstance(regression, dict) and {"baseline_ref", "max_drop"} <= regression.keys():
        lines += [
            "",
            "## Regression rule",
            "",
            f"A change must not make `{primary['name']}` worse by more than "
            f"{regression['max_drop']:g} compared with the metrics committed on "
            f"`{regression['baseline_ref']}` (`uv run dvc metrics diff "
            f"{regression['baseline_ref']}` shows the difference).",
        ]
    lines += [
        "",
        "## Changing the policy",
        "",
        "Thresholds change through a merge request that edits `metrics_policy.yaml` and adds a",
        "[decision record](decisions/index.md) saying why; never lower a threshold to make a",
        "failing model pass.",
    ]
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated page to the site's files, before the nav is built."""
    try:
        content = render_page(load_policy(policy_path(config)))
    except (KeyError, TypeError, ValueError) as error:
        raise PluginError(f"{POLICY_FILENAME} has an unexpected value: {error!r}") from error
    files.append(File.generated(config, PAGE_PATH, content=content))
    return files


def on_serve(server: Any, config: MkDocsConfig, builder: Any) -> Any:
    """Rebuild the page when the policy changes under `mkdocs serve`."""
    server.watch(str(policy_path(config)))
    return server

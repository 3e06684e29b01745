"""Compare every experiment on the validation split, and pick one as the policy would.

``make experiments`` prints one row per experiment (the workspace when it
differs from its commit, every commit that recorded metrics, and every
finished experiment, queued ones included), ranked by the policy's selection
metric (``selection`` in ``metrics_policy.yaml``): its name, the params it
changed against its baseline, the selection metric and its bootstrap
interval, the primary metric and guardrails, whether it passes the policy
there, and the pick: the best selection metric among the experiments that
pass every check. Rows whose interval holds the best value are marked within
noise of it; with ``within_noise: keep_baseline`` the checked-out commit is
kept when it is one of them.

The rows come from DVC's own JSON (``dvc exp show --json``), the checks from
the policy module, so the table and the gate never disagree. The test split
stays out of the choice; ``make promote`` judges the pick on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..shared import policy, records, tracking
from ..shared.checks import (
    Check,
    compare_resources,
    evaluate_policy,
    failure_summary,
    interval_text,
)
from ..shared.display import MISSING, number, table
from ..shared.paths import METRICS_PATH, PARAMS_PATH, POLICY_FILE, PROJECT_ROOT, RECORD_PATH
from .arguments import failed

if TYPE_CHECKING:
    from ..shared.intervals import Interval

SELECTION_SPLIT = "validation"
MAX_WIDTH = 120
GUIDE = "docs/guides/experiments.md"
WORKSPACE = "workspace"  # the rev DVC gives the working tree
# States of queued experiments that have finished (DVC's executor states).
FINISHED = {"success", "failed"}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One row of the comparison, read from ``dvc exp show --json``."""

    name: str
    rev: str
    baseline: str | None
    params: Mapping[str, Any]
    metrics: Mapping[str, float]
    failed: bool = False
    changed: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    intervals: Mapping[str, Interval] = dataclasses.field(default_factory=dict)
    current: bool = False  # the checked-out commit


@dataclasses.dataclass(frozen=True)
class Ranked:
    """An experiment with the policy's verdict on its validation metrics."""

    experiment: Experiment
    checks: Sequence[Check]

    @property
    def passes(self) -> bool:
        """Whether every check of the policy holds."""
        return bool(self.checks) and all(check.passed for check in self.checks)


@dataclasses.dataclass(frozen=True)
class Pick:
    """The policy's pick, the best selection metric, and the rows within noise of it."""

    chosen: Ranked
    best: Ranked
    within_noise: tuple[Ranked, ...]


class ExperimentsError(Exception):
    """DVC could not list the experiments (reported in one line)."""


def _data(entry: Mapping[str, Any], path: str, key: str) -> Mapping[str, Any]:
    files = (entry.get("data") or {}).get(key) or {}
    return (files.get(path) or {}).get("data") or {}


def split_metrics(metrics: Mapping[str, Any], split: str = SELECTION_SPLIT) -> dict[str, float]:
    """One split's numbers from a parsed metrics file."""
    values = metrics.get(split)
    return policy.numbers(values) if isinstance(values, Mapping) else {}


def _experiment(entry: Mapping[str, Any], name: str, baseline: str | None) -> Experiment:
    metrics = _data(entry, METRICS_PATH, "metrics")
    return Experiment(
        name=name,
        rev=str(entry.get("rev")),
        baseline=baseline,
        params=tracking.flatten(_data(entry, PARAMS_PATH, "params")),
        metrics=split_metrics(metrics),
        failed=entry.get("error") is not None,
        intervals=policy.intervals_of(metrics, SELECTION_SPLIT),
    )


def _results(experiment: Experiment) -> str:
    """What an experiment set and measured, comparable across rows."""
    return json.dumps([experiment.params, experiment.metrics], sort_keys=True, default=str)


def parse_show(
    shown: Sequence[Mapping[str, Any]], head_rev: str | None = None
) -> list[Experiment]:
    """The experiments in the JSON of ``dvc exp show --json``, the commit ``head_rev`` first.

    A commit is a row when it recorded metrics that no row above it holds
    (a commit that changed only code outside the pipeline adds nothing); an
    experiment's commit is listed once, under its own name.
    """
    shown = sorted(shown, key=lambda entry: entry.get("rev") not in {WORKSPACE, head_rev})
    experiment_revs = {
        str(revision.get("rev"))
        for entry in shown
        for group in entry.get("experiments") or []
        for revision in group.get("revs") or []
    }
    found: list[Experiment] = []
    head: Experiment | None = None
    workspace: Experiment | None = None
    for entry in shown:
        rev = str(entry.get("rev"))
        if rev == WORKSPACE:
            workspace = _experiment(entry, WORKSPACE, None)
            continue
        commit = _experiment(entry, str(entry.get("name") or rev[:7]), None)
        commit = dataclasses.replace(commit, current=rev == head_rev)
        head = head or commit
        listed = {_results(row) for row in found}
        if commit.metrics and rev not in experiment_revs and _results(commit) not in listed:
            found.append(commit)
        for group in entry.get("experiments") or []:
            executor = group.get("executor") or {}
            if executor and executor.get("state") not in FINISHED:
                continue  # queued or still running
            for revision in group.get("revs") or []:
                exp_rev = str(revision.get("rev"))
                name = str(revision.get("name") or group.get("name") or exp_rev[:7])
                experiment = _experiment(revision, name, rev)
                found.append(with_changes(experiment, commit))
    # The workspace is a row of its own only while it holds results no row has.
    listed = {_results(experiment) for experiment in found}
    if workspace and head and workspace.metrics and _results(workspace) not in listed:
        found.insert(0, with_changes(dataclasses.replace(workspace, baseline=head.rev), head))
    return found


def show_experiments() -> list[Experiment]:
    """Ask DVC for every experiment of every commit, the checked-out commit first."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "--all-commits"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise ExperimentsError(f"dvc exp show failed: {done.stderr.strip()}")
    head = records.git_state(PROJECT_ROOT)["git_commit"]
    return parse_show(json.loads(done.stdout or "[]"), head)


def with_changes(experiment: Experiment, baseline: Experiment) -> Experiment:
    """The experiment, knowing which params it set differently from its baseline commit."""
    changed = {
        key: value
        for key, value in experiment.params.items()
        if baseline.params.get(key, object()) != value
    }
    return dataclasses.replace(experiment, changed=changed)


def checks(experiment: Experiment, rules: Mapping[str, Any]) -> list[Check]:
    """The policy's checks on an experiment's validation metrics (none for a failed run)."""
    if experiment.failed:
        return []
    return evaluate_policy(dict(rules), dict(experiment.metrics))


def rank(experiments: Sequence[Experiment], rules: Mapping[str, Any]) -> list[Ranked]:
    """Judge every experiment against the policy on its validation metrics."""
    return [Ranked(experiment, checks(experiment, rules)) for experiment in experiments]


def merit(row: Ranked, selection: policy.Selection) -> tuple[float, ...]:
    """How good a row is by the selection rule, larger is better (a missing value is worst)."""
    values = []
    for name, direction in selection.order:
        value = row.experiment.metrics.get(name)
        sign = 1 if direction == "maximize" else -1
        values.append(-math.inf if value is None or math.isnan(value) else sign * value)
    return tuple(values)


def within_noise(row: Ranked, best: Ranked, selection: policy.Selection) -> bool:
    """Whether ``best``'s selection metric lies inside ``row``'s bootstrap interval."""
    value = best.experiment.metrics.get(selection.metric)
    ends = row.experiment.intervals.get(selection.metric)
    return value is not None and ends is not None and ends[0] <= value <= ends[1]


def pick(ranked: Sequence[Ranked], rules: Mapping[str, Any]) -> Pick | None:
    """The experiment the policy picks: the best selection metric among those that pass.

    Equal values go to the tie breaks, in order; a complete tie to the row
    listed first. Rows whose interval holds the best value are within noise
    of it: with ``within_noise: keep_baseline``, the checked-out commit is
    picked when it is one of them, since a change must beat noise to replace it.
    """
    selection = policy.selection_rule(rules)
    passing = [row for row in ranked if row.passes]
    if not passing:
        return None
    best = max(passing, key=lambda row: merit(row, selection))
    noisy = tuple(row for row in passing if row is not best and within_noise(row, best, selection))
    chosen = best
    if selection.within_noise == "keep_baseline":
        chosen = next((row for row in noisy if row.experiment.current), best)
    return Pick(chosen, best, noisy)


def ordered(ranked: Sequence[Ranked], rules: Mapping[str, Any]) -> list[Ranked]:
    """The rows best first: passing ones by the selection rule, then failing, then failed runs."""
    selection = policy.selection_rule(rules)

    def key(row: Ranked) -> tuple[int, tuple[float, ...]]:
        standing = 0 if row.passes else (2 if row.experiment.failed else 1)
        return standing, tuple(-value for value in merit(row, selection))

    return sorted(ranked, key=key)


def _params_text(changed: Mapping[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(changed.items())) or MISSING


def columns(rules: Mapping[str, Any]) -> list[str]:
    """The metrics shown: the selection metric first, then the policy's other metrics."""
    selection = policy.selection_rule(rules)
    names = [rules["primary_metric"]["name"], *(rule["name"] for rule in rules["guardrails"])]
    return [selection.metric, *(name for name in names if name != selection.metric)]


def format_table(ranked: Sequence[Ranked], rules: Mapping[str, Any], chosen: Pick | None) -> str:
    """Render the comparison in at most MAX_WIDTH columns (changed params are cut to fit)."""
    names = columns(rules)
    rows = [["experiment", "changed params", names[0], "interval", *names[1:], "policy", "pick"]]
    for row in ordered(ranked, rules):
        verdict = "failed" if row.experiment.failed else ("pass" if row.passes else "FAIL")
        mark = ""
        if chosen is not None and row is chosen.chosen:
            mark = "<- pick"
        elif chosen is not None and (row is chosen.best or row in chosen.within_noise):
            mark = "best" if row is chosen.best else "noise"
        rows.append(
            [
                row.experiment.name,
                _params_text(row.experiment.changed),
                number(row.experiment.metrics.get(names[0])),
                interval_text(row.experiment.intervals.get(names[0]), digits=3),
                *(number(row.experiment.metrics.get(name)) for name in names[1:]),
                verdict,
                mark,
            ]
        )
    return table(rows, max_width=MAX_WIDTH, squeeze=1)


def recorded_resources(experiment: Experiment) -> dict[str, Any]:
    """Each stage's time and memory in the experiment's run record (``resources``)."""
    if experiment.rev == WORKSPACE:
        record = records.read_record(PROJECT_ROOT / RECORD_PATH)
    else:
        record = records.record_at(experiment.rev)
    return dict((record or {}).get("resources") or {})


def resource_notes(ranked: Sequence[Ranked], rules: Mapping[str, Any]) -> Iterator[str]:
    """Each experiment whose bounded stage grew past the bound over the checked-out commit.

    The policy's ``resources`` section, applied as the gate applies it, with
    the checked-out commit's run record as the baseline.
    """
    rule = rules.get("resources")
    current = next((row for row in ranked if row.experiment.current), None)
    if not rule or current is None:
        return
    before = recorded_resources(current.experiment)
    for row in ranked:
        if row is current:
            continue
        found = compare_resources(rule, recorded_resources(row.experiment), before, "HEAD")
        over = failure_summary(found)
        if over:
            yield f"{row.experiment.name} takes more than the policy allows: {over}."


def report(experiments: Sequence[Experiment], rules: Mapping[str, Any]) -> Iterator[str]:
    """The lines ``make experiments`` prints."""
    ranked = rank(experiments, rules)
    chosen = pick(ranked, rules)
    selection = policy.selection_rule(rules)
    metric = selection.metric
    yield (
        f"Experiments on the {SELECTION_SPLIT} split, ranked by {metric}, "
        f"checked against {POLICY_FILE.name}:"
    )
    yield format_table(ranked, rules, chosen)
    if not selection.declared:
        yield (
            f"{POLICY_FILE.name} declares no selection rule: ranked by its primary metric "
            f"(see {GUIDE})."
        )
    if chosen is None:
        yield "No experiment passes the policy on the validation split: none to pick."
        yield from resource_notes(ranked, rules)
        return
    name = chosen.chosen.experiment.name
    noisy = len(chosen.within_noise)
    if chosen.chosen is not chosen.best:
        yield (
            f"The policy keeps {name}, the checked-out commit: the best {metric}, "
            f"{chosen.best.experiment.name}'s, lies within its interval."
        )
        yield "A change must beat noise to replace what is committed (selection.within_noise)."
    else:
        yield f"The policy picks {name}: the best {metric} among those passing every check."
    if noisy and chosen.chosen is chosen.best:
        yield (
            f"{noisy} other{'s' if noisy > 1 else ''} within noise of it (noise: the {metric} "
            "interval holds its value)."
        )
    if chosen.chosen.experiment.rev == WORKSPACE:
        yield (
            "Commit it (git add dvc.lock reports/ && git commit), then "
            "`make promote EXP=HEAD` judges it on the test split."
        )
    else:
        yield f"`make promote EXP={name}` judges it on the test split."
    yield from resource_notes(ranked, rules)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the comparison (``make experiments``)."""
    parser = argparse.ArgumentParser(
        prog="experiments",
        description="Compare experiments on the validation split against the metrics policy.",
    )
    parser.parse_args(argv)
    try:
        rules = policy.load_policy()
        experiments = show_experiments()
    except (policy.PolicyError, ExperimentsError) as error:
        return failed(error, 2)
    if not experiments:
        print("No experiment has metrics yet: run `make repro` or `dvc exp run` first.")
        return 0
    for line in report(experiments, rules):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make tune``: search the space ``params.yaml`` declares, one DVC experiment per trial.

The ``tune`` section of ``params.yaml`` lists, per estimator, each
hyperparameter's candidates (a list of values, or a range to draw from) and
a budget of trials. A space whose whole grid fits in the budget is tried
whole; a larger one (or one with a range) is sampled, with the project's
seed, so the same section always gives the same trials. Each trial is queued
with ``dvc exp run --queue --set-param ...`` and the queue is run, so every
trial is an experiment recorded once, with its code, data, params, metrics
and tracked run, like any other.

The trials are then ranked as ``make experiments`` ranks experiments (the
policy's selection metric on the validation split, with its interval),
beside the checked-out commit they must beat beyond noise, the pick is
named, and the search (its space, its trials and their results) is written
to ``reports/tune.json``: commit it, so a reviewer sees what was tried, not
only what won.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..shared import policy
from ..shared.params import Params, Range, Tune, load_params
from ..shared.paths import TUNE_FILE, shown
from . import experiments, queue
from .arguments import failed

# Significant digits of a value drawn from a range: short enough to read and
# to pass to `dvc exp run -S`, and the same on every machine.
DIGITS = 4
Trial = dict[str, Any]  # "train.<estimator>.<name>" (and "train.estimator") to a value


class TuneError(Exception):
    """The search cannot run (reported in one line)."""


def grid(tune: Tune) -> list[Trial] | None:
    """Every combination of the space's listed values, or ``None`` when a range is in it."""
    trials = []
    for estimator, settings in tune.space.items():
        if any(isinstance(values, Range) for values in settings.values()):
            return None
        names = list(settings)
        for combination in itertools.product(*(settings[name] for name in names)):
            trial = {"train.estimator": estimator}
            trial.update(
                {
                    f"train.{estimator}.{name}": value
                    for name, value in zip(names, combination, strict=True)
                }
            )
            trials.append(trial)
    return trials


def drawn(candidates: Sequence[Any] | Range, rng: np.random.Generator) -> Any:
    """One value of a hyperparameter: a listed one, or one drawn in its range."""
    if not isinstance(candidates, Range):
        return candidates[int(rng.integers(len(candidates)))]
    if candidates.log:
        value = math.exp(rng.uniform(math.log(candidates.low), math.log(candidates.high)))
    else:
        value = rng.uniform(candidates.low, candidates.high)
    return float(f"{value:.{DIGITS}g}")


def trials(tune: Tune, seed: int) -> list[Trial]:
    """The search's trials: the whole grid when it fits the budget, else a seeded sample.

    A sample takes the estimators in turn and draws each hyperparameter, and
    never repeats a trial; it stops at the budget, or when the space has no
    new trial left to draw.
    """
    whole = grid(tune)
    if whole is not None and len(whole) <= tune.trials:
        return whole
    rng = np.random.default_rng(seed)
    found: list[Trial] = []
    seen: set[str] = set()
    estimators = itertools.cycle(tune.space)
    attempts = 0
    while len(found) < tune.trials and attempts < 100 * tune.trials:
        attempts += 1
        estimator = next(estimators)
        trial: Trial = {"train.estimator": estimator}
        for name, candidates in tune.space[estimator].items():
            trial[f"train.{estimator}.{name}"] = drawn(candidates, rng)
        key = json.dumps(trial, sort_keys=True)
        if key not in seen:
            seen.add(key)
            found.append(trial)
    return found


def search_id(tune: Tune, seed: int) -> str:
    """A short name for the search: the same section and seed always give the same one."""
    text = json.dumps([tune.model_dump(mode="json"), seed], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def set_params(trial: Trial) -> list[str]:
    """The trial as ``dvc exp run`` arguments (``-S key=value``, the value as YAML reads it)."""
    return [arg for key, value in trial.items() for arg in ("-S", f"{key}={as_yaml(value)}")]


def as_yaml(value: Any) -> str:
    """A value as ``dvc exp run -S`` reads it: text as it is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def dvc(*args: str) -> None:
    """Run a DVC command, its output relayed (:func:`.queue.relayed`); raise when it fails."""
    status = queue.dvc(*args)
    if status != 0:
        raise TuneError(f"`dvc {' '.join(args)}` failed (exit status {status})")


def run_trials(found: Sequence[Trial], prefix: str, jobs: int) -> list[str]:
    """Queue every trial under its name, then run the queue, ``jobs`` at a time."""
    names = [f"{prefix}-{number}" for number in range(1, len(found) + 1)]
    for name, trial in zip(names, found, strict=True):
        dvc("exp", "run", "--queue", "--quiet", "--name", name, *set_params(trial))
    dvc("exp", "run", "--run-all", "--jobs", str(jobs))
    return names


def results(
    names: Sequence[str],
    found: Sequence[Trial],
    ranked: Sequence[experiments.Ranked],
    rules: Mapping[str, Any],
) -> Iterator[dict[str, Any]]:
    """Each trial's result on the validation split, as ``make experiments`` judged it."""
    by_name = {judged.experiment.name: judged for judged in ranked}
    selection = policy.selection_rule(rules)
    for name, trial in zip(names, found, strict=True):
        judged = by_name.get(name)
        row = judged.experiment if judged else None
        ends = row.intervals.get(selection.metric) if row else None
        yield {
            "name": name,
            "params": trial,
            "status": "missing" if row is None else ("failed" if row.failed else "done"),
            "passes": bool(judged and judged.passes),
            selection.metric: row.metrics.get(selection.metric) if row else None,
            "interval": list(ends) if ends else None,
        }


def write_record(record: dict[str, Any]) -> None:
    """``reports/tune.json``: the search's space, seed, trials and results, and the pick."""
    TUNE_FILE.parent.mkdir(parents=True, exist_ok=True)
    TUNE_FILE.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def tune(params: Params, rules: Mapping[str, Any], jobs: int) -> int:
    """Run the search, rank the trials, name the pick; return the exit status."""
    if params.tune is None:
        raise TuneError(
            "params.yaml has no tune section: add one (a new project's params.yaml shows "
            "the format: tune.trials and tune.space)"
        )
    found = trials(params.tune, params.seed)
    prefix = f"tune-{search_id(params.tune, params.seed)}"
    print(f"Search {prefix}: {len(found)} trials, {jobs} at a time")
    names = run_trials(found, prefix, jobs)
    # The trials, and the checked-out commit they must beat beyond noise.
    rows = [row for row in experiments.show_experiments() if row.name in set(names) or row.current]
    ranked = experiments.rank(rows, rules)
    chosen = experiments.pick(ranked, rules)
    print(experiments.format_table(ranked, rules, chosen))
    pick = chosen.chosen.experiment.name if chosen else None
    write_record(
        {
            "search": prefix,
            "seed": params.seed,
            "space": params.tune.model_dump(mode="json"),
            "selection": policy.selection_rule(rules).metric,
            "trials": list(results(names, found, ranked, rules)),
            "pick": pick,
        }
    )
    print(f"The search, its trials and their results: {shown(TUNE_FILE)} (commit it).")
    if pick is None:
        print("No trial passes the policy on the validation split: none to pick.")
        return 1
    if pick not in names:
        print(f"No trial beats {pick}, the checked-out commit, beyond noise: the policy keeps it.")
        return 0
    print(f"The policy picks {pick}; `make promote EXP={pick}` judges it on the test split.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``make tune``."""
    parser = argparse.ArgumentParser(
        prog="tune", description="Search the space params.yaml declares, one experiment per trial."
    )
    parser.add_argument("--jobs", type=int, default=2, help="trials run at the same time")
    args = parser.parse_args(argv)
    params = load_params()
    try:
        rules = policy.load_policy()
        return tune(params, rules, args.jobs)
    except (policy.PolicyError, TuneError, experiments.ExperimentsError) as error:
        return failed(error, 2)


if __name__ == "__main__":
    sys.exit(main())

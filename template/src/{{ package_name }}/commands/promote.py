"""Promote an experiment: judge it on the test split, and register its model only if it passes.

``make promote EXP=<ref>`` takes a DVC experiment name (or a commit, tag or
run id) and:

1. finds its commit and run record;
2. runs the metrics gate on the test metrics committed there, with the
   regression rule against the policy's baseline;
3. when every check passes, shows how the challenger's decisions on the test
   split differ from the current champion's (the canary, kept with the
   promotion);
4. registers the run's inference pipeline in the tracker's model registry
   where there is one (MLflow: a new version of the registered model, with
   its signature, alias ``champion``), and tags the commit in GTO's format
   (:mod:`..shared.registry`): the version ``<model>@v<N>.0.0`` and the
   stage ``<model>#champion#<K>``;
5. when a check fails, refuses, prints why and changes nothing.

The model's name and file come from the ``artifacts`` section of
``dvc.yaml``, where GTO and DVC read them too. The workspace is left as it
is: ``git merge --ff-only <model>@v<N>.0.0`` (or ``dvc exp apply``) brings
the promoted experiment into the branch, and the docs' model card lists
every promoted version. ``make rollback`` hands the stage back.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..shared import checks, inference, policy, records, registry, tracking
from ..shared.display import number
from ..shared.git import show_file
from ..shared.paths import (
    FEATURES_PATH,
    INTERIM_DATA_DIR,
    METRICS_PATH,
    PROJECT_ROOT,
    SLICES_PATH,
    in_repository,
)
from ..shared.splits import read_split, split_file
from .arguments import failed, ref_from


class PromoteError(Exception):
    """The experiment cannot be promoted as asked (reported in one line)."""


def gate(
    commit: str, root: Path = PROJECT_ROOT
) -> tuple[list[checks.Check], str, dict[str, float]]:
    """Run the metrics policy on the test metrics committed at ``commit``.

    Returns the checks, a note when the regression rule was skipped, and the metrics.
    """
    rules = policy.load_project_policy(root)
    text = show_file(root, commit, METRICS_PATH)
    if text is None:
        raise PromoteError(f"commit {commit[:12]} has no {METRICS_PATH}")
    try:
        beside = {
            Path(path).name: show_file(root, commit, path) for path in (SLICES_PATH, FEATURES_PATH)
        }
        measured = policy.parse_measured(text, f"{METRICS_PATH} at {commit[:12]}", beside=beside)
    except policy.PolicyError as error:
        raise PromoteError(str(error)) from None
    ref = rules["regression"]["baseline_ref"]
    verdicts, note = checks.gate_checks(rules, measured, root / METRICS_PATH, ref)
    return verdicts, note, dict(measured.metrics)


def canary(commit: str, path: str, name: str, root: Path = PROJECT_ROOT) -> dict[str, Any]:
    """How the challenger at ``commit`` decides the test split unlike the champion; say it.

    Both inference pipelines score the workspace's test split
    (``data/interim/test.parquet``); an empty result when there is no
    champion yet, or nothing to score.
    """
    current = registry.champion(name, root)
    folder = root / in_repository(INTERIM_DATA_DIR)
    test = split_file("test", folder)
    if current is None or not test.is_file():
        return {}
    champion_model, _ = registry.pipeline_at(current.commit, path, root)
    challenger, _ = registry.pipeline_at(commit, path, root)
    rows = read_split("test", folder, text_as_categories=True)
    wanted = {**inference.columns(champion_model), **inference.columns(challenger)}
    missing = [column for column in wanted if column not in rows.columns]
    if missing:
        print(f"Canary skipped: the test split lacks {', '.join(missing)}.")
        return {}
    found = inference.compare(
        inference.predict(champion_model, rows), inference.predict(challenger, rows)
    )
    found["champion"] = current.tag
    print(f"Canary against {current.tag} on the test split ({len(rows)} rows):")
    print(canary_text(found))
    return found


def canary_text(found: dict[str, Any]) -> str:
    """The canary's figures as lines to print."""
    if "agreement" not in found:
        return (
            f"  mean absolute change {number(found['mean_absolute_change'])}, "
            f"largest {number(found['largest_change'])}"
        )
    shares = [
        f"{label} {found['decisions_before'][label]:.1%} -> {found['decisions_after'][label]:.1%}"
        for label in found["decisions_after"]
    ]
    rows = ", ".join(map(str, found["changed_rows"])) + (", ..." if found["changed"] > 10 else "")
    return (
        f"  agreement {found['agreement']:.1%}; {found['changed']} rows change side"
        + (f" (rows {rows})" if rows else "")
        + f"\n  decisions: {'; '.join(shares)}"
    )


def promote(ref: str, root: Path = PROJECT_ROOT) -> int:
    """Promote the experiment ``ref`` names; return the exit status."""
    try:
        commit, record = records.find_run(ref, root)
    except records.RunNotFoundError as error:
        raise PromoteError(str(error)) from None
    name, path = registry.model_artifact(root)
    known = registry.versions(name, root)
    already = [version for version in known if version.commit == commit]
    if already:
        print(f"{ref} is already promoted: {already[-1].tag} (commit {commit[:12]}).")
        return 0
    verdicts, note, metrics = gate(commit, root)
    print(f"Gate for {ref} (commit {commit[:12]}) on the {policy.GATE_SPLIT} split:")
    refused = checks.show(verdicts, note)
    if refused:
        print(f"not promoted: {refused}", file=sys.stderr)
        return 1
    compared = canary(commit, path, name, root)
    number = max((version.number for version in known), default=0) + 1
    version_tag = f"{name}@v{number}.0.0"
    run_id = str(record.get("run_id") or "")
    registered = None
    if run_id and record.get("tracker") == tracking.TRACKER:
        tags = {
            "git_commit": commit,
            "git_tag": version_tag,
            "content_key": str(record.get("content_key")),
        }
        try:
            registered = tracking.register_model(run_id, name, registry.STAGE, tags)
        except tracking.TrackingError as error:
            raise PromoteError(f"the model registry refused run {run_id}: {error}") from None
    details = {
        "run_id": run_id,
        "experiment": records.experiment_of(commit, root) or record.get("experiment"),
        "path": path,
        policy.GATE_SPLIT: metrics,
        "canary": compared,
        "registry": registered,
    }
    summary = f"Promote {name} v{number}.0.0 to {registry.STAGE}"
    version = registry.Version(version_tag, number, commit, details)
    registry.create_tag(
        root, version_tag, commit, f"{summary}\n\n{json.dumps(details, sort_keys=True)}"
    )
    stage_tag = registry.assign(
        name, version, f"Assign {registry.STAGE} to {name} v{number}.0.0", root
    )
    print(f"Promoted {ref} as {version_tag} ({registry.STAGE}), commit {commit[:12]}.")
    print(registered or f"No model registry in {tracking.TRACKER}: the git tags are the registry.")
    experiment = records.experiment_of(commit, root)
    bring = f"git merge --ff-only {version_tag}" + (
        f" (or dvc exp apply {experiment})" if experiment else ""
    )
    print(f"Share it: git push origin {version_tag} '{stage_tag}'")
    print(f"Bring it into your branch: {bring}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Promote an experiment (``make promote EXP=<name>``)."""
    description = "Judge an experiment on the test split; register its model if it passes."
    ref = ref_from(argv, "promote", description)
    try:
        return promote(ref)
    except (PromoteError, policy.PolicyError, registry.RegistryError) as error:
        return failed(error, 2)


if __name__ == "__main__":
    sys.exit(main())

"""Promote an experiment: judge it on the test split, and register its model only if it passes.

``make promote EXP=<ref>`` takes a DVC experiment name (or a commit, tag or
run id) and:

1. finds its commit and run record;
2. runs the metrics gate on the test metrics committed there, with the
   regression rule against the policy's baseline;
3. when every check passes, tags that commit in GTO's format, the version
   ``<model>@v<N>.0.0`` and the stage ``<model>#champion#<N>``, and registers
   the run's model in the tracker's model registry where there is one
   (MLflow: a new version of the registered model, alias ``champion``);
4. when a check fails, refuses, prints why and changes nothing.

The model's name and file come from the ``artifacts`` section of
``dvc.yaml``, where GTO and DVC read them too. The workspace is left as it
is: ``git merge --ff-only <model>@v<N>.0.0`` (or ``dvc exp apply``) brings
the promoted experiment into the branch, and the docs' model card lists
every promoted version.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..shared import checks, policy, records, tracking
from ..shared.git import git, show_file
from ..shared.lock import read_yaml
from ..shared.paths import (
    DVC_YAML_FILE,
    FEATURES_PATH,
    METRICS_PATH,
    PROJECT_ROOT,
    SLICES_PATH,
)
from .arguments import failed, ref_from

STAGE = "champion"


class PromoteError(Exception):
    """The experiment cannot be promoted as asked (reported in one line)."""


@dataclass(frozen=True)
class Version:
    """A promoted version, read back from its git tag."""

    tag: str
    number: int
    commit: str
    details: dict[str, Any]


def model_artifact(root: Path = PROJECT_ROOT) -> tuple[str, str]:
    """The name and path of the model declared in ``dvc.yaml``'s ``artifacts``."""
    declared = (read_yaml(root / DVC_YAML_FILE.name) or {}).get("artifacts") or {}
    for name, artifact in declared.items():
        if isinstance(artifact, dict) and artifact.get("type") == "model":
            return str(name), str(artifact.get("path"))
    raise PromoteError(
        f"{DVC_YAML_FILE.name} declares no artifact of type model under 'artifacts'"
    )


def versions(name: str, root: Path = PROJECT_ROOT) -> list[Version]:
    """Every promoted version of ``name``, oldest first, with the details its tag holds."""
    listed = git(
        root,
        "for-each-ref",
        f"refs/tags/{name}@v*",
        "--format=%(refname:short)%09%(*objectname)%09%(contents:body)%00",
    )
    found = []
    for entry in listed.stdout.split("\0"):
        parts = entry.strip("\n").split("\t", 2)
        match = re.fullmatch(rf"{re.escape(name)}@v(\d+)\.0\.0", parts[0])
        if match is None or len(parts) < 2:
            continue
        try:
            details = json.loads(parts[2]) if len(parts) > 2 and parts[2].strip() else {}
        except json.JSONDecodeError:
            details = {}
        found.append(Version(parts[0], int(match.group(1)), parts[1], details))
    return sorted(found, key=lambda version: version.number)


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


def _tag(root: Path, tag: str, commit: str, message: str) -> None:
    done = git(root, "tag", "--annotate", tag, commit, "--message", message)
    if done.returncode != 0:
        raise PromoteError(f"git could not create tag {tag}: {done.stderr.strip()}")


def promote(ref: str, root: Path = PROJECT_ROOT) -> int:
    """Promote the experiment ``ref`` names; return the exit status."""
    try:
        commit, record = records.find_run(ref, root)
    except records.RunNotFoundError as error:
        raise PromoteError(str(error)) from None
    name, path = model_artifact(root)
    known = versions(name, root)
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
    number = max((version.number for version in known), default=0) + 1
    version_tag, stage_tag = f"{name}@v{number}.0.0", f"{name}#{STAGE}#{number}"
    run_id = str(record.get("run_id") or "")
    details = {
        "run_id": run_id,
        "experiment": records.experiment_of(commit, root) or record.get("experiment"),
        "path": path,
        policy.GATE_SPLIT: metrics,
    }
    summary = f"Promote {name} v{number}.0.0 to {STAGE}"
    _tag(root, version_tag, commit, f"{summary}\n\n{json.dumps(details, sort_keys=True)}")
    _tag(root, stage_tag, commit, f"Assign {STAGE} to {name} v{number}.0.0")
    registered = None
    if run_id and record.get("tracker") == tracking.TRACKER:
        tags = {
            "git_commit": commit,
            "git_tag": version_tag,
            "content_key": str(record.get("content_key")),
        }
        try:
            registered = tracking.register_model(run_id, name, STAGE, tags)
        except tracking.TrackingError as error:
            git(root, "tag", "--delete", version_tag, stage_tag)
            raise PromoteError(f"the model registry refused run {run_id}: {error}") from None
    print(f"Promoted {ref} as {version_tag} ({STAGE}), commit {commit[:12]}.")
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
    except (PromoteError, policy.PolicyError) as error:
        return failed(error, 2)


if __name__ == "__main__":
    sys.exit(main())

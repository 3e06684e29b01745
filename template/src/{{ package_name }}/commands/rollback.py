"""Roll the champion back: ``make rollback`` hands the stage to the previous version.

The champion moves from the version that holds it to the promoted version
just below it (``v3`` to ``v2``): a new stage tag ``<model>#champion#<K>``
on that version's commit, as GTO reads it, and, where the tracker has a model
registry, its ``champion`` alias. Nothing is deleted, so the tags keep the
whole history; ``make predict`` and ``make serve`` use the version the stage
points at, and their records say which. With nothing to go back to (no
champion, or the first version holds it), it refuses and changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..shared import registry, tracking
from ..shared.paths import PROJECT_ROOT
from .arguments import failed


def rollback(root: Path = PROJECT_ROOT) -> int:
    """Point the champion at the version before the one holding it; return the exit status."""
    name, _ = registry.model_artifact(root)
    current = registry.champion(name, root)
    if current is None:
        raise registry.RegistryError(
            f"no version of {name} holds the {registry.STAGE} stage: nothing to roll back "
            "(make promote EXP=... promotes one)"
        )
    earlier = [found for found in registry.versions(name, root) if found.number < current.number]
    if not earlier:
        raise registry.RegistryError(
            f"{current.tag} is the first promoted version of {name}: there is no earlier "
            "version to roll back to"
        )
    target = earlier[-1]
    described = None
    if target.details.get("registry"):
        try:
            described = tracking.assign_alias(name, registry.STAGE, target.tag)
        except tracking.TrackingError as error:
            raise registry.RegistryError(f"the model registry refused: {error}") from None
    message = f"Roll {registry.STAGE} of {name} back from {current.tag} to {target.tag}"
    stage_tag = registry.assign(name, target, message, root)
    print(f"{message} (commit {target.commit[:12]}): {stage_tag}.")
    if described:
        print(described)
    print(f"Share it: git push origin '{stage_tag}'")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Roll the champion back (``make rollback``)."""
    parser = argparse.ArgumentParser(
        prog="rollback", description="Point the champion back at the previous promoted version."
    )
    parser.parse_args(argv)
    try:
        return rollback()
    except registry.RegistryError as error:
        return failed(error, 2)


if __name__ == "__main__":
    sys.exit(main())

"""What each stage of a run took: its wall time and peak memory.

Each stage's ``main`` runs inside :func:`recorded`, which, when the stage
succeeds, writes its figures to ``reports/.resources.json``: a scratch file of
the workspace (git ignores it), one entry per stage, the last run of each.
The evaluate stage, which records the run, copies them into
``reports/run.json`` under ``resources``, with its own figures so far
(:func:`for_record`), and those are the figures the scratch file keeps for
it too: what the gate reads from the workspace compares like with like
with what a committed record holds. The policy's ``resources`` section bounds a regression
against the record committed at the baseline ref (:mod:`.checks`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .paths import RESOURCES_FILE

# The stage's clock starts when its process imports this module (the stages
# package does, before a stage's own imports).
START = time.perf_counter()


def usage() -> dict[str, float]:
    """This process's wall time so far (seconds) and peak resident memory (MB)."""
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        peak = 0.0
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak /= 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return {"seconds": round(time.perf_counter() - START, 3), "peak_mb": round(peak, 1)}


def read(path: Path = RESOURCES_FILE) -> dict[str, Any]:
    """The figures each stage left in the workspace (none when no stage ran here)."""
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


# Stages of this process whose figures went into the run record (for_record).
RECORDED: dict[str, dict[str, float]] = {}


def keep(found: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@contextmanager
def recorded(stage: str, path: Path = RESOURCES_FILE) -> Generator[None]:
    """Run a stage's body; when it succeeds, keep its figures under ``stage``.

    A stage that recorded the run keeps the figures the record holds.
    """
    yield
    keep({**read(path), stage: RECORDED.pop(stage, None) or usage()}, path)


def for_record(stage: str, path: Path = RESOURCES_FILE) -> dict[str, Any]:
    """Every stage's figures for the run record, ``stage`` (the recording one) so far."""
    RECORDED[stage] = usage()
    return {**read(path), stage: RECORDED[stage]}

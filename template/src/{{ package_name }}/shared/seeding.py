"""Seeding: what makes a stage's random draws the same on every run."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python's and NumPy's global generators and return a fresh ``Generator``.

    Prefer passing the returned generator (or ``seed`` itself, as
    ``random_state``) explicitly: global state is only seeded as a safety net
    for libraries that still read it. NumPy is imported here, by the stages
    that seed, not by ``make verify`` or the tracker's check before a run.
    """
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - the legacy global state, on purpose
    return np.random.default_rng(seed)

"""Where things live, and the parameters each pipeline stage reads.

Every stage reads only its own section of ``params.yaml`` through
:func:`load_params`, so DVC knows exactly which parameters a stage depends on
and reruns it only when one of them changes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PARAMS_FILENAME = "params.yaml"


def find_project_root(start: Path | None = None) -> Path:
    """Return the nearest folder at or above ``start`` that holds ``params.yaml``.

    Stages run from the project root under DVC, but notebooks and ad-hoc scripts
    often run from a subfolder; searching upwards makes both work.
    """
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / PARAMS_FILENAME).is_file():
            return folder
    return start


PROJECT_ROOT = find_project_root()
PARAMS_FILE = PROJECT_ROOT / PARAMS_FILENAME
DATA_DIR = PROJECT_ROOT / "data"
RAW_DATA_DIR = DATA_DIR / "raw"
PROCESSED_DATA_DIR = DATA_DIR / "processed"
MODELS_DIR = PROJECT_ROOT / "models"
REPORTS_DIR = PROJECT_ROOT / "reports"


def load_params(section: str | None = None, path: Path | None = None) -> dict[str, Any]:
    """Load ``params.yaml``, or one top-level section of it.

    Raises:
        FileNotFoundError: the parameters file does not exist.
        KeyError: ``section`` is not a top-level key of the file.
    """
    path = path or PARAMS_FILE
    with path.open(encoding="utf-8") as stream:
        params = yaml.safe_load(stream) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must contain a mapping at the top level")
    if section is None:
        return params
    if section not in params:
        known = ", ".join(sorted(params)) or "none"
        raise KeyError(f"{path} has no section {section!r} (sections: {known})")
    return params[section]

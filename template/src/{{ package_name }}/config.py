"""Where things live, and the loader of ``params.yaml``.

The files the stages hand to one another are named here, once: each stage
imports the paths it reads and writes, and ``dvc.yaml`` declares the same
ones as its deps and outs.

Every stage loads the whole of ``params.yaml`` with :func:`load_params` and
reads from it only the keys its entry in ``dvc.yaml`` declares under
``params:``: DVC reruns a stage when one of those keys changes, and only then,
so a key a stage reads but does not declare would go stale without notice.
(The evaluate stage also hands the whole file to the tracker, so every run
logs every parameter.)
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
# The splits, as Parquet files (train, validation, test: data.split_file names them).
INTERIM_DATA_DIR = DATA_DIR / "interim"  # as prepare writes them
PROCESSED_DATA_DIR = DATA_DIR / "processed"  # featurized
MODELS_DIR = PROJECT_ROOT / "models"
PREPROCESSOR_FILE = MODELS_DIR / "preprocessor.joblib"
MODEL_FILE = MODELS_DIR / "model.joblib"
REPORTS_DIR = PROJECT_ROOT / "reports"
METRICS_FILE = REPORTS_DIR / "metrics.json"
PLOTS_DIR = REPORTS_DIR / "plots"


def load_params(section: str | None = None, path: Path | None = None) -> dict[str, Any]:
    """Load ``params.yaml`` (the stages take the whole file), or one top-level section of it.

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

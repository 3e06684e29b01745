"""A project as a version of the template renders it, for the migrations beside this file.

The migrations run with copier's own Python, so this uses only the standard
library and copier.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def render_version(answers: Mapping[str, Any], prefix: str) -> Path | None:
    """The project ``answers`` describe, rendered again in a scratch folder removed at exit.

    The template is ``_src_path`` at ``_commit``, with every other answer;
    ``None`` when the answers do not say where the template is. Raises what
    copier raises.
    """
    source, version = answers.get("_src_path"), answers.get("_commit")
    if not source or not version:
        return None
    import copier

    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    copier.run_copy(
        str(source),
        scratch / "project",
        data=data,
        vcs_ref=str(version),
        defaults=True,
        quiet=True,
        skip_tasks=True,
        unsafe=True,
    )
    return scratch / "project"

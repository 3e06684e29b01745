"""``make find-run REF=...``: the run record of a commit, tag, branch, DVC experiment or run id."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from ..shared import records
from .arguments import failed, ref_from


def main(argv: Sequence[str] | None = None) -> int:
    """Print the run record of a commit, experiment or run id, as JSON."""
    ref = ref_from(argv, "find-run", "Find the run of a commit, experiment or run id.")
    try:
        commit, record = records.find_run(ref)
    except records.RunNotFoundError as error:
        return failed(error, 1)
    found = {"commit": commit, "experiment_ref": records.experiment_of(commit), "record": record}
    print(json.dumps(found, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

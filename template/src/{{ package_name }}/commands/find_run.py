"""``make find-run REF=...``: the run record of a commit, tag, branch, DVC experiment or run id."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..shared import records


def main(argv: Sequence[str] | None = None) -> int:
    """Print the run record of a commit, experiment or run id, as JSON."""
    parser = argparse.ArgumentParser(
        prog="find-run",
        description="Find the run of a commit, experiment or run id, or the reverse.",
    )
    parser.add_argument("ref", help="commit, tag, branch, DVC experiment name or run id")
    args = parser.parse_args(argv)
    try:
        commit, record = records.find_run(args.ref)
    except records.RunNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    shown = {"commit": commit, "experiment_ref": records.experiment_of(commit), "record": record}
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

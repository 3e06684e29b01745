"""The command line the commands share: one reference to a run, and how an error ends it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

REF_HELP = "DVC experiment name, commit, tag, branch or run id"


def ref_from(argv: Sequence[str] | None, prog: str, description: str) -> str:
    """The one reference ``prog`` takes (``make promote EXP=...``, ``make find-run REF=...``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("ref", help=REF_HELP)
    return parser.parse_args(argv).ref


def failed(error: Exception, status: int) -> int:
    """Say why a command stopped, in one line on stderr, and return its exit status."""
    print(f"error: {error}", file=sys.stderr)
    return status

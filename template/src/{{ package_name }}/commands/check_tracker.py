"""Check that the tracker answers, before a pipeline runs.

``make repro`` and ``make queue`` run it first, so a tracking server that
does not answer stops them before DVC touches any output.
"""

from __future__ import annotations

import sys

from ..shared import tracking
from .arguments import failed


def main() -> int:
    """Exit non-zero, naming where, when the tracker would not take a run now."""
    try:
        tracking.check_reachable()
    except tracking.TrackingError as error:
        return failed(error, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``python -m <package>.commands.report``: what ``make report`` runs."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())

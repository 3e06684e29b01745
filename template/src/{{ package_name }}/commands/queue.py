"""``make queue``: run the experiments queued with ``dvc exp run --queue``, and wait for them.

DVC's queue leaves worker processes behind that inherit the command's
output. DVC's output is therefore relayed through a pipe of this process, so
that a worker never holds the caller's: a CI job's log, or a script reading
``make queue``, ends when the queue does. ``make tune`` runs its trials the
same way (:func:`relayed`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO

# How long the output of a finished command is still relayed, in seconds: a
# worker left behind may keep the pipe open, and is not waited for.
DRAIN_SECONDS = 5.0


def relayed(command: Sequence[str]) -> int:
    """Run ``command``, its stdout and stderr relayed to this process's stdout; its status."""
    process = subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    relay = threading.Thread(target=copy_lines, args=(process.stdout,), daemon=True)
    relay.start()
    status = process.wait()
    relay.join(timeout=DRAIN_SECONDS)
    return status


def copy_lines(stream: IO[bytes] | None) -> None:
    """Copy a process's output to this one's, line by line, as it comes, then close it."""
    if stream is None:
        return
    with stream:
        for line in iter(stream.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.flush()


def dvc(*args: str) -> int:
    """Run a DVC command in this interpreter, relayed; its exit status."""
    return relayed([sys.executable, "-m", "dvc", *args])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``make queue``: every queued experiment, ``--jobs`` at a time."""
    parser = argparse.ArgumentParser(
        prog="queue", description="Run the queued experiments and wait for the last one."
    )
    parser.add_argument("--jobs", type=int, default=2, help="experiments run at the same time")
    args = parser.parse_args(argv)
    return dvc("exp", "run", "--run-all", "--jobs", str(args.jobs))


if __name__ == "__main__":
    sys.exit(main())

"""``make report``: the workspace's results against a baseline ref, as one HTML page.

Results as a reviewer reads them, metrics beside the policy and curves as SVG
charts, in two places that must agree:

- the docs: the model card and the metrics policy page show the current
  results at every build (``docs/hooks/``, :func:`.page.markdown_section`);
- ``make report`` (``python -m <package>.commands.report [--base REF]``): one
  self-contained page, ``reports/report.html``, comparing the workspace with
  the results committed at a baseline ref, the curves overlaid.

What changes together lives together: :mod:`.results` reads the results (the
workspace's and a ref's) and sets each metric beside the policy's verdict,
:mod:`.charts` draws them with matplotlib, and :mod:`.page` hands them to
``page.html.j2``, the page's markup, or writes the docs' Markdown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ...shared import policy
from ...shared.paths import METRICS_PATH, PROJECT_ROOT, REPORT_FILE
from ..arguments import failed
from .page import markdown_section, render_html
from .results import Results, load_rules, read_ref, read_workspace

# The command, and what the docs hooks read the results with.
__all__ = [
    "Results",
    "load_rules",
    "main",
    "markdown_section",
    "read_ref",
    "read_workspace",
    "write_report",
]


def write_report(base_ref: str, output: Path = REPORT_FILE, root: Path = PROJECT_ROOT) -> int:
    """Write the report comparing the workspace with ``base_ref``; return the exit status."""
    workspace = read_workspace(root)
    if workspace is None:
        print(
            f"error: no {METRICS_PATH} in the workspace: run `make repro` first", file=sys.stderr
        )
        return 1
    rules = load_rules(root)
    base = read_ref(base_ref, root)
    if base is None:
        print(f"no results committed at {base_ref}: the report shows the workspace alone")
    label = base.label if base else base_ref
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_html(workspace, base, label, rules), encoding="utf-8")
    print(f"wrote {output.relative_to(root) if output.is_relative_to(root) else output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Compare the workspace's results with a baseline ref, as one HTML page."""
    parser = argparse.ArgumentParser(
        prog="report", description="Compare the workspace's results with a baseline git ref."
    )
    parser.add_argument(
        "--base", metavar="REF", help="git ref to compare with (default: the policy's baseline)"
    )
    parser.add_argument("--output", type=Path, default=REPORT_FILE, help="HTML file to write")
    args = parser.parse_args(argv)
    try:
        base = args.base or load_rules()["regression"]["baseline_ref"]
        return write_report(base, args.output)
    except policy.PolicyError as error:
        return failed(error, 1)

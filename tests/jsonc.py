"""Reading JSON with comments, the format of devcontainer.json."""

from __future__ import annotations

import json
import re

# A string (kept whole, so comment markers inside it survive) or a comment.
_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', flags=re.DOTALL)


def loads(text: str) -> object:
    """Parse JSON with // and /* */ comments."""
    kept, position = [], 0
    for token in _TOKEN.finditer(text):
        if token.group().startswith("/"):
            kept.append(text[position : token.start()])
            position = token.end()
    kept.append(text[position:])
    return json.loads("".join(kept))

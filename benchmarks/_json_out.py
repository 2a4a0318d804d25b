"""The benchmarks' JSON out: one document on stdout, and the same in a file when asked."""

from __future__ import annotations

import json
from pathlib import Path


def emit(result, out=None) -> str:
    """``result`` as indented JSON: written to ``out`` (its folder made) when given, printed."""
    text = json.dumps(result, indent=1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text + "\n")
    print(text)
    return text

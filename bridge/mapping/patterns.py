"""Regular expressions from mapping files, in RE2: linear time in the input, so no pattern and no
field a sender controls can stall a web or worker process (Python's `re` backtracks)."""

from __future__ import annotations

from typing import Any

import re2

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a bad pattern is reported by the loader, not on stderr


def compile_pattern(pattern: str) -> Any:
    """The compiled pattern; ValueError naming the problem (RE2 has no backreferences or
    lookarounds)."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"is not a valid RE2 regular expression: {reason}") from None

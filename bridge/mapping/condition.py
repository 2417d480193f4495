"""BPQL object conditions: built from a change's CIs, checked against BigPanda's limits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import InvalidChange

MAX_CONDITION_CHARS = 25_000  # BigPanda's documented limit (one page says 80,000: use the lower)


def ci_condition(tag: str, names: Iterable[str]) -> dict[str, Any]:
    """`<tag> IN [names...]`: tag names lowercase (BigPanda), names deduplicated in order."""
    unique = list(dict.fromkeys(names))
    return {"IN": [tag.lower(), unique]}


def condition_length(condition: Mapping[str, Any]) -> int:
    """Length as BigPanda counts it: compact JSON, non-ASCII kept."""
    return len(json.dumps(condition, separators=(",", ":"), ensure_ascii=False))


def check_condition(condition: Mapping[str, Any]) -> None:
    """Refuse a condition BigPanda would refuse, naming the limit."""
    length = condition_length(condition)
    if length > MAX_CONDITION_CHARS:
        raise InvalidChange(
            "condition",
            f"is {length} characters as JSON, over BigPanda's limit of {MAX_CONDITION_CHARS}",
        )

"""Any JSON object -> Change: every field by its name and by its dotted path ("a.b.c").

Which field is the key, the dates, the CIs and the version is said in the mapping file
(`maintenance_key`, `start`/`end`, `cis`, `version`); without `version` events are unordered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import Change

MAX_DEPTH = 8  # deeper objects stay reachable as nested values, not as dotted names


def parse(raw: Mapping[str, Any]) -> Change:
    """Flatten nested objects into dotted names, keeping the top-level values too."""
    fields: dict[str, Any] = dict(raw)
    for name, value in raw.items():
        if isinstance(value, Mapping):
            _flatten(str(name), value, fields, 1)
    return Change(source="generic", fields=fields, version=())


def _flatten(prefix: str, value: Mapping[str, Any], into: dict[str, Any], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    for name, item in value.items():
        path = f"{prefix}.{name}"
        into.setdefault(path, item)
        if isinstance(item, Mapping):
            _flatten(path, item, into, depth + 1)

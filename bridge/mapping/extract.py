"""What a mapping file adds to a parsed change: CIs from its fields, and its version fields."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidChange
from ..model import CI, Change, lookup
from .loader import CISource, SourceMapping


def read_change(mapping: SourceMapping, raw: Mapping[str, Any]) -> Change:
    """Parse a payload with the file's parser, then apply the file's `cis` and `version`."""
    change = mapping.parse(raw)
    extra = tuple(ci for source in mapping.ci_sources for ci in _cis(source, change.fields))
    known = {ci.name for ci in change.cis}
    cis = change.cis + tuple(dict.fromkeys(ci for ci in extra if ci.name not in known))
    version = _version(mapping.version_fields, change.fields) if mapping.version_fields else None
    return replace(change, cis=cis, version=version if version is not None else change.version)


def _cis(source: CISource, fields: Mapping[str, Any]) -> Iterable[CI]:
    value = lookup(fields, source.field)
    items = value if isinstance(value, list) else [] if value is None else [value]
    for item in items:
        for name in _names(source, item):
            yield CI(name=name, ci_class=source.ci_class)


def _names(source: CISource, item: Any) -> list[str]:
    if isinstance(item, Mapping):
        keys = [source.name] if source.name else ["name", "value", "displayName"]
        item = next((item[k] for k in keys if isinstance(item.get(k), str)), None)
    if not isinstance(item, str | int | float) or isinstance(item, bool):
        return []
    parts = str(item).split(source.separator) if source.separator else [str(item)]
    return [part.strip() for part in parts if part.strip()]


def _version(names: tuple[str, ...], fields: Mapping[str, Any]) -> tuple[float, ...]:
    """The file's version fields as numbers: numbers as they are, dates as epoch milliseconds."""
    return tuple(_number(name, lookup(fields, name)) for name in names)


def _number(name: str, value: Any) -> float:
    if value is None or value == "":
        raise InvalidChange(name, "is missing: it orders the updates of a change")
    if isinstance(value, bool):
        raise InvalidChange(name, f"is not a number or date: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        pass
    else:
        if not math.isfinite(number):
            raise InvalidChange(name, f"is not a finite number: {value!r}")
        return number
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidChange(name, f"is not a number or date: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000

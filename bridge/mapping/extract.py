"""What a mapping file adds to a parsed change: CIs from its fields, and its version fields;
and the check that the change's version is not dated in the future."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidChange
from ..model import CI, Change, lookup
from .loader import CISource, SourceMapping

# A version dated further ahead than this is refused: it would make every later event stale.
MAX_VERSION_AHEAD_SECONDS = 24 * 3600


def read_change(mapping: SourceMapping, raw: Mapping[str, Any], now: float | None = None) -> Change:
    """Parse a payload with the file's parser, then apply the file's `cis` and `version`;
    a version dated over a day after `now` (default: the clock) is refused."""
    change = mapping.parse(raw)
    extra = tuple(ci for source in mapping.ci_sources for ci in _cis(source, change.fields))
    known = {ci.name for ci in change.cis}
    cis = change.cis + tuple(dict.fromkeys(ci for ci in extra if ci.name not in known))
    if mapping.version_fields:
        version, version_time = _version(mapping.version_fields, change.fields)
        change = replace(change, version=version, version_time=version_time)
    _check_version_time(change, time.time() if now is None else now)
    return replace(change, cis=cis)


def _check_version_time(change: Change, now: float) -> None:
    if change.version_time is None:
        return
    field, at = change.version_time
    if at > now + MAX_VERSION_AHEAD_SECONDS:
        ahead = (at - now) / 3600
        raise InvalidChange(
            field, f"is {ahead:,.0f} hours ahead of the bridge's clock (at most 24 are accepted)"
        )


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


def _version(
    names: tuple[str, ...], fields: Mapping[str, Any]
) -> tuple[tuple[float, ...], tuple[str, float] | None]:
    """The file's version fields as numbers: numbers as they are, dates as epoch milliseconds;
    and the first date among them (field, epoch seconds), to be checked against the clock."""
    version, version_time = [], None
    for name in names:
        number, is_date = _number(name, lookup(fields, name))
        version.append(number)
        if is_date and version_time is None:
            version_time = (name, number / 1000)
    return tuple(version), version_time


def _number(name: str, value: Any) -> tuple[float, bool]:
    """The value as a number, and whether it was a date."""
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
        return number, False
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidChange(name, f"is not a number or date: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp() * 1000, True

"""What a mapping file adds to a parsed change: CIs from its fields, and its version fields;
and the check that the change's version is not dated in the future."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidChange
from ..model import CI, Change, lookup
from .loader import CISource, SourceMapping, VersionField

# A version dated further ahead than this is refused: it would make every later event stale.
MAX_VERSION_AHEAD_SECONDS = 24 * 3600
INTEGER = re.compile(r"^\s*[0-9]{1,18}(\.0+)?\s*$")  # no sign, exponent or fraction
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_SENT_AGE_SECONDS = 24 * 3600
MILLISECOND = timedelta(milliseconds=1)


def read_change(
    mapping: SourceMapping,
    raw: Mapping[str, Any],
    now: float | None = None,
    also_at: float | None = None,
) -> Change:
    """Parse a payload with the file's parser, then apply the file's `cis` and `version`;
    a version dated over a day after `now` (default: the clock), or a Jira webhook sent over a
    day before it, is refused. `also_at` (a preview's time) is accepted as the receiving time
    too: each bound is judged at the more lenient of the two."""
    change = mapping.parse(raw)
    extra = tuple(ci for source in mapping.ci_sources for ci in _cis(source, change.fields))
    known = {ci.name for ci in change.cis}
    cis = change.cis + tuple(dict.fromkeys(ci for ci in extra if ci.name not in known))
    if mapping.version_fields:
        version, version_time, bound = _version(mapping.version_fields, change.fields)
        change = replace(change, version=version, version_time=version_time, version_bound=bound)
    now = time.time() if now is None else now
    _check_version_time(change, now, now if also_at is None else also_at)
    return replace(change, cis=cis)


def _check_version_time(change: Change, now: float, also_at: float) -> None:
    latest, earliest = max(now, also_at), min(now, also_at)
    if change.version_time is not None:
        field, at = change.version_time
        if at > latest + MAX_VERSION_AHEAD_SECONDS:
            ahead = (at - latest) / 3600
            raise InvalidChange(
                field,
                f"is {ahead:,.0f} hours ahead of the bridge's clock (at most 24 are accepted)",
            )
    if change.sent_at is not None:
        # A captured, signed body could otherwise be sent again once the change's memory expired.
        field, sent = change.sent_at
        if sent < earliest - MAX_SENT_AGE_SECONDS:
            age = (earliest - sent) / 3600
            raise InvalidChange(
                field, f"is {age:,.0f} hours old: a webhook sent over 24 hours ago is refused"
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
    entries: tuple[VersionField, ...], fields: Mapping[str, Any]
) -> tuple[tuple[float, ...], tuple[str, float] | None, tuple[int, str, int] | None]:
    """The file's version fields as numbers (counters as they are, times in epoch ms); the first
    time among them as (field, epoch seconds), checked against the clock; and the first counter
    as (index, field, largest jump), checked against the newest version seen."""
    version: list[float] = []
    version_time, bound = None, None
    for index, entry in enumerate(entries):
        number, is_time = _number(entry, lookup(fields, entry.field))
        version.append(number)
        if is_time and version_time is None:
            version_time = (entry.field, number / 1000)
        if not is_time and bound is None:
            bound = (index, entry.field, entry.max_jump)
    return tuple(version), version_time, bound


def _number(entry: VersionField, value: Any) -> tuple[int, bool]:
    """The value as a whole number (a time in epoch ms), and whether it is a time. Counters are
    integers: a float or an exponent is refused, as no sender counts in them."""
    name = entry.field
    if value is None or value == "":
        raise InvalidChange(name, "is missing: it orders the updates of a change")
    if isinstance(value, bool):
        raise InvalidChange(name, f"is not a number or date: {value!r}")
    if entry.kind in ("counter", "epoch_ms", "epoch_s") or (
        entry.kind == "auto" and (isinstance(value, int | float) or INTEGER.match(str(value)))
    ):
        return _integer(entry, value)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidChange(name, f"is not a whole number or an ISO 8601 date: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MILLISECOND, True


def _integer(entry: VersionField, value: Any) -> tuple[int, bool]:
    """A counter or an epoch time sent as an integer (or an integral string, or 12.0)."""
    exact = isinstance(value, float) and value.is_integer() and abs(value) < 2**53
    integral = (isinstance(value, int) and abs(value) < 10**18) or exact
    if not integral and not (isinstance(value, str) and INTEGER.match(value)):
        raise InvalidChange(entry.field, f"is not a whole number: {_short(value)}")
    number = int(value) if isinstance(value, int | float) else int(value.strip().split(".")[0])
    if number < 0:
        raise InvalidChange(entry.field, f"is negative: {_short(value)}")
    if entry.kind == "epoch_s":
        return number * 1000, True
    return number, entry.kind == "epoch_ms"


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, float) or abs(value) < 1e30 else "a huge number"
    return text if len(text) <= 60 else text[:57] + "..."

"""Dates in mapping files: a change's start or end as Unix epoch seconds; paddings as seconds.

    start: start_date       # a field name: format auto, time_zone UTC (ServiceNow internal values)
    end: {field: fields.customfield_10009, format: "%d/%m/%Y %H:%M", time_zone: Europe/Berlin}
    start: {field: start_date, fallback: work_start}   # the first of them that holds a value

Formats: `auto` (ISO 8601, else a number: epoch milliseconds from 10**11 up, seconds below; so an
all-digit basic ISO date like `20240615` needs `iso8601`), `iso8601`, `epoch_s`, `epoch_ms`, or a
strptime pattern (anything with `%`). A value with an offset keeps it; one without (ServiceNow's
`2024-06-15 01:00:00`, Jira's jqlDateTime `1979-11-01 06:23`) is local time in `time_zone`, read
as PEP 495's fold=0 reads it:
- an ambiguous time (autumn: the hour that happens twice) is its FIRST occurrence, still summer
  time: America/New_York 2024-11-03 01:30 -> 05:30 UTC (EDT, not EST);
- a nonexistent time (spring: the skipped hour) takes the offset in force before the gap, so it
  is shifted forward by the gap: Europe/Berlin 2024-03-31 02:30 -> 01:30 UTC, i.e. 03:30 CEST.
Fractions of seconds are floored. ServiceNow display values are in the sender's zone and format:
the servicenow source reads them with the file's `display_values` (sources/servicenow.py); a
field it could not read is a doubt, and reading it for a plan is refused, naming the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidChange
from ..model import lookup

EXPECTED = {  # format word -> what an error message says the value should have been
    "auto": "ISO 8601 or epoch seconds/milliseconds",
    "iso8601": "ISO 8601",
    "epoch_s": "epoch seconds",
    "epoch_ms": "epoch milliseconds",
}
KEYS = ("field", "fallback", "format", "time_zone")
MS_FROM = 10**11  # 10**11 seconds is the year 5138; 10**11 milliseconds is 1973
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
FIRST, LAST = -62135596800, 253402300799  # 0001-01-01 to 9999-12-31 UTC: datetime's own range
NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_N = "([0-9]{1,9})"  # a duration's parts are ASCII digits; nine of them are decades of seconds
UNITS = re.compile(rf"(?:{_N}d)?(?:{_N}h)?(?:{_N}m)?(?:{_N}s)?", re.I)
ISO_DURATION = re.compile(rf"P(?:{_N}D)?(?:T(?=[0-9])(?:{_N}H)?(?:{_N}M)?(?:{_N}S)?)?", re.I)


@dataclass(frozen=True)
class DateSpec:
    """Which change field holds a date and how to read it; checked when built."""

    field: str
    format: str = "auto"
    time_zone: str = "UTC"
    fallback: tuple[str, ...] = ()  # read in turn when `field` holds no value

    def __post_init__(self) -> None:
        for name in (self.field, *self.fallback):
            if not isinstance(name, str) or not name.strip():
                raise ValueError("field: must name a change field, e.g. start_date")
        _check_format(self.format)
        _check_zone(self.time_zone)

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field, *self.fallback)


def compile_date_spec(spec: str | Mapping[str, Any]) -> DateSpec:
    """A DateSpec from a mapping file's value: a field name, or {field, format, time_zone}."""
    if isinstance(spec, str):
        return DateSpec(spec)
    if not isinstance(spec, Mapping):
        raise ValueError("a date is a field name or a mapping with field, format and time_zone")
    unknown = sorted(repr(key) for key in spec if key not in KEYS)
    if unknown:
        raise ValueError(f"unknown key {', '.join(unknown)}: use field, format and time_zone")
    if "field" not in spec:
        raise ValueError("field: is required (the change field that holds the date)")
    fallback = spec.get("fallback", ())
    fallback = (fallback,) if isinstance(fallback, str) else fallback
    if not isinstance(fallback, list | tuple):
        raise ValueError("fallback: a field name or a list of them")
    return DateSpec(**{**spec, "fallback": tuple(fallback)})


def read_date(
    spec: DateSpec, fields: Mapping[str, Any], doubts: Mapping[str, str] | None = None
) -> int:
    """The spec's date in the change's fields as epoch seconds: its field, else the first
    fallback that holds a value. InvalidChange names the field: missing, unreadable, or one the
    source doubts (`doubts`: field -> why, e.g. a display value in an unknown time zone)."""
    for name in spec.fields:
        value = lookup(fields, name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if doubts and name in doubts:
            raise InvalidChange(name, doubts[name])
        seconds = _parse(spec, value)
        if seconds is None or not FIRST <= seconds <= LAST:
            expected = EXPECTED.get(spec.format, spec.format)
            raise InvalidChange(name, f"is not a date as {expected}: '{_shown(value)}'")
        return seconds
    also = f" (and so are {', '.join(spec.fallback)})" if spec.fallback else ""
    raise InvalidChange(spec.field, f"is required for a maintenance plan{also}")


def parse_duration(value: str | int) -> int:
    """Seconds in int seconds, 90s, 15m, 2h, 1d, 1h30m, 1d2h, PT15M or P1DT2H; "-" negates."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    text = value.strip() if isinstance(value, str) else ""  # "" matches, but with no parts
    body = text.removeprefix("-")
    match = UNITS.fullmatch(body) or ISO_DURATION.fullmatch(body)
    if match is None or not any(match.groups()):
        shown = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
        raise ValueError(f"{shown} is not a duration: use e.g. 90s, 15m, 2h, 1d, 1h30m or PT15M")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    sign = -1 if text.startswith("-") else 1
    return sign * (((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _check_format(fmt: Any) -> None:
    """Refuse an unknown format word, or a pattern strptime cannot read back (%Q, %s, %-d)."""
    if not isinstance(fmt, str) or (fmt not in EXPECTED and "%" not in fmt):
        raise ValueError(
            f"format: {fmt!r} is unknown; use auto, iso8601, epoch_s, epoch_ms "
            "or a strptime pattern such as '%d/%m/%Y %H:%M'"
        )
    if "%" in fmt:
        sample = datetime(2024, 6, 15, 13, 4, 5, tzinfo=UTC)
        try:
            datetime.strptime(sample.strftime(fmt), fmt)
        except ValueError as exc:
            raise ValueError(f"format: {fmt!r} is not a usable strptime pattern: {exc}") from None


def _check_zone(name: Any) -> None:
    """Refuse anything that is not an IANA zone name, and the machine-dependent `localtime`."""
    try:
        if isinstance(name, str) and name != "localtime":
            ZoneInfo(name)
            return
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder such as "Europe"
        pass
    raise ValueError(f"time_zone: {name!r} is not an IANA time zone name such as 'Europe/Berlin'")


def _parse(spec: DateSpec, value: Any) -> int | None:
    """Epoch seconds, or None when the value does not read as the spec's format."""
    if isinstance(value, bool):
        return None  # JSON true/false are ints to Python, never dates
    if isinstance(value, int | float) and spec.format in ("auto", "epoch_s", "epoch_ms"):
        return _from_number(spec, Decimal(value))
    if not isinstance(value, str):
        return None
    text = value.strip()
    number = NUMBER.fullmatch(text)
    if spec.format in ("epoch_s", "epoch_ms") or (spec.format == "auto" and number):
        return _from_number(spec, Decimal(text)) if number else None
    return _from_calendar(spec, text)


def _from_number(spec: DateSpec, number: Decimal) -> int | None:
    """Epoch seconds from epoch seconds or milliseconds; Decimal keeps big values exact."""
    if not number.is_finite() or abs(number) > 10**16:  # far past LAST even in milliseconds
        return None
    in_ms = spec.format == "epoch_ms" or (spec.format == "auto" and number >= MS_FROM)
    return math.floor(number / 1000 if in_ms else number)


def _from_calendar(spec: DateSpec, text: str) -> int | None:
    """Epoch seconds from ISO 8601 or the spec's strptime pattern; naive means `time_zone`."""
    try:
        if spec.format in ("auto", "iso8601"):
            moment = datetime.fromisoformat(text)
        else:
            moment = datetime.strptime(text, spec.format)
        if moment.tzinfo is None:
            # fold=0, the default: first of an ambiguous hour, offset from before a gap
            moment = moment.replace(tzinfo=ZoneInfo(spec.time_zone))
        return (moment - EPOCH) // SECOND  # exact floor; float timestamps round near 9999
    except (ValueError, OverflowError):
        return None


def _shown(value: Any) -> str:
    """The value as an error quotes it: text cut short, containers and huge ints by type."""
    small = isinstance(value, str | float) or (isinstance(value, int) and abs(value) < 10**30)
    text = str(value) if small else f"<{type(value).__name__}>"  # str() of a huge int raises
    return text if len(text) <= 60 else text[:57] + "..."

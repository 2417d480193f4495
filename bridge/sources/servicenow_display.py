"""ServiceNow display values: dates in the integration user's time zone and format.

A record sent with getDisplayValue() or sysparm_display_value=true shows its dates as the user
sees them (`15/06/2024 10:00:00` in America/Los_Angeles), not as the internal UTC value. The
mapping file's `display_values` says how they read; this module turns them into the internal
value, or into a doubt that names the setting (never a guess: a time DST makes ambiguous or
skips is a doubt too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

INTERNAL_DATE = "%Y-%m-%d %H:%M:%S"  # GlideDateTime's internal value: UTC, no zone designator
DATE_SHAPE = re.compile(r"^[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{1,4}[ T][0-9]{1,2}:[0-9]{2}")
# ServiceNow's date formats (a user's or the system's), as strptime patterns.
DATE_FORMATS = {
    "yyyy-MM-dd": "%Y-%m-%d",
    "dd/MM/yyyy": "%d/%m/%Y",
    "MM/dd/yyyy": "%m/%d/%Y",
    "dd.MM.yyyy": "%d.%m.%Y",
    "dd-MM-yyyy": "%d-%m-%Y",
}
TIME_FORMATS = {"HH:mm:ss": "%H:%M:%S", "HH:mm": "%H:%M", "hh:mm:ss a": "%I:%M:%S %p",
                "hh:mm a": "%I:%M %p"}  # fmt: skip
SETTING = "display_values"


@dataclass(frozen=True)
class DisplayValues:
    """How the integration user's display values read: IANA zone, date and time format."""

    time_zone: str
    date_format: str = "yyyy-MM-dd"
    time_format: str = "HH:mm:ss"

    def __post_init__(self) -> None:
        ZoneInfo(self.time_zone)  # raises for an unknown zone
        if self.date_format not in DATE_FORMATS:
            raise ValueError(f"date_format: use one of {', '.join(DATE_FORMATS)}")
        if self.time_format not in TIME_FORMATS:
            raise ValueError(f"time_format: use one of {', '.join(TIME_FORMATS)}")

    @property
    def pattern(self) -> str:
        return f"{DATE_FORMATS[self.date_format]} {TIME_FORMATS[self.time_format]}"

    def shown(self) -> str:
        return f"{self.date_format} {self.time_format} in {self.time_zone}"


def display_dates(
    fields: dict[str, Any], paired: set[str], labels: list[str], display: DisplayValues | None
) -> dict[str, str]:
    """In a display-mode record, every plain date is in the sender's zone and format: read with
    `display` into the internal form (UTC), else left as a doubt naming the setting. A pair's
    `value` is internal already. Returns the doubts: field -> why its date cannot be read."""
    if not labels:
        return {}
    doubts = {}
    for name, value in list(fields.items()):
        if name in paired or name.endswith("_display") or not isinstance(value, str):
            continue
        if not DATE_SHAPE.match(value.strip()):
            continue
        if display is None:
            doubts[name] = (
                f"is a display value ({value!r}; the record sends labels: {', '.join(labels)}), "
                f"in the time zone and date format of the integration user: name them in the "
                f"mapping file's `{SETTING}: {{time_zone, date_format}}`, or send internal values"
            )
            continue
        internal, doubt = display_to_internal(value.strip(), display)
        if doubt:
            doubts[name] = doubt
        else:
            fields[f"{name}_display"] = value
            fields[name] = internal
    return doubts


def display_to_internal(text: str, display: DisplayValues) -> tuple[str | None, str | None]:
    """A display date as the internal value (UTC `YYYY-MM-DD HH:MM:SS`), or why it cannot be:
    a value not in the format, or a local time that is ambiguous or never happens (DST)."""
    try:
        local = datetime.strptime(text, display.pattern)
    except ValueError:
        return None, f"is not a date as {display.shown()} (`{SETTING}`): {text!r}"
    zone = ZoneInfo(display.time_zone)
    first, second = local.replace(tzinfo=zone), local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() != second.utcoffset():
        if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
            return None, f"is {text!r}, a time that does not exist in {display.time_zone} (DST)"
        return None, (
            f"is {text!r}, which happens twice in {display.time_zone} (DST ends): send the "
            f"internal value, which is unambiguous"
        )
    return first.astimezone(UTC).strftime(INTERNAL_DATE), None

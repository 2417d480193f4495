"""Property tests: ServiceNow display dates (the integration user's zone and format) read back as
the exact UTC instant, never a guess around DST, and never read as UTC without `display_values`.

The expected values are computed here independently of the bridge: our own rendering of
ServiceNow's format tokens, and our own count of the UTC instants a local wall time stands for.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidChange
from bridge.mapping.extract import read_change
from bridge.mapping.loader import SourceMapping, load_mappings
from bridge.mapping.rules import evaluate
from bridge.model import DesiredPlan
from bridge.sources.servicenow_display import DisplayValues, display_to_internal

SHIPPED = Path(__file__).parent.parent.parent / "mappings" / "servicenow.yaml"
ZONES = [
    "America/Los_Angeles",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # DST moves the clock by 30 minutes
    "America/Santiago",  # DST changes at local midnight
    "Asia/Kolkata",  # +05:30, no DST
    "Pacific/Chatham",  # +12:45 / +13:45
    "UTC",
]
DATE_FORMATS = ["yyyy-MM-dd", "dd/MM/yyyy", "MM/dd/yyyy", "dd.MM.yyyy", "dd-MM-yyyy"]
TIME_FORMATS = ["HH:mm:ss", "HH:mm", "hh:mm:ss a", "hh:mm a"]
TOKEN = re.compile(r"yyyy|MM|dd|HH|hh|mm|ss|a")
SCAN_FROM, SCAN_TO = datetime(2024, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
ANY_FROM = int(datetime(2000, 1, 1, tzinfo=UTC).timestamp())
ANY_TO = int(datetime(2037, 12, 31, tzinfo=UTC).timestamp())
NEAR = 2 * 3600  # instants are drawn within 2 h of a transition (half of the draws)
SYS_ID = "0123456789abcdef0123456789abcdef"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass(frozen=True)
class Transition:
    at: int  # epoch seconds of the first instant with the new offset
    before: timedelta
    after: timedelta


def offset(zone: str, seconds: int) -> timedelta:
    return datetime.fromtimestamp(seconds, ZoneInfo(zone)).utcoffset()  # type: ignore[return-value]


@cache
def transitions(zone: str) -> tuple[Transition, ...]:
    """The zone's offset changes in 2024-2027: hourly offsets scanned, then bisected to the
    second."""
    found = []
    hour, last = int(SCAN_FROM.timestamp()), int(SCAN_TO.timestamp())
    while hour < last:
        before, after = offset(zone, hour), offset(zone, hour + 3600)
        if before != after:
            low, high = hour, hour + 3600  # offset(low) == before, offset(high) == after
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(zone, middle) == before else (low, middle)
            found.append(Transition(high, before, after))
        hour += 3600
    return tuple(found)


def gaps(zone: str) -> tuple[Transition, ...]:
    return tuple(t for t in transitions(zone) if t.after > t.before)


def render(local: datetime, date_format: str, time_format: str) -> str:
    """A local time as ServiceNow shows it (Java's SimpleDateFormat tokens, English AM/PM)."""
    tokens = {
        "yyyy": f"{local.year:04d}",
        "MM": f"{local.month:02d}",
        "dd": f"{local.day:02d}",
        "HH": f"{local.hour:02d}",
        "hh": f"{local.hour % 12 or 12:02d}",
        "mm": f"{local.minute:02d}",
        "ss": f"{local.second:02d}",
        "a": "AM" if local.hour < 12 else "PM",
    }
    return TOKEN.sub(lambda m: tokens[m.group(0)], f"{date_format} {time_format}")


def wall_time(seconds: int, zone: str) -> datetime:
    return datetime.fromtimestamp(seconds, ZoneInfo(zone)).replace(tzinfo=None)


def occurrences(zone: str, wall: datetime) -> set[int]:
    """Every UTC instant (epoch seconds) whose local time in `zone` is `wall`: two in the hour
    that happens twice, none in the hour that is skipped. Candidates are the wall time minus every
    offset in force within 16 h of it (transitions are months apart)."""
    as_utc = int(wall.replace(tzinfo=UTC).timestamp())
    offsets = {offset(zone, as_utc + k * 3600) for k in range(-16, 17)}
    found = set()
    for each in offsets:
        candidate = as_utc - int(each.total_seconds())
        if wall_time(candidate, zone) == wall:
            found.add(candidate)
    return found


def internal(seconds: int) -> str:
    moment = datetime.fromtimestamp(seconds, UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def has_seconds(time_format: str) -> bool:
    return "ss" in time_format


def instants(zone: str, whole_minutes: bool) -> st.SearchStrategy[int]:
    """Epoch seconds: half of them within 2 h of one of the zone's 2024-2027 transitions."""
    drawn = st.integers(ANY_FROM, ANY_TO)
    if transitions(zone):
        near = st.sampled_from(transitions(zone)).flatmap(
            lambda t: st.integers(t.at - NEAR, t.at + NEAR)
        )
        drawn = st.one_of(near, drawn)
    return drawn.map(lambda s: s - s % 60) if whole_minutes else drawn


formats = st.tuples(st.sampled_from(DATE_FORMATS), st.sampled_from(TIME_FORMATS))


@cache
def mapping_file(display: tuple[str, str, str] | None) -> SourceMapping:
    """The shipped servicenow.yaml, with `display_values` appended when given, loaded from a
    directory of its own."""
    text = SHIPPED.read_text(encoding="utf-8")
    if display is not None:
        zone, date_format, time_format = display
        text += (
            f'\ndisplay_values: {{time_zone: "{zone}", date_format: "{date_format}", '
            f'time_format: "{time_format}"}}\n'
        )
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "servicenow.yaml").write_text(text, encoding="utf-8")
        return load_mappings(Path(directory), None)["servicenow"]


# 1. Every zone, date format and time format: the instant exactly, or a doubt when ambiguous.


@pytest.mark.parametrize("zone", ZONES)
@settings(SETTINGS, max_examples=200)
@given(data=st.data(), chosen=formats)
def test_a_display_date_reads_as_its_utc_instant_or_as_a_doubt_when_it_happens_twice(
    zone, data, chosen
):
    date_format, time_format = chosen
    seconds = data.draw(instants(zone, not has_seconds(time_format)), label="instant")
    wall = wall_time(seconds, zone)
    text = render(wall, date_format, time_format)
    times = occurrences(zone, wall)
    assert seconds in times  # the test's own check of its arithmetic

    value, doubt = display_to_internal(text, DisplayValues(zone, date_format, time_format))

    event("happens twice" if len(times) > 1 else "happens once")
    if len(times) > 1:
        assert value is None, f"{text!r} happens twice in {zone}, read as {value}"
        assert doubt is not None
        assert "twice" in doubt
    else:
        assert doubt is None
        assert value == internal(seconds)


# 2. A local time skipped at the start of DST is a doubt, never a value.


@pytest.mark.parametrize("zone", [zone for zone in ZONES if gaps(zone)])
@SETTINGS
@given(data=st.data(), chosen=formats)
def test_a_display_date_that_never_happens_is_a_doubt(zone, data, chosen):
    date_format, time_format = chosen
    gap = data.draw(st.sampled_from(gaps(zone)), label="transition")
    length = int((gap.after - gap.before).total_seconds())
    step = 1 if has_seconds(time_format) else 60
    into = data.draw(st.integers(0, length // step - 1), label="steps into the gap") * step
    wall = wall_time(gap.at - 1, zone) + timedelta(seconds=1 + into)  # local time in the gap
    assert not occurrences(zone, wall)  # the test's own check: it never happens
    text = render(wall, date_format, time_format)

    value, doubt = display_to_internal(text, DisplayValues(zone, date_format, time_format))

    assert value is None, f"{text!r} never happens in {zone}, read as {value}"
    assert doubt is not None
    assert "exist" in doubt


# 3. The whole pipeline: a display-mode record through a mapping file, read with
#    `display_values`; without them, refused naming the setting.


def display_record(start: str, end: str) -> dict:
    return {
        "number": "CHG0031337",
        "short_description": "Patch the web servers",
        "sys_class_name": "Change Request",
        "state": "Scheduled",
        "type": "Normal",
        "cmdb_ci": "web-01",
        "sys_mod_count": "3",
        "start_date": start,
        "end_date": end,
    }


@SETTINGS
@given(
    data=st.data(),
    zone=st.sampled_from(ZONES),
    chosen=formats,
    hours=st.integers(3600, 48 * 3600),
)
def test_a_display_mode_record_makes_the_plan_of_its_utc_window(data, zone, chosen, hours):
    date_format, time_format = chosen
    start = data.draw(instants(zone, not has_seconds(time_format)), label="start")
    end = start + (hours if has_seconds(time_format) else hours - hours % 60)
    record = display_record(
        render(wall_time(start, zone), date_format, time_format),
        render(wall_time(end, zone), date_format, time_format),
    )
    now = start - 3600

    # Without display_values: refused, naming the setting; never a plan read as UTC.
    plain = mapping_file(None)
    with pytest.raises(InvalidChange) as refused:
        evaluate(plain, read_change(plain, record, now=now), now)
    assert "display_values" in str(refused.value)

    mapping = mapping_file((zone, date_format, time_format))
    change = read_change(mapping, record, now=now)
    twice = [
        name
        for name, seconds in (("start_date", start), ("end_date", end))
        if len(occurrences(zone, wall_time(seconds, zone))) > 1
    ]
    event("an end of the window happens twice" if twice else "a window that happens once")
    if twice:  # an ambiguous end of the window: refused, never a guess
        with pytest.raises(InvalidChange) as ambiguous:
            evaluate(mapping, change, now)
        assert ambiguous.value.field == twice[0]
        assert "twice" in str(ambiguous.value)
        return

    decision = evaluate(mapping, change, now).decision

    assert isinstance(decision, DesiredPlan), decision
    assert (decision.start, decision.end) == (start, end)


# 4. Values beat display values: a sysparm_display_value=all record's window is its values'.


def pair(value: str, display: str) -> dict:
    return {"value": value, "display_value": display}


@SETTINGS
@given(
    data=st.data(),
    shown_in=st.sampled_from(ZONES),
    shown_as=formats,
    hours=st.integers(3600, 48 * 3600),
    mapping_display=st.none() | st.tuples(st.sampled_from(ZONES), formats),
    plain_labels=st.booleans(),
)
def test_values_beat_display_values_whatever_zone_either_is_in(
    data, shown_in, shown_as, hours, mapping_display, plain_labels
):
    """`plain_labels`: a few choice fields sent as bare labels too, so that the record is in
    display mode: the dates, sent as pairs, still read from their values."""
    if mapping_display is not None:  # display_values of another zone than the display dates'
        zone, (date_format, time_format) = mapping_display
        if zone == shown_in:
            zone = ZONES[(ZONES.index(shown_in) + 1) % len(ZONES)]
        mapping_display = (zone, date_format, time_format)
    start = data.draw(instants(shown_in, False), label="start")
    end = start + hours
    now = start - 3600

    def shown(seconds: int) -> str:
        return render(wall_time(seconds, shown_in), *shown_as)

    record = {
        "number": pair("CHG0031337", "CHG0031337"),
        "short_description": pair("Patch", "Patch"),
        "sys_class_name": pair("change_request", "Change Request"),
        "state": pair("-2", "Scheduled"),
        "type": pair("normal", "Normal"),
        "cmdb_ci": {
            "link": f"https://acme.service-now.com/api/now/table/cmdb_ci/{SYS_ID}",
            "value": SYS_ID,
            "display_value": "web-01",
        },
        "sys_mod_count": pair("3", "3"),
        "sys_updated_on": pair(internal(now - 600), shown(now - 600)),
        "start_date": pair(internal(start), shown(start)),
        "end_date": pair(internal(end), shown(end)),
    }
    if plain_labels:
        record |= {"state": "Scheduled", "type": "Normal", "sys_class_name": "Change Request"}
    mapping = mapping_file(mapping_display)

    decision = evaluate(mapping, read_change(mapping, record, now=now), now).decision

    assert isinstance(decision, DesiredPlan), decision
    assert (decision.start, decision.end) == (start, end)

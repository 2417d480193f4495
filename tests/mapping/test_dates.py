"""Dates in mapping files: every sender's shape to exact epoch seconds, DST, paddings, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidChange
from bridge.mapping.dates import DateSpec, compile_date_spec, parse_duration, read_date

JUNE_15_0100 = 1718413200  # 2024-06-15 01:00:00 UTC (expected values from calendar.timegm)


def read(value, fmt="auto", zone="UTC", field="start_date") -> int:
    return read_date(DateSpec(field, fmt, zone), {field: value})


def refused(value, fmt="auto", zone="UTC", field="start_date") -> InvalidChange:
    with pytest.raises(InvalidChange) as caught:
        read(value, fmt, zone, field)
    assert caught.value.field == field
    return caught.value


# -- every sender's shape ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fmt", "zone", "expected"),
    [
        # ServiceNow internal value: UTC with no zone designator
        ("2024-06-15 01:00:00", "auto", "UTC", JUNE_15_0100),
        ("2024-06-15 01:00:00", "iso8601", "UTC", JUNE_15_0100),
        ("2024-06-15 01:00:00", "%Y-%m-%d %H:%M:%S", "UTC", JUNE_15_0100),
        # Jira Cloud REST / webhook: 3 fraction digits, offset without colon
        ("2024-06-15T01:00:00.000+0000", "auto", "UTC", JUNE_15_0100),
        ("2024-06-15T01:00:00.000+0000", "iso8601", "Europe/Berlin", JUNE_15_0100),
        # Jira Data Center webhook (customfield_12104/12105): a -0400 server offset wins
        ("2024-06-14T22:00:00.000-0400", "auto", "UTC", 1718416800),
        ("2024-06-14T23:30:00.000-0400", "auto", "Europe/Berlin", 1718422200),
        # Jira Automation smart value: one fraction digit
        ("2020-08-18T02:40:37.0+0000", "auto", "UTC", 1597718437),
        ("2020-08-18T02:40:37.0+0000", "%Y-%m-%dT%H:%M:%S.%f%z", "UTC", 1597718437),
        # Jira Automation jqlDateTime: no zone, so local time in the spec's zone (EST in Nov 1979)
        ("1979-11-01 06:23", "auto", "America/New_York", 310303380),
        ("1979-11-01 06:23", "auto", "UTC", 310285380),
        # other ISO 8601 spellings: Z, +00:00, many fraction digits, a date alone (midnight)
        ("2024-06-15T01:00:00Z", "iso8601", "UTC", JUNE_15_0100),
        ("2024-06-15T03:00:00+02:00", "auto", "UTC", JUNE_15_0100),
        ("2024-06-15T01:00:00.999999999Z", "auto", "UTC", JUNE_15_0100),
        ("2024-06-15", "auto", "UTC", 1718409600),
        ("2024-06-15", "auto", "Europe/Berlin", 1718402400),
        ("20240615T010000Z", "iso8601", "UTC", JUNE_15_0100),
        # epoch numbers and numeric strings; auto reads 10**11 and up as milliseconds
        (JUNE_15_0100, "auto", "UTC", JUNE_15_0100),
        (1718413200.9, "auto", "UTC", JUNE_15_0100),
        (1718413200999, "auto", "UTC", JUNE_15_0100),
        ("1718413200", "auto", "UTC", JUNE_15_0100),
        (" 1718413200123 ", "auto", "UTC", JUNE_15_0100),
        ("1718413200.5", "auto", "UTC", JUNE_15_0100),
        (10**11 - 1, "auto", "UTC", 10**11 - 1),
        (10**11, "auto", "UTC", 10**8),
        (JUNE_15_0100, "epoch_s", "UTC", JUNE_15_0100),
        ("1718413200", "epoch_s", "Europe/Berlin", JUNE_15_0100),
        (1718413200.75, "epoch_s", "UTC", JUNE_15_0100),
        (1718413200123, "epoch_ms", "UTC", JUNE_15_0100),
        ("1718413200123", "epoch_ms", "UTC", JUNE_15_0100),
        (1718413200123.0, "epoch_ms", "UTC", JUNE_15_0100),
        (5000, "epoch_ms", "UTC", 5),
        (-1, "epoch_s", "UTC", -1),
        ("-1.5", "epoch_s", "UTC", -2),  # floor, not truncation
        # custom strftime patterns, naive (spec's zone) and with %z
        ("15/06/2024 03:00", "%d/%m/%Y %H:%M", "Europe/Berlin", JUNE_15_0100),
        ("15/Jun/24 1:00 AM", "%d/%b/%y %I:%M %p", "UTC", JUNE_15_0100),
        ("15.06.2024 03:00 +0200", "%d.%m.%Y %H:%M %z", "America/New_York", JUNE_15_0100),
    ],
)
def test_reads_every_shape_as_exact_epoch_seconds(value, fmt, zone, expected):
    result = read(value, fmt, zone)
    assert result == expected
    assert type(result) is int


def test_a_dotted_path_reaches_into_nested_fields_and_an_exact_key_wins():
    nested = {"fields": {"customfield_10008": "2024-06-15T01:00:00.000+0000"}}
    assert read_date(compile_date_spec("fields.customfield_10008"), nested) == JUNE_15_0100
    both = {**nested, "fields.customfield_10008": "2024-06-15T02:00:00Z"}
    assert read_date(compile_date_spec("fields.customfield_10008"), both) == JUNE_15_0100 + 3600


# -- DST: both transitions, in both directions of the Atlantic -------------------------------


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        # Europe/Berlin spring 2024-03-31: 02:00 CET jumps to 03:00 CEST
        ("Europe/Berlin", "2024-03-31 01:59:59", 1711846799),
        ("Europe/Berlin", "2024-03-31 02:30:00", 1711848600),  # nonexistent: 03:30 CEST
        ("Europe/Berlin", "2024-03-31 03:00:00", 1711846800),
        # Europe/Berlin autumn 2024-10-27: 03:00 CEST falls back to 02:00 CET
        ("Europe/Berlin", "2024-10-27 01:59:00", 1729987140),
        ("Europe/Berlin", "2024-10-27 02:30:00", 1729989000),  # ambiguous: first, CEST
        ("Europe/Berlin", "2024-10-27 03:00:00", 1729994400),
        # America/New_York spring 2024-03-10: 02:00 EST jumps to 03:00 EDT
        ("America/New_York", "2024-03-10 01:59:59", 1710053999),
        ("America/New_York", "2024-03-10 02:30:00", 1710055800),  # nonexistent: 03:30 EDT
        # America/New_York autumn 2024-11-03: 02:00 EDT falls back to 01:00 EST
        ("America/New_York", "2024-11-03 01:30:00", 1730611800),  # ambiguous: first, EDT
        ("America/New_York", "2024-11-03 02:00:00", 1730617200),
        # winter and summer offsets away from the transitions
        ("Europe/Berlin", "2024-01-15 10:00:00", 1705309200),
        ("America/New_York", "2024-01-15 03:00:00", 1705305600),
        ("America/New_York", "2024-06-14 21:00:00", JUNE_15_0100),
    ],
)
def test_naive_local_times_follow_the_zone_across_dst(zone, local, expected):
    assert read(local, "auto", zone) == expected
    assert read(local, "%Y-%m-%d %H:%M:%S", zone) == expected


def test_the_nonexistent_time_is_shifted_forward_by_the_gap():
    gap = read("2024-03-31 02:30", zone="Europe/Berlin")
    assert gap - read("2024-03-31 01:30", zone="Europe/Berlin") == 3600
    assert gap == read("2024-03-31T03:30:00+02:00")


# -- errors name the field ------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields", [{}, {"start_date": None}, {"start_date": ""}, {"start_date": " "}, {"x": 1}]
)
def test_a_missing_date_is_required(fields):
    with pytest.raises(InvalidChange) as caught:
        read_date(DateSpec("start_date"), fields)
    assert caught.value.errors == [("start_date", "is required for a maintenance plan")]


def test_a_missing_nested_date_is_required_under_its_path():
    for fields in ({}, {"fields": "text"}, {"fields": {}}, {"fields": {"due": None}}):
        with pytest.raises(InvalidChange, match=r"fields\.due: is required"):
            read_date(compile_date_spec("fields.due"), fields)


@pytest.mark.parametrize(
    ("value", "fmt", "message"),
    [
        ("15/06/2024", "auto", "as ISO 8601 or epoch seconds/milliseconds: '15/06/2024'"),
        ("2024-06-15 01:00:00", "epoch_s", "is not a date as epoch seconds: '2024-06-15 01:00:00'"),
        ("soon", "epoch_ms", "is not a date as epoch milliseconds: 'soon'"),
        (JUNE_15_0100, "iso8601", "is not a date as ISO 8601: '1718413200'"),
        ("2024-06-15", "%d/%m/%Y", "is not a date as %d/%m/%Y: '2024-06-15'"),
        ("2024-02-30 01:00:00", "auto", "is not a date as ISO 8601 or epoch seconds/millisecon"),
        (True, "auto", "'True'"),
        (False, "epoch_s", "'False'"),
        ({"value": "2024-06-15 01:00:00", "display_value": "x"}, "auto", "'<dict>'"),
        (["2024-06-15 01:00:00"], "auto", "'<list>'"),
        (10**40, "auto", "'<int>'"),
        pytest.param(10**5000, "epoch_s", "'<int>'", id="a-5001-digit-int"),
        (float("nan"), "auto", "'nan'"),
        (float("inf"), "epoch_ms", "'inf'"),
        (-(10**16), "epoch_s", "'-10000000000000000'"),
        ("9" * 200, "auto", "'" + "9" * 57 + "...'"),
        ("1e9", "auto", "'1e9'"),
        ("9999-12-31T23:59:59-05:00", "auto", "'9999-12-31T23:59:59-05:00'"),  # past year 9999 UTC
    ],
)
def test_a_value_that_is_not_a_date_is_refused_naming_the_field(value, fmt, message):
    error = refused(value, fmt, field="end_date")
    assert message in str(error)
    assert str(error).startswith("end_date: is not a date as ")


# -- compile_date_spec ---------------------------------------------------------------------


def test_compile_reads_a_bare_field_name_or_a_mapping():
    assert compile_date_spec("start_date") == DateSpec("start_date", "auto", "UTC")
    spec = {"field": "f.x", "format": "%d/%m/%Y %H:%M", "time_zone": "Europe/Berlin"}
    assert compile_date_spec(spec) == DateSpec("f.x", "%d/%m/%Y %H:%M", "Europe/Berlin")
    assert compile_date_spec({"field": "end", "format": "epoch_ms"}).format == "epoch_ms"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"field": "x", "time_zone": "Mars/Olympus_Mons"}, "time_zone: 'Mars/Olympus_Mons' is not"),
        ({"field": "x", "time_zone": "europe/berlin"}, "time_zone: 'europe/berlin' is not an IANA"),
        ({"field": "x", "time_zone": "Europe"}, "time_zone: 'Europe' is not an IANA"),
        ({"field": "x", "time_zone": "../etc/passwd"}, "time_zone: '../etc/passwd'"),
        ({"field": "x", "time_zone": "localtime"}, "time_zone: 'localtime'"),
        ({"field": "x", "time_zone": 2}, "time_zone: 2 is not"),
        ({"field": "x", "zone": "UTC"}, "unknown key 'zone': use field, format and time_zone"),
        ({"field": "x", "b": 1, "a": 2}, "unknown key 'a', 'b'"),
        ({"format": "auto"}, "field: is required"),
        ({"field": ""}, "field: must name a change field"),
        ({"field": 12}, "field: must name a change field"),
        ("", "field: must name a change field"),
        (["start_date"], "a date is a field name or a mapping"),
        (None, "a date is a field name or a mapping"),
        ({"field": "x", "format": "epoch"}, "format: 'epoch' is unknown; use auto, iso8601"),
        ({"field": "x", "format": "ISO8601"}, "format: 'ISO8601' is unknown"),
        ({"field": "x", "format": None}, "format: None is unknown"),
        ({"field": "x", "format": "%d/%m/%Y %Q"}, "format: '%d/%m/%Y %Q' is not a usable strptime"),
        ({"field": "x", "format": "%s"}, "format: '%s' is not a usable strptime pattern"),
    ],
)
def test_compile_refuses_a_bad_spec_precisely(spec, message):
    with pytest.raises(ValueError) as caught:
        compile_date_spec(spec)
    assert message in str(caught.value)


def test_a_datespec_built_directly_is_checked_too():
    with pytest.raises(ValueError, match="time_zone: 'Nowhere'"):
        DateSpec("start_date", time_zone="Nowhere")


# -- parse_duration (padding) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (0, 0),
        (900, 900),
        (-300, -300),
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d2h", 93600),
        ("1d2h3m4s", 93784),
        ("0s", 0),
        (" 15M ", 900),
        ("-15m", -900),
        ("PT15M", 900),
        ("P1DT2H", 93600),
        ("P1D", 86400),
        ("PT1H30M", 5400),
        ("PT45S", 45),
        ("pt15m", 900),
        ("-PT15M", -900),
    ],
)
def test_parse_duration_reads_every_form(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["", " ", "-", "15", "15 m", "1h 30m", "30m1h", "1.5h", "15min", "1w", "--15m", "+15m",
     "P", "PT", "P1DT", "P1M", "P1Y", "P1W", "PT1.5H", "T15M", "PT15", "1h1h", "9999999999s",
     "\u0661\u0665m", "15m\x00", None, 1.5, 900.0, True, ["15m"]],
)  # fmt: skip
def test_parse_duration_refuses_anything_else(value):
    with pytest.raises(ValueError, match=r"is not a duration: use e\.g\. 90s, 15m"):
        parse_duration(value)


# -- properties ----------------------------------------------------------------------------

FORMATS = ["auto", "iso8601", "epoch_s", "epoch_ms", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M %z"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Chatham"]
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats()
    | st.text()
    | st.from_regex(r"\A-?[0-9]{1,20}(\.[0-9]{1,9})?\Z")
    | st.datetimes().map(str)
    | st.datetimes().map(lambda moment: moment.strftime("%d/%m/%Y %H:%M +0000")),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(value=JSON, fmt=st.sampled_from(FORMATS), zone=st.sampled_from(ZONES))
def test_read_date_returns_an_int_or_raises_invalid_change_only(value, fmt, zone):
    try:
        result = read(value, fmt, zone)
    except InvalidChange as error:
        assert error.field == "start_date"
    else:
        assert type(result) is int


OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1900, 1, 1), timezones=OFFSETS))
def test_iso_values_with_an_offset_read_as_their_floored_instant(moment):
    expected = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    for zone in ("UTC", "Pacific/Chatham"):  # the spec's zone never overrides an offset
        assert read(moment.isoformat(), "iso8601", zone) == expected
        assert read(moment.isoformat(sep=" "), "auto", zone) == expected


@settings(max_examples=300, deadline=None)
@given(text=st.text() | st.from_regex(r"\A-?(P|PT)?([0-9]{1,3}[dhmsDHMS]){0,4}\Z"))
def test_parse_duration_returns_an_int_or_raises_value_error_only(text):
    try:
        assert type(parse_duration(text)) is int
    except ValueError as error:
        assert "is not a duration" in str(error)

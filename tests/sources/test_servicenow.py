"""ServiceNow records -> Change: every sample, every value shape, and errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bridge.errors import InvalidChange
from bridge.model import CI
from bridge.sources.servicenow import parse

PAYLOADS = Path(__file__).parent.parent / "payloads" / "servicenow"
THREE_CIS = ["lnx-db-prod-01", "payments-api-prod", "lb-edge-02"]


def load(name: str) -> dict:
    return json.loads((PAYLOADS / f"servicenow_{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def record() -> dict:
    """A minimal bare change_request record in the Business Rule's plain-string shape."""
    return {
        "number": "CHG0000001",
        "state": "-2",
        "sys_mod_count": "3",
        "sys_updated_on": "2024-06-10 14:02:31",
        "short_description": "Patch web tier",
        "start_date": "2024-06-15 01:00:00",
        "end_date": "2024-06-15 03:00:00",
    }


def invalid_field(raw: dict) -> str:
    """The field the InvalidChange raised by parse(raw) names."""
    with pytest.raises(InvalidChange) as caught:
        parse(raw)
    assert caught.value.errors[0][0] == caught.value.field
    return caught.value.field


# --- the sample payloads --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "number", "state", "label", "version", "cis"),
    [
        ("change_scheduled", "CHG0030412", "-2", "Scheduled", (9, 1718028151), THREE_CIS),
        ("change_rescheduled", "CHG0030412", "-2", "Scheduled", (12, 1718093709), THREE_CIS),
        ("change_on_hold", "CHG0030412", "-2", "Scheduled", (10, 1718041700), THREE_CIS),
        ("change_emergency_implement", "CHG0030421", "-1", "Implement", (5, 1718418107), THREE_CIS),
        ("change_closed_early", "CHG0030412", "3", "Closed", (19, 1718505612), THREE_CIS),
        ("change_canceled", "CHG0030415", "4", "Canceled", (7, 1718210455), ["lb-edge-02"]),
        # Table API, sysparm_display_value=false: cmdb_ci is a bare {link, value}: no CI name.
        ("table_api_change_request", "CHG0030412", "-2", "Scheduled", (12, 1718093709), []),
        # sysparm_display_value=all: floats (-2.0, 12.0), display dates 7 h behind the value.
        (
            "change_api_display_value_all",
            "CHG0030412",
            "-2",
            "Scheduled",
            (12, 1718093709),
            ["lnx-db-prod-01"],
        ),
    ],
)
def test_every_change_request_sample_parses(sample, number, state, label, version, cis):
    change = parse(load(sample))
    assert change.source == "servicenow"
    assert change.fields["number"] == number
    assert (change.fields["state"], change.fields["state_label"]) == (state, label)
    assert change.version == version
    assert [ci.name for ci in change.cis] == cis


def test_every_change_request_sample_is_covered():
    """A new change_request sample must be added to the table above."""
    covered = {
        "change_scheduled",
        "change_rescheduled",
        "change_on_hold",
        "change_emergency_implement",
        "change_closed_early",
        "change_canceled",
        "table_api_change_request",
        "change_api_display_value_all",
    }
    on_disk = {p.stem.removeprefix("servicenow_") for p in PAYLOADS.glob("*.json")}
    assert on_disk - covered == {"change_task", "outage"}  # other tables, not change_request


def test_versions_compare_as_numbers_not_strings():
    older = parse(load("change_scheduled")).version  # sys_mod_count "9"
    newer = parse(load("change_rescheduled")).version  # sys_mod_count "12"
    assert older < newer
    assert parse(load("change_on_hold")).version < newer  # "10" < "12"


def test_affected_cis_keep_their_class():
    change = parse(load("change_scheduled"))
    assert change.cis == (
        CI("lnx-db-prod-01", "cmdb_ci_linux_server"),
        CI("payments-api-prod", "cmdb_ci_appl"),
        CI("lb-edge-02", "cmdb_ci_lb"),
    )


def test_display_value_all_takes_values_never_display_dates():
    change = parse(load("change_api_display_value_all"))
    assert change.fields["sys_mod_count"] == 12
    assert change.fields["start_date"] == "2024-06-16 01:00:00"
    assert change.fields["end_date"] == "2024-06-16 04:00:00"
    assert change.fields["start_date_display"] == "2024-06-15 18:00:00"
    assert change.fields["on_hold"] is False
    # 2024-06-11 08:15:09 UTC (the value), not 01:15:09 (the display value, in PDT).
    assert change.version[1] == 1718093709


def test_table_api_booleans_and_references_are_flattened():
    fields = parse(load("table_api_change_request")).fields
    assert fields["active"] is True
    assert fields["on_hold"] is False
    assert fields["outside_maintenance_schedule"] is False
    assert fields["assignment_group"] == "9eea587b0b2d73b7b80991a62e6d5ab1"
    assert "cmdb_ci_display" not in fields


# --- envelopes and value shapes -------------------------------------------------------------------


def test_bare_record_and_result_envelope_parse_alike(record):
    assert parse({"result": record}) == parse(record)


def test_envelope_fields_are_optional_and_unknown_keys_ignored(record):
    change = parse(record | {"x_acme_custom": {"nested": [1, 2]}, "previous": None})
    assert change.fields["number"] == "CHG0000001"
    assert change.fields["x_acme_custom"] == {"nested": [1, 2]}


def test_value_display_value_objects_give_the_value_and_keep_the_display(record):
    record["short_description"] = {"value": "Patch", "display_value": "Patch (shown)"}
    fields = parse(record).fields
    assert fields["short_description"] == "Patch"
    assert fields["short_description_display"] == "Patch (shown)"


@pytest.mark.parametrize("sender_first", [True, False], ids=["sender_first", "sender_after"])
def test_a_sender_display_field_is_not_overwritten(record, sender_first):
    reference = {"assigned_to": {"value": "abc", "display_value": "From object"}}
    sent = {"assigned_to_display": "Sent by BR"}
    raw = {**record, **sent, **reference} if sender_first else {**record, **reference, **sent}
    assert parse(raw).fields["assigned_to_display"] == "Sent by BR"


def test_reference_link_value_gives_the_sys_id(record):
    record["assignment_group"] = {"link": "https://x/api/now/table/g/abc", "value": "abc"}
    assert parse(record).fields["assignment_group"] == "abc"


@pytest.mark.parametrize(
    ("state", "number", "label"),
    [
        ("-2", "-2", "Scheduled"),
        (-2, "-2", "Scheduled"),
        (-2.0, "-2", "Scheduled"),
        ("-2.0", "-2", "Scheduled"),
        ({"value": -2.0, "display_value": "Scheduled"}, "-2", "Scheduled"),
        ({"value": "-1", "display_value": "Implement"}, "-1", "Implement"),
        ("Scheduled", "-2", "Scheduled"),
        ("scheduled", "-2", "Scheduled"),
        ("SCHEDULED", "-2", "Scheduled"),
        (" Implement ", "-1", "Implement"),
        ("4", "4", "Canceled"),
        (3, "3", "Closed"),
        ("-5", "-5", "New"),
    ],
)
def test_state_as_number_label_or_object(record, state, number, label):
    record["state"] = state
    fields = parse(record).fields
    assert (fields["state"], fields["state_label"]) == (number, label)


def test_state_outside_the_model_takes_the_senders_label(record):
    record |= {"state": "1", "state_display": "Open"}
    fields = parse(record).fields
    assert (fields["state"], fields["state_label"]) == ("1", "Open")


def test_a_custom_state_label_passes_through(record):
    record["state"] = "Awaiting vendor"
    assert parse(record).fields["state_label"] == "Awaiting vendor"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", False),
        ("1", True),
        ("true", True),
        ("false", False),
        ("TRUE", True),
        (True, True),
        (False, False),
        ({"value": "1", "display_value": "true"}, True),
        ({"value": False, "display_value": "false"}, False),
        ("", False),
        (None, None),
    ],
)
def test_booleans_in_every_shape(record, raw, expected):
    record["on_hold"] = raw
    assert parse(record).fields["on_hold"] is expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("12", 12), (12, 12), (12.0, 12), ("12.0", 12), ("0", 0)]
)
def test_sys_mod_count_as_string_int_or_float(record, raw, expected):
    record["sys_mod_count"] = {"value": raw, "display_value": "12"}
    change = parse(record)
    assert change.version[0] == expected
    assert change.fields["sys_mod_count"] == expected
    assert isinstance(change.version[0], int)


def test_version_is_mod_count_then_utc_epoch_seconds(record):
    assert parse(record).version == (3, 1718028151)


def test_missing_sys_updated_on_counts_as_zero(record):
    del record["sys_updated_on"]
    assert parse(record).version == (3, 0)


# --- CIs ------------------------------------------------------------------------------------------


def test_affected_cis_in_both_shapes_then_cmdb_ci(record):
    record["affected_cis"] = [
        {"name": "web-01", "sys_class_name": "cmdb_ci_linux_server"},
        {"ci_item": {"value": "s2", "display_value": "web-02"}, "sys_class_name": "cmdb_ci_win"},
    ]
    record["cmdb_ci"] = {"value": "s3", "display_value": "db-01"}
    assert parse(record).cis == (
        CI("web-01", "cmdb_ci_linux_server"),
        CI("web-02", "cmdb_ci_win"),
        CI("db-01"),
    )


def test_cmdb_ci_already_among_affected_cis_is_not_repeated(record):
    record["affected_cis"] = [
        {"ci_item": {"value": "s1", "display_value": "web-01"}, "sys_class_name": "x"},
        {"name": "web-02"},
    ]
    record["cmdb_ci"] = {"value": "s1", "display_value": "web-01"}
    assert [ci.name for ci in parse(record).cis] == ["web-01", "web-02"]


def test_cmdb_ci_alone_is_the_only_ci(record):
    record["cmdb_ci"] = {"value": "s1", "display_value": " web-01 "}
    assert parse(record).cis == (CI("web-01"),)


@pytest.mark.parametrize(
    "cmdb_ci",
    [
        {"link": "https://x/api/now/table/cmdb_ci/s1", "value": "s1"},
        {"value": "s1", "display_value": ""},
        "0a1b2c3d4e5f60718293a4b5c6d7e8f9",  # a plain sys_id names no CI
        "",
        None,
    ],
)
def test_cmdb_ci_without_a_display_name_gives_no_ci(record, cmdb_ci):
    record["cmdb_ci"] = cmdb_ci
    assert parse(record).cis == ()


@pytest.mark.parametrize("name", ["web-01", " web-01 ", "lnx-db-prod-01.example.com"])
def test_a_plain_string_reference_is_the_cis_name(record, name):
    """What a Business Rule sends with getDisplayValue()."""
    record["cmdb_ci"] = name
    assert parse(record).cis == (CI(name.strip()),)


def test_a_plain_string_ci_item_of_an_affected_ci_is_its_name(record):
    record["affected_cis"] = [{"ci_item": "web-02", "sys_class_name": "cmdb_ci_server"}]
    record["cmdb_ci"] = ""
    assert parse(record).cis == (CI("web-02", "cmdb_ci_server"),)


def test_without_sys_mod_count_sys_updated_on_alone_orders_the_events(record):
    del record["sys_mod_count"]
    earlier = parse({**record, "sys_updated_on": "2024-06-10 14:02:31"}).version
    later = parse({**record, "sys_updated_on": "2024-06-10 14:02:32"}).version
    assert earlier < later


def test_without_sys_mod_count_and_sys_updated_on_the_change_is_refused(record):
    del record["sys_mod_count"]
    record.pop("sys_updated_on", None)
    assert invalid_field(record) == "sys_mod_count"


def test_ci_class_given_as_a_value_object(record):
    record["affected_cis"] = [
        {
            "name": "web-01",
            "sys_class_name": {"value": "cmdb_ci_linux_server", "display_value": "L"},
        }
    ]
    assert parse(record).cis == (CI("web-01", "cmdb_ci_linux_server"),)


@pytest.mark.parametrize("empty", [None, []])
def test_no_affected_cis_is_fine(record, empty):
    record["affected_cis"] = empty
    assert parse(record).cis == ()


def test_affected_cis_is_not_a_flattened_field(record):
    record["affected_cis"] = [{"name": "web-01"}]
    assert "affected_cis" not in parse(record).fields


# --- invalid records ------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["number", "state"])
def test_missing_required_field_is_named(record, field):
    del record[field]
    assert invalid_field(record) == field


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", ""),
        ("number", "   "),
        ("number", None),
        ("number", 30412),
        ("state", ""),
        ("state", None),
        ("state", True),
        ("state", "-2.5"),
        ("sys_mod_count", "abc"),
        ("sys_mod_count", "1.5"),
        ("sys_mod_count", 1.5),
        ("sys_mod_count", "-1"),
        ("sys_mod_count", True),
        ("sys_mod_count", [12]),
        ("sys_updated_on", "06/15/2024 01:00"),
        ("sys_updated_on", "2024-06-10T14:02:31Z"),
        ("sys_updated_on", "2024-06-10"),
        ("on_hold", "maybe"),
        ("active", "2"),
    ],
)
def test_bad_value_is_named(record, field, value):
    record[field] = value
    assert invalid_field(record) == field


def test_a_display_only_date_is_a_doubt_never_read_as_utc(record):
    record["sys_updated_on"] = {"display_value": "2024-06-10 07:02:31"}
    change = parse(record)
    assert change.version == (3, 0)  # sys_mod_count alone orders the events
    assert "display_values" in change.doubts["sys_updated_on"]
    del record["sys_mod_count"]
    assert invalid_field(record) == "sys_updated_on"  # then nothing orders them: refused


@pytest.mark.parametrize("value", ["web-01", {"name": "web-01"}, 3])
def test_affected_cis_not_a_list(record, value):
    record["affected_cis"] = value
    assert invalid_field(record) == "affected_cis"


@pytest.mark.parametrize(
    "entry",
    [
        {"sys_class_name": "cmdb_ci_linux_server"},
        {"ci_item": {"link": "https://x/api/now/table/cmdb_ci/s2", "value": "s2"}},
        {"ci_item": {"value": "s2", "display_value": "  "}},
        {"name": ""},
        "web-02",
    ],
)
def test_affected_ci_without_a_name_is_named_by_index(record, entry):
    record["affected_cis"] = [{"name": "web-01"}, entry]
    assert invalid_field(record) == "affected_cis[1]"


def test_the_error_says_what_is_wrong(record):
    record["sys_mod_count"] = "abc"
    with pytest.raises(InvalidChange) as caught:
        parse(record)
    assert "'abc'" in str(caught.value)
    assert caught.value.status == 422


def test_parse_does_not_change_its_input(record):
    record["affected_cis"] = [{"name": "web-01"}]
    before = copy.deepcopy(record)
    parse({"result": record})
    assert record == before

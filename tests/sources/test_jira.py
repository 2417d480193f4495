"""Jira payloads -> Change: every sample, every shape, versions, and errors that name the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from bridge_harness import json_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import InvalidChange
from bridge.sources.jira import MAX_TIMESTAMP, parse

PAYLOADS = Path(__file__).parent.parent / "payloads" / "jira"
CHANGE_START = "customfield_10008"
CHANGE_TYPE = "customfield_10005"


def load(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


@pytest.fixture
def webhook() -> dict:
    """A minimal Cloud admin webhook for an updated change issue."""
    return {
        "timestamp": 1718093709301,
        "webhookEvent": "jira:issue_updated",
        "issue_event_type_name": "issue_updated",
        "issue": {
            "id": "10001",
            "self": "https://acme.atlassian.net/rest/api/2/issue/10001",
            "key": "OPS-7",
            "fields": {
                "summary": "Patch web tier",
                "status": {"name": "Implementing", "statusCategory": {"key": "indeterminate"}},
                "updated": "2024-06-11T08:15:09.287+0000",
            },
        },
        "changelog": {"items": []},
    }


def invalid_field(raw: dict) -> str:
    """The field the InvalidChange raised by parse(raw) names."""
    with pytest.raises(InvalidChange) as caught:
        parse(raw)
    assert caught.value.errors[0][0] == caught.value.field
    return caught.value.field


# --- the sample payloads --------------------------------------------------------------------------

# sample: key, status, status_category, version, event, changed_fields
SAMPLES = {
    "jsm_change_request_created": (
        "ITSM-1042", "Planning", "new", 1717431128166, "issue_created", [],
    ),
    "jira_webhook_issue_updated_change": (
        "ITSM-1042", "Awaiting implementation", "indeterminate", 1718093709301, "issue_updated",
        ["customfield_10008", "customfield_10009"],
    ),
    "jira_webhook_transition_canceled": (
        "ITSM-1042", "Canceled", "done", 1718210455219, "issue_updated", ["resolution", "status"],
    ),
    "jira_webhook_issue_deleted_change": (
        "ITSM-1051", "Planning", "new", 1718271002588, "issue_deleted", [],
    ),
    # Data Center: the changelog item has no fieldId, only the field's name.
    "jira_datacenter_webhook": (
        "CHG-311", "Implementing", "indeterminate", 1718416682431, "issue_updated", ["status"],
    ),
    "jira_datacenter_postfunction_transition": (
        "CHG-311", "Completed", "done", 1718420731690, "transition", [],
    ),
    # Automation bodies carry no timestamp: the version is `updated` (14:02:31.412 UTC).
    "jira_automation_issue_data_jira_format": (
        "ITSM-1042", "Awaiting implementation", "indeterminate", 1718028151412, "automation", [],
    ),
    "jira_automation_issue_data_automation_format": (
        "ITSM-1042", "Awaiting implementation", "indeterminate", 1718028151412, "automation", [],
    ),
}  # fmt: skip


@pytest.mark.parametrize(
    ("sample", "key", "status", "category", "version", "event", "changed"),
    [(sample, *expected) for sample, expected in SAMPLES.items()],
)
def test_every_sample_parses(sample, key, status, category, version, event, changed):
    change = parse(load(sample))
    assert change.source == "jira"
    assert change.fields["key"] == key
    assert (change.fields["status"], change.fields["status_category"]) == (status, category)
    assert change.version == (version,)
    assert change.fields["event"] == event
    assert change.fields["deleted"] is (event == "issue_deleted")
    assert change.fields["changed_fields"] == changed
    assert change.cis == ()


def test_every_sample_is_covered():
    """A new Jira sample must be added to the table above; the custom body is not an issue."""
    on_disk = {p.stem for p in PAYLOADS.glob("j*.json")}
    assert on_disk - set(SAMPLES) == {"jira_automation_custom_body"}
    assert invalid_field(load("jira_automation_custom_body")) == "issue.key"


def test_cloud_change_fields_are_named_for_operators():
    fields = parse(load("jira_webhook_issue_updated_change")).fields
    expected = {
        "key": "ITSM-1042",
        "id": "10842",
        "summary": "Upgrade PostgreSQL on payments database cluster to 15.7",
        "status": "Awaiting implementation",
        "status_category": "indeterminate",
        "issue_type": "[System] Change",
        "project": "ITSM",
        "priority": "Medium",
        "resolution": None,
        "labels": ["database", "payments"],
        "components": ["Payments database"],
        "created": "2024-06-03T16:12:08.118+0000",
        "updated": "2024-06-11T08:15:09.287+0000",
        "assignee": "Priya Raman",
        "reporter": "Jonas Okafor",
        "url": "https://acme-it.atlassian.net/browse/ITSM-1042",
        "webhook_event": "jira:issue_updated",
        "issue_event_type": "issue_updated",
        "transition": None,
        "from_status": None,
        "to_status": None,
    }
    assert {name: fields[name] for name in expected} == expected
    assert fields["description"].startswith("Minor-version upgrade")


def test_cloud_custom_fields_are_flattened():
    fields = parse(load("jira_webhook_issue_updated_change")).fields
    assert fields[CHANGE_START] == "2024-06-16T01:00:00.000+0000"  # as sent: the mapping parses
    assert fields["customfield_10009"] == "2024-06-16T04:00:00.000+0000"
    assert fields[CHANGE_TYPE] == "Normal"
    assert fields["customfield_10006"] == "Medium"
    assert fields["customfield_10004"] == "Moderate / Limited"
    assert fields["customfield_10043"] == ["2a6f3d91-7c0e-4b8e-9f61-3d2e1c0b9a87"]
    assert fields["customfield_10045"].startswith("Fail back")
    assert "customfield_10010" not in fields  # JSM's request type: an object with no label
    assert fields["duedate"] is None
    assert fields["resolutiondate"] is None
    assert fields["creator"] == "Jonas Okafor"


def test_canceled_transition_reads_the_status_change_and_resolution():
    fields = parse(load("jira_webhook_transition_canceled")).fields
    assert (fields["from_status"], fields["to_status"]) == ("Awaiting implementation", "Canceled")
    assert fields["resolution"] == "Won't Do"
    assert fields["issue_event_type"] == "issue_generic"


def test_deleted_issue_keeps_its_fields():
    change = parse(load("jira_webhook_issue_deleted_change"))
    assert change.fields["deleted"] is True
    assert change.fields[CHANGE_START] == "2024-06-15T01:00:00.000+0000"


def test_data_center_webhook_users_dates_and_custom_fields():
    fields = parse(load("jira_datacenter_webhook")).fields
    assert (fields["assignee"], fields["reporter"]) == ("Priya Raman", "Jonas Okafor")
    assert fields["updated"] == "2024-06-14T21:58:02.417-0400"
    assert fields["customfield_12100"] == "Standard"
    assert fields["customfield_12104"] == "2024-06-14T22:00:00.000-0400"
    assert (fields["from_status"], fields["to_status"]) == (
        "Awaiting implementation",
        "Implementing",
    )
    assert fields["url"] == "https://jira.acme.internal/browse/CHG-311"
    assert fields["components"] == []


def test_post_function_body_is_a_transition():
    fields = parse(load("jira_datacenter_postfunction_transition")).fields
    assert fields["transition"] == "Complete"
    assert (fields["from_status"], fields["to_status"]) == ("Implementing", "Completed")
    assert (fields["webhook_event"], fields["deleted"]) == (None, False)
    assert fields["resolution"] == "Done"


def test_automation_formats_parse_alike_with_a_numeric_id():
    jira_format = parse(load("jira_automation_issue_data_jira_format"))
    automation_format = parse(load("jira_automation_issue_data_automation_format"))
    assert dict(jira_format.fields) == dict(automation_format.fields)
    assert jira_format.version == automation_format.version
    fields = automation_format.fields
    assert (fields["id"], fields["issue_type"], fields["project"]) == (
        "10842",
        "[System] Change",
        "ITSM",
    )
    assert fields[CHANGE_TYPE] == "Normal"
    assert fields[CHANGE_START] == "2024-06-15T01:00:00.000+0000"


# --- shapes ---------------------------------------------------------------------------------------


def test_each_shape_is_recognised_from_the_payload(webhook):
    issue = webhook["issue"]
    post_function = {"transition": {"transitionName": "Start", "to_status": "Implementing"}}
    shapes = {
        "issue_updated": webhook,
        "transition": {**post_function, "comment": "", "issue": issue},
        "automation": {"issue": issue},
    }
    for event, raw in shapes.items():
        assert parse(raw).fields["event"] == event
    top_level = parse({**issue, "id": 10001})
    assert (top_level.fields["event"], top_level.fields["id"]) == ("automation", "10001")


@pytest.mark.parametrize(
    ("webhook_event", "event"),
    [("jira:issue_created", "issue_created"), ("comment_created", "comment_created")],
)
def test_event_is_the_webhook_event_without_its_prefix(webhook, webhook_event, event):
    webhook["webhookEvent"] = webhook_event
    assert parse(webhook).fields["event"] == event


def test_cascading_select_user_picker_and_multi_select(webhook):
    webhook["issue"]["fields"] |= {
        "customfield_1": {"value": "EMEA", "id": "1", "child": {"value": "Paris", "id": "2"}},
        "customfield_2": {"accountId": "abc", "displayName": "Ana"},
        "customfield_3": [{"value": "web"}, {"value": "db"}],
        "customfield_4": [{"name": "svc-a"}, {"key": "SVC-2"}, {"nothing": 1}],
        "customfield_5": 3.5,
        "customfield_6": None,
        "customfield_7": {"value": "solo", "child": None},
    }
    fields = parse(webhook).fields
    assert fields["customfield_1"] == "EMEA / Paris"
    assert fields["customfield_2"] == "Ana"
    assert fields["customfield_3"] == ["web", "db"]
    assert fields["customfield_4"] == ["svc-a", "SVC-2"]
    assert fields["customfield_5"] == 3.5
    assert fields["customfield_6"] is None
    assert fields["customfield_7"] == "solo"


def test_issue_fields_never_override_the_bridges_names(webhook):
    webhook["issue"]["fields"] |= {"deleted": True, "event": "x", "url": "y", "project": "P"}
    fields = parse(webhook).fields
    assert (fields["deleted"], fields["event"]) == (False, "issue_updated")
    assert fields["url"] == "https://acme.atlassian.net/browse/OPS-7"
    assert fields["project"] == "P"  # a plain value is its own label


def test_user_without_a_display_name_gives_the_user_name(webhook):
    webhook["issue"]["fields"]["assignee"] = {"name": "praman", "key": "JIRAUSER10417"}
    assert parse(webhook).fields["assignee"] == "praman"


@pytest.mark.parametrize(
    ("self_url", "url"),
    [
        (
            "https://jira.acme.internal/jira/rest/api/2/issue/1",
            "https://jira.acme.internal/jira/browse/OPS-7",
        ),
        ("/rest/api/2/issue/1", None),
        ("https://acme.atlassian.net/other/1", None),
        (None, None),
        (42, None),
    ],
)
def test_browse_url_from_self(webhook, self_url, url):
    webhook["issue"]["self"] = self_url
    assert parse(webhook).fields["url"] == url


def test_a_non_text_description_is_none(webhook):
    webhook["issue"]["fields"]["description"] = {"type": "doc", "version": 1, "content": []}
    fields = parse(webhook).fields
    assert fields["description"] is None


def test_wrong_types_in_optional_parts_read_as_absent(webhook):
    webhook["issue"]["fields"] |= {"status": "Open", "labels": "a,b", "components": {"name": "x"}}
    webhook["changelog"] = {"items": ["status", {"field": 3}, {"fieldId": "", "field": "x"}]}
    webhook["transition"] = ["not", "an", "object"]
    fields = parse(webhook).fields
    assert (fields["status"], fields["status_category"]) == ("Open", None)
    assert (fields["labels"], fields["components"]) == ([], [])
    assert fields["changed_fields"] == ["x"]
    assert fields["transition"] is None


def test_parse_does_not_change_its_input():
    raw = load("jira_webhook_issue_updated_change")
    before = copy.deepcopy(raw)
    parse(raw)
    assert raw == before


# --- versions -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "version"),
    [
        (1718093709301, 1718093709301),
        ("1718093709301", 1718093709301),
        (1718093709301.0, 1718093709301),
        (0, 0),
    ],
)
def test_timestamp_as_number_or_numeric_string(webhook, timestamp, version):
    webhook["timestamp"] = timestamp
    assert parse(webhook).version == (version,)
    assert type(parse(webhook).version[0]) is type(version)


def test_without_a_timestamp_the_version_is_updated_in_epoch_ms(webhook):
    del webhook["timestamp"]
    assert parse(webhook).version == (1718093709287,)
    webhook["timestamp"] = None
    assert parse(webhook).version == (1718093709287,)


def test_updated_keeps_its_offset(webhook):
    del webhook["timestamp"]
    webhook["issue"]["fields"]["updated"] = "2024-06-14T21:58:02.417-0400"  # 01:58:02 UTC
    assert parse(webhook).version == (1718416682417,)
    webhook["issue"]["fields"]["updated"] = "2020-08-18T02:40:37.0+0000"  # Automation's form
    assert parse(webhook).version == (1597718437000,)


@pytest.mark.parametrize("updated", [None, ""])
def test_neither_timestamp_nor_updated_is_unversioned(webhook, updated):
    del webhook["timestamp"]
    webhook["issue"]["fields"]["updated"] = updated
    assert parse(webhook).version == ()


def test_a_delete_is_ordered_by_its_own_timestamp(webhook):
    """No event is newest forever: a delete is older than a later event of its key (a restored
    issue) and newer than an earlier one, like any other event."""
    webhook |= {"webhookEvent": "jira:issue_deleted", "timestamp": 1718000000000}
    delete = parse(webhook)
    assert delete.fields["deleted"] is True
    webhook |= {"webhookEvent": "jira:issue_updated", "timestamp": 1718000000001}
    later = parse(webhook)
    webhook["timestamp"] = 1717999999999
    assert parse(webhook).version < delete.version < later.version
    assert delete.version_time == ("timestamp", 1718000000.0)  # checked against the clock too


def test_timestamps_compare_as_numbers(webhook):
    webhook["timestamp"] = "999"
    older = parse(webhook).version
    webhook["timestamp"] = "1000"
    assert older < parse(webhook).version


# --- invalid bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [{}, {"issue": {"fields": {}}}, {"issueKey": "ITSM-1"}, {"webhookEvent": "jira:issue_updated"}],
)
def test_no_issue_key_is_not_a_jira_payload(raw):
    with pytest.raises(InvalidChange) as caught:
        parse(raw)
    assert caught.value.field == "issue.key"
    assert "not a Jira issue payload" in str(caught.value)


@pytest.mark.parametrize("key", [1042, "", "   ", ["ITSM-1"], {"key": "ITSM-1"}, True])
def test_key_must_be_a_non_empty_string(webhook, key):
    webhook["issue"]["key"] = key
    assert invalid_field(webhook) == "issue.key"


@pytest.mark.parametrize("issue", ["ITSM-1", ["ITSM-1"], 3, None])
def test_issue_must_be_an_object(issue):
    assert invalid_field({"issue": issue, "key": "ITSM-1"}) == "issue"


@pytest.mark.parametrize(
    "timestamp",
    [
        "",
        "abc",
        "nan",
        "inf",
        "-1",
        -5,
        True,
        [1],
        {"ms": 1},
        MAX_TIMESTAMP,
        10**400,
        float("nan"),
        "1e12",
        "1718000000000.5",
        1.5e12 + 0.5,
        "-1718000000000",
    ],
)
def test_bad_timestamp_is_named(webhook, timestamp):
    webhook["timestamp"] = timestamp
    assert invalid_field(webhook) == "timestamp"


@pytest.mark.parametrize(
    "updated", ["yesterday", "2024-06-10T14:02:31", "2024-06-10", 1718093709287, ["x"]]
)
def test_bad_updated_is_named_when_it_is_the_version(webhook, updated):
    del webhook["timestamp"]
    webhook["issue"]["fields"]["updated"] = updated
    assert invalid_field(webhook) == "issue.fields.updated"


def test_webhook_event_must_be_text(webhook):
    webhook["webhookEvent"] = ["jira:issue_deleted"]
    assert invalid_field(webhook) == "webhookEvent"


def test_the_error_says_what_is_wrong(webhook):
    webhook["timestamp"] = "abc"
    with pytest.raises(InvalidChange) as caught:
        parse(webhook)
    assert "'abc'" in str(caught.value)
    assert caught.value.status == 422


# --- any JSON: a Change or InvalidChange, never another exception ---------------------------------

JSON = json_values(text_size=8, leaves=8)
FIELD_NAMES = st.sampled_from(
    ("status", "issuetype", "project", "priority", "resolution", "labels", "components")
) | st.sampled_from(("assignee", "reporter", "summary", "description", "created", "customfield_1"))
OPTION = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(["value", "displayName", "name", "key", "id", "child"], JSON)
)
STATUS = st.fixed_dictionaries({"name": JSON, "statusCategory": OPTION | JSON})
DATES = st.datetimes().map(lambda d: d.isoformat(timespec="milliseconds")) | st.text(max_size=30)
UPDATED = st.tuples(DATES, st.sampled_from(["", "+0000", "-0400", "+23:59", "Z"])).map("".join)
ISSUE_FIELDS = st.builds(
    lambda fields, known: {**fields, **known},
    st.dictionaries(FIELD_NAMES, JSON | OPTION | st.lists(OPTION, max_size=2)),
    st.fixed_dictionaries({}, optional={"status": STATUS, "updated": UPDATED}),
)
ISSUE = st.fixed_dictionaries(
    {"key": st.just("ITSM-1") | st.text(max_size=5) | JSON},
    optional={"id": JSON, "self": st.text(max_size=40) | JSON, "fields": ISSUE_FIELDS | JSON},
)
WEBHOOK = st.fixed_dictionaries(
    {"issue": ISSUE},
    optional={
        "timestamp": st.integers(0, MAX_TIMESTAMP)
        | st.integers().map(str)
        | st.floats().map(str)
        | JSON,
        "webhookEvent": st.sampled_from(["jira:issue_deleted", "jira:issue_updated", ""]) | JSON,
        "changelog": st.fixed_dictionaries({"items": st.lists(OPTION | JSON, max_size=3)}) | JSON,
        "transition": OPTION | JSON,
        "issue_event_type_name": JSON,
    },
)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_parses_or_names_a_field(raw: dict) -> None:
    """parse gives a Change with flat fields and a numeric version, or an InvalidChange."""
    try:
        change = parse(raw)
    except InvalidChange as error:
        assert error.field
        return
    assert all(type(n) in (int, float) for n in change.version)
    for value in change.fields.values():
        assert not isinstance(value, dict)  # vendor objects never leave sources/
        if isinstance(value, list):
            assert not any(isinstance(item, dict | list) for item in value)


@FAST
@given(st.dictionaries(st.text(max_size=8), JSON, max_size=5))
def test_any_json_object_parses_or_names_a_field(raw):
    check_parses_or_names_a_field(raw)


@FAST
@given(WEBHOOK)
def test_any_webhook_shaped_body_parses_or_names_a_field(raw):
    check_parses_or_names_a_field(raw)


@FAST
@given(ISSUE)
def test_any_automation_format_issue_parses_or_names_a_field(raw):
    check_parses_or_names_a_field(raw)

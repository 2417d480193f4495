"""Change windows end to end, through the web door, a real worker and the sandbox BigPanda:
ServiceNow display values and CI references, fallback dates, window bounds, prefix conditions,
Jira Automation issue data and the preview door (SPEC: "Payload shapes the sources accept",
"Window bounds", "Ownership")."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from bridge_harness import SERVICENOW_TOKEN, epoch, queued_jobs, sample_payload

MAPPINGS = Path(__file__).parent.parent / "mappings"
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
AUTOMATION_TOKEN = "jira-automation-token-for-tests"
AUTOMATION = {"Authorization": f"Bearer {AUTOMATION_TOKEN}"}
ALL_SHAPE = "servicenow_change_api_display_value_all.json"
JIRA_FORMAT = "jira_automation_issue_data_jira_format.json"
KEY = "CHG0030500"
STAMP = "%Y-%m-%d %H:%M:%S"
SYS_ID = "f7f7837a5ef27931b1ff952a5579a835"
LINK = f"https://acme.service-now.com/api/now/table/cmdb_ci/{SYS_ID}"
# ServiceNow date formats as strftime patterns, written here independently of the bridge.
PATTERNS = {"yyyy-MM-dd": "%Y-%m-%d", "dd/MM/yyyy": "%d/%m/%Y", "MM/dd/yyyy": "%m/%d/%Y",
            "dd.MM.yyyy": "%d.%m.%Y"}  # fmt: skip
ZONES = [
    {"time_zone": "America/Los_Angeles", "date_format": "dd/MM/yyyy"},
    {"time_zone": "Europe/Berlin", "date_format": "dd.MM.yyyy"},
    {"time_zone": "Asia/Kolkata", "date_format": "MM/dd/yyyy"},
    {"time_zone": "UTC", "date_format": "yyyy-MM-dd"},
]
ZONE_IDS = [z["time_zone"] for z in ZONES]
LA = ZONES[0]
META = set("\\.^$|?*+()[]{}")  # what a regular expression reads as syntax
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@pytest.fixture
def display_values():
    """The `display_values` a test's copy of servicenow.yaml names (None: not named)."""
    return None


@pytest.fixture
def match():
    """The `match:` of the copied servicenow.yaml's condition (the shipped file says exact)."""
    return "exact"


@pytest.fixture
def settings(settings, tmp_path, display_values, match):
    """The shipped mappings (copied and edited when a test names display values or a match),
    and a Jira Automation bearer token."""
    settings = replace(
        settings, secrets={**settings.secrets, "JIRA_AUTOMATION_TOKEN": AUTOMATION_TOKEN}
    )
    if display_values is None and match == "exact":
        return settings
    for name in ("servicenow.yaml", "jira.yaml"):
        shutil.copy(MAPPINGS / name, tmp_path / name)
    text = (tmp_path / "servicenow.yaml").read_text()
    assert "    match: exact " in text
    text = text.replace("    match: exact ", f"    match: {match} ")
    if display_values:
        pairs = ", ".join(f"{k}: {v}" for k, v in display_values.items())
        text += f"\ndisplay_values: {{{pairs}}}\n"
    (tmp_path / "servicenow.yaml").write_text(text)
    return replace(settings, mappings_dir=tmp_path)


def send(web, payload, source="servicenow", headers=None):
    return web.post(f"/webhooks/{source}", json=payload, headers=headers or AUTH)


def preview(web, payload, source="servicenow", headers=None):
    return web.post(f"/webhooks/{source}/preview", json=payload, headers=headers or AUTH)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(STAMP)


def seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def unambiguous(moment: datetime) -> bool:
    """The moment's wall-clock time happens exactly once in every zone of ZONES (no DST edge)."""
    for zone in (ZoneInfo(z["time_zone"]) for z in ZONES):
        wall = moment.astimezone(zone).replace(tzinfo=None)
        if {wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)} != {moment}:
            return False
    return True


def window(ahead: timedelta = HOUR, length: timedelta = 2 * HOUR) -> tuple[datetime, datetime]:
    """A window `ahead` from now, moved on by hours while a DST edge would make it ambiguous."""
    start = now().replace(second=0) + ahead
    while not (unambiguous(start) and unambiguous(start + length)):
        start += 3 * HOUR
    return start, start + length


def change(start: datetime | None, end: datetime | None, count: int = 9, **fields) -> dict:
    """A change_request of internal values (UTC dates), as the shipped Business Rule sends it."""
    return {
        "number": KEY,
        "sys_class_name": "change_request",
        "sys_mod_count": str(count),
        "sys_updated_on": stamp(now() - 5 * timedelta(minutes=1)),
        "state": "-2",
        "type": "normal",
        "short_description": "Patch web-01",
        "start_date": stamp(start) if start else "",
        "end_date": stamp(end) if end else "",
        "cmdb_ci": "web-01",
        **fields,
    }


def display(start: datetime, end: datetime, zone: dict, count: int = 9, **fields) -> dict:
    """The same change in display mode (getDisplayValue(), sysparm_display_value=true): labels,
    dates in the integration user's zone and format, the CI as its name."""
    pattern = f"{PATTERNS[zone['date_format']]} %H:%M:%S"

    def shown(moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(zone["time_zone"])).strftime(pattern)

    labels = {"sys_class_name": "Change Request", "state": "Scheduled", "type": "Normal"}
    record = change(start, end, count, **{**labels, **fields})
    return {
        **record,
        "sys_updated_on": shown(now() - 5 * timedelta(minutes=1)),
        "start_date": shown(start),
        "end_date": shown(end),
    }


def remembering(web, work) -> None:
    """Let the bridge build its plan memory (a first reconcile on a fresh Redis lists BigPanda
    and sets the ledger marker): until then a no-plan event of an unknown key is queued."""
    send(web, change(None, None, number="CHG0000001", state="4"))
    work()


def assert_refused(answer, field, redis_conn, work, bigpanda, known: bool = False):
    """A 422 problem naming `field`; nothing queued, stored (for a new key) or sent."""
    assert answer.status_code == 422, answer.json
    assert answer.content_type == "application/problem+json"
    assert answer.json["errors"][0]["field"] == field
    assert queued_jobs(redis_conn) == 0
    if not known:
        assert redis_conn.keys("bridge:*") == [b"bridge:stats"]  # the refusal is only counted
        work()
        assert bigpanda.plans() == []


def cancel_deletes(web, work, bigpanda, payload, source="servicenow", headers=None):
    answer = send(web, payload, source, headers)
    work()
    assert (answer.status_code, answer.json["action"]) == (202, "remove")
    assert [p for p in bigpanda.plans() if p["status"] != "done"] == []


# --- 1. ServiceNow display values ---------------------------------------------------------------


@pytest.mark.parametrize("zone", ZONES, ids=ZONE_IDS)
@pytest.mark.parametrize(
    "labels",
    [
        {"approval": "Approved", "risk": "Moderate", "impact": "2 - Medium"},
        {"sys_class_name": "change_request", "type": "normal"},
        {"state": "-2", "type": "normal"},
    ],
    ids=["many-labels", "only-state-label", "only-class-label"],
)
def test_display_dates_without_display_values_are_422_never_read_as_utc(
    web, work, bigpanda, redis_conn, zone, labels
):
    """A record in display mode whose mapping names no zone is refused at the door, naming the
    date field and the `display_values` setting: never read as UTC (SPEC, payload shapes)."""
    answer = send(web, display(*window(), zone, **labels))

    assert_refused(answer, "start_date", redis_conn, work, bigpanda)
    assert "display_values" in answer.json["errors"][0]["message"]
    assert "start_date" in answer.json["detail"]


@pytest.mark.parametrize("display_values", ZONES, ids=ZONE_IDS)
def test_display_dates_are_read_in_the_named_zone_and_a_display_cancel_deletes(
    web, work, bigpanda, display_values
):
    """With `display_values` named, display dates become the UTC instants they show, and a
    display-mode cancel (state "Canceled") deletes the plan."""
    start, end = window(ahead=5 * HOUR, length=3 * HOUR)

    answer = send(web, display(start, end, display_values))
    work()

    assert (answer.status_code, answer.json["action"]) == (202, "upsert")
    [plan] = bigpanda.plans()
    assert (plan["start"], plan["end"]) == (seconds(start), seconds(end))
    assert plan["condition"] == {"IN": ["host", ["web-01"]]}
    cancel_deletes(web, work, bigpanda, display(start, end, display_values, 10, state="Canceled"))


@pytest.mark.parametrize("display_values", [None, LA], ids=["no-setting", "los-angeles"])
def test_display_value_all_pairs_use_the_utc_value_dates(web, work, bigpanda, display_values):
    """sysparm_display_value=all sends {display_value, value} pairs: the plan takes the `value`
    dates (UTC), never the display ones, and needs no `display_values`."""
    payload = sample_payload("servicenow", ALL_SHAPE)
    record = payload["result"]

    answer = send(web, payload)
    work()

    assert answer.status_code == 202, answer.json
    [plan] = bigpanda.plans()
    assert plan["start"] == epoch(record["start_date"]["value"])
    assert plan["end"] == epoch(record["end_date"]["value"])
    assert plan["start"] != epoch(record["start_date"]["display_value"])
    assert plan["condition"] == {"IN": ["host", ["lnx-db-prod-01"]]}
    canceled = {
        **record,
        "state": {"display_value": "Canceled", "value": 4.0},
        "sys_mod_count": {"display_value": "13", "value": 13.0},
    }
    cancel_deletes(web, work, bigpanda, {"result": canceled})


@pytest.mark.parametrize("display_values", [LA], ids=["los-angeles"])
@pytest.mark.parametrize(
    "labels",
    [
        {"type": "Normal", "state": "Scheduled"},
        {"type": "Emergency", "state": "Implement"},
        {"type": "Standard", "state": "Scheduled"},
        {"type": "Emergency", "state": "Implement", "table": "Change Request"},
    ],
    ids=["normal-scheduled", "emergency-implement", "standard-scheduled", "table-label"],
)
def test_a_change_request_sent_with_labels_keeps_and_updates_its_plan(
    web, work, bigpanda, display_values, labels
):
    """sys_class_name "Change Request" is a change request: a labelled update of a change with a
    plan moves the plan, never removes it as "not a change request"."""
    start, end = window()
    send(web, change(start, end))
    work()
    [before] = bigpanda.plans()

    answer = send(web, display(start, end + HOUR, display_values, 10, **labels))
    work()

    assert (answer.status_code, answer.json["action"]) == (202, "upsert")
    [after] = bigpanda.plans()
    assert (after["id"], after["start"], after["end"]) == (
        before["id"],
        seconds(start),
        seconds(end + HOUR),
    )
    assert bigpanda.count("DELETE") == 0


# --- 2. A CI given only as a reference ----------------------------------------------------------

REFERENCES = [
    {"link": LINK, "value": SYS_ID},
    SYS_ID,
    SYS_ID.upper(),
    {"display_value": "", "value": SYS_ID},
]
REFERENCE_IDS = ["link-value", "sys-id", "upper-sys-id", "empty-display-value"]


@pytest.mark.parametrize("reference", REFERENCES, ids=REFERENCE_IDS)
def test_a_ci_sent_only_as_a_reference_is_422_and_the_plan_stays(
    web, work, bigpanda, redis_conn, reference
):
    """A newer version whose cmdb_ci carries no name is refused, saying how to send the name;
    the existing plan is left exactly as it was (never "no CI", never removed)."""
    start, end = window()
    send(web, change(start, end))
    work()
    [before] = bigpanda.plans()

    answer = send(web, change(start, end + HOUR, 10, cmdb_ci=reference))

    assert_refused(answer, "cmdb_ci", redis_conn, work, bigpanda, known=True)
    message = answer.json["errors"][0]["message"]
    assert "cmdb_ci.name" in message
    assert "display value" in message
    work()
    assert bigpanda.plans() == [before]
    assert bigpanda.count("PATCH") == bigpanda.count("DELETE") == 0


@pytest.mark.parametrize(
    "reference", [None, {"link": LINK, "value": SYS_ID}, SYS_ID], ids=["alone", "link", "sys-id"]
)
def test_a_dot_walked_ci_name_gets_the_plan(web, work, bigpanda, reference):
    """`"cmdb_ci.name": "web-01"` (dot-walked in the Business Rule) names the CI, whatever
    the cmdb_ci reference beside it looks like."""
    start, end = window()
    record = change(start, end, **{"cmdb_ci.name": "web-01", "cmdb_ci": reference})
    if reference is None:
        del record["cmdb_ci"]

    answer = send(web, record)
    work()

    assert answer.status_code == 202, answer.json
    [plan] = bigpanda.plans()
    assert plan["condition"] == {"IN": ["host", ["web-01"]]}
    cancel_deletes(web, work, bigpanda, {**record, "state": "4", "sys_mod_count": "10"})


@pytest.mark.parametrize("reference", REFERENCES, ids=REFERENCE_IDS)
def test_a_cancel_with_a_bare_reference_still_deletes_the_plan(web, work, bigpanda, reference):
    """When no plan is wanted the CI does not matter: a cancel whose cmdb_ci is a bare
    reference deletes the plan."""
    start, end = window()
    send(web, change(start, end))
    work()
    assert len(bigpanda.plans()) == 1

    cancel_deletes(web, work, bigpanda, change(start, end, 10, state="4", cmdb_ci=reference))


# --- 3. Planned dates missing -------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["", None], ids=["empty", "null"])
@pytest.mark.parametrize(
    ("state", "ahead"), [("-2", HOUR), ("-1", -10 * timedelta(minutes=1))], ids=["sched", "impl"]
)
def test_a_standard_change_without_planned_dates_gets_its_work_window(
    web, work, bigpanda, empty, state, ahead
):
    """Standard changes often carry only work_start/work_end: the shipped mapping falls back to
    them, and the cancel ends the plan."""
    start, end = window(ahead=ahead)
    record = change(None, None, type="standard", state=state, start_date=empty, end_date=empty,
                    work_start=stamp(start), work_end=stamp(end))  # fmt: skip

    answer = send(web, record)
    work()

    assert (answer.status_code, answer.json["action"]) == (202, "upsert")
    [plan] = bigpanda.plans()
    assert (plan["start"], plan["end"]) == (seconds(start), seconds(end))
    cancel_deletes(web, work, bigpanda, {**record, "state": "4", "sys_mod_count": "10"})


@pytest.mark.parametrize("state", ["3", "0"], ids=["closed", "review"])
@pytest.mark.parametrize("work_start", [True, False], ids=["work-start", "no-work-start"])
@pytest.mark.parametrize("empty", ["", None], ids=["empty", "null"])
def test_a_closed_change_with_past_work_end_and_no_planned_dates_is_window_over(
    web, work, bigpanda, redis_conn, state, work_start, empty
):
    """A change closed after its work ended, with no planned dates, wants no plan: 200 ignored
    window_over, not a 422 about the missing start_date."""
    remembering(web, work)
    ended = now() - 2 * HOUR
    record = change(None, None, state=state, start_date=empty, end_date=empty,
                    work_start=stamp(ended - HOUR) if work_start else empty,
                    work_end=stamp(ended))  # fmt: skip

    answer = send(web, record)
    work()

    assert answer.status_code == 200, answer.json
    assert (answer.json["status"], answer.json["reason"]) == ("ignored", "window_over")
    assert queued_jobs(redis_conn) == 0
    assert bigpanda.plans() == []


# --- 4. Window bounds ---------------------------------------------------------------------------

START_IN_9999 = (datetime(9999, 6, 1, tzinfo=UTC), datetime(9999, 6, 1, 2, tzinfo=UTC))
OUT_OF_BOUNDS = [
    ("end-260-years-after-start", lambda s: (s, s + 260 * 365 * DAY), {"end_date"}),
    ("start-in-9999", lambda s: START_IN_9999, {"start_date", "end_date"}),
    ("start-over-a-year-back", lambda s: (s - 367 * DAY, s + HOUR), {"start_date"}),
    (
        "end-over-two-years-ahead",
        lambda s: (s + 730 * DAY - 3 * HOUR, s + 730 * DAY + HOUR),
        {"end_date"},
    ),
    ("over-14-days", lambda s: (s, s + 14 * DAY + timedelta(minutes=1)), {"end_date"}),
]


@pytest.mark.parametrize(
    ("dates", "fields"),
    [case[1:] for case in OUT_OF_BOUNDS],
    ids=[case[0] for case in OUT_OF_BOUNDS],
)
def test_a_window_out_of_bounds_is_422_naming_the_field_and_nothing_is_queued(
    web, work, bigpanda, redis_conn, dates, fields
):
    """Start and end within a year back and two years ahead, the window at most 14 days;
    anything else is refused at the door and never reaches BigPanda."""
    start, end = dates(now().replace(second=0) + HOUR)

    answer = send(web, change(start, end))

    assert answer.status_code == 422, answer.json
    assert answer.json["errors"][0]["field"] in fields
    assert_refused(answer, answer.json["errors"][0]["field"], redis_conn, work, bigpanda)


@pytest.mark.parametrize(
    "dates",
    [
        lambda s: (s, s + 13 * DAY),
        lambda s: (s, s + 14 * DAY),
        lambda s: (s + 730 * DAY - 4 * HOUR, s + 730 * DAY - 2 * HOUR),
    ],
    ids=["13-days", "exactly-14-days", "ending-just-inside-two-years"],
)
def test_a_window_inside_the_bounds_is_planned_and_canceled(web, work, bigpanda, dates):
    """A 13- or 14-day window, or one near the two-year edge, gets its plan exactly."""
    start, end = dates(now().replace(second=0) + HOUR)

    answer = send(web, change(start, end))
    work()

    assert answer.status_code == 202, answer.json
    [plan] = bigpanda.plans()
    assert (plan["start"], plan["end"]) == (seconds(start), seconds(end))
    cancel_deletes(web, work, bigpanda, change(start, end, 10, state="4"))


# --- 5. Prefix matching -------------------------------------------------------------------------

PREFIX_NAMES = [".", "(.)", "a|.", "\\w", "[a-z]+", "web-01.example.com"]
HIDDEN = ["web-01\x07", "web\u202e10-bew", "web\u200b01"]


@pytest.mark.parametrize("match", ["prefix"])
@pytest.mark.parametrize("name", PREFIX_NAMES)
def test_prefix_values_escape_every_regex_metacharacter(web, work, bigpanda, match, name):
    """Under `match: prefix` a CI name is a literal followed by `*`: its regex characters are
    escaped, so the plan silences the CI and names that start with it, never another host."""
    start, end = window()

    answer = send(web, change(start, end, cmdb_ci=name))
    work()

    assert answer.status_code == 202, answer.json
    [plan] = bigpanda.plans()
    escaped = "".join(f"\\{char}" if char in META else char for char in name)
    assert plan["condition"] == {"=": ["host", {"type": "regex", "value": escaped + "*"}]}
    value = plan["condition"]["="][1]["value"]
    assert value.endswith("*") and not value.endswith("\\*")
    pattern = re.compile(value[:-1] + ".*", re.DOTALL)
    for same in (name, name + ".example.com", name + "-02"):
        assert pattern.fullmatch(same), same
    mutated = "".join("X" if char in META else char for char in name)
    for other in {"zzz", "webX01", "a", "w", "abc", "x", mutated} - {name}:
        assert not pattern.fullmatch(other), other
    cancel_deletes(web, work, bigpanda, change(start, end, 10, state="4", cmdb_ci=name))


@pytest.mark.parametrize("match", ["exact", "prefix"])
@pytest.mark.parametrize("name", HIDDEN, ids=["control", "bidi-override", "zero-width-space"])
def test_a_ci_name_with_a_hidden_character_is_422_naming_the_ci(
    web, work, bigpanda, redis_conn, match, name
):
    """A CI name holding a control, bidi or zero-width character matches no alert and hides
    what the plan silences: refused naming `cis` and the CI, under exact and prefix matching."""
    hidden = next(char for char in name if not char.isprintable())

    answer = send(web, change(*window(), cmdb_ci=name))

    assert_refused(answer, "cis", redis_conn, work, bigpanda)
    message = answer.json["errors"][0]["message"]
    assert name.split(hidden)[0] in message
    assert f"U+{ord(hidden):04X}" in message


# --- 6. Jira Automation "Issue data (Jira format)" ----------------------------------------------


def automation_body(components: list | None, ahead: timedelta = HOUR) -> dict:
    """The Automation sample (no components), its window `ahead` from now, with `components`."""
    body = sample_payload("jira", JIRA_FORMAT, ahead)
    if components is not None:
        body["issue"]["fields"]["components"] = components
    return body


def component(name: str, number: int) -> dict:
    url = f"https://acme-it.atlassian.net/rest/api/2/component/{number}"
    return {"self": url, "id": str(number), "name": name}


@pytest.mark.parametrize(
    "names", [["Payments database"], ["Payments database", "payments-api"]], ids=["one", "two"]
)
def test_automation_issue_data_gets_a_plan_on_its_components(web, work, bigpanda, names):
    """Automation's "Issue data (Jira format)" with the Automation bearer token: the issue's
    Components are the services the plan silences; the cancel deletes it."""
    body = automation_body([component(name, 10020 + n) for n, name in enumerate(names)])
    fields = body["issue"]["fields"]

    answer = send(web, body, "jira", AUTOMATION)
    work()

    assert (answer.status_code, answer.json["action"]) == (202, "upsert")
    [plan] = bigpanda.plans()
    assert plan["maintenance_key"] == "ITSM-1042"
    assert plan["condition"] == {"IN": ["service", names]}
    assert plan["start"] == int(datetime.fromisoformat(fields["customfield_10008"]).timestamp())
    assert plan["end"] == int(datetime.fromisoformat(fields["customfield_10009"]).timestamp())
    done = {"name": "Canceled", "statusCategory": {"key": "done", "name": "Done"}}
    updated = now().strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    canceled = {
        "issue": {**body["issue"], "fields": {**fields, "status": done, "updated": updated}}
    }
    cancel_deletes(web, work, bigpanda, canceled, "jira", AUTOMATION)


@pytest.mark.parametrize("components", [None, []], ids=["absent", "empty"])
def test_automation_issue_data_without_components_is_ignored_no_ci(
    web, work, bigpanda, redis_conn, components
):
    """The README says the CIs of the shipped jira.yaml are the issue's Components (JSM's
    Affected services carry only ids): an issue listing none is 200 ignored no_ci, no plan."""
    remembering(web, work)
    answer = send(web, automation_body(components), "jira", AUTOMATION)
    work()

    assert answer.status_code == 200, answer.json
    assert (answer.json["status"], answer.json["reason"]) == ("ignored", "no_ci")
    assert queued_jobs(redis_conn) == 0
    assert bigpanda.plans() == []


# --- 7. The preview door ------------------------------------------------------------------------

REFUSED = [
    ("display-without-setting", lambda: display(*window(), LA), "start_date"),
    ("over-14-days", lambda: change(*window(length=15 * DAY)), "end_date"),
    ("start-over-a-year-back", lambda: change(now() - 400 * DAY, now() + HOUR), "start_date"),
    (
        "bare-reference",
        lambda: change(*window(), cmdb_ci={"link": LINK, "value": SYS_ID}),
        "cmdb_ci",
    ),
    ("hidden-character", lambda: change(*window(), cmdb_ci="web\u200b01"), "cis"),
]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_preview_refuses_what_the_webhook_refuses_with_the_same_field(
    web, work, bigpanda, redis_conn, body, field
):
    """POST /webhooks/<source>/preview answers a body the webhook refuses with the same 422,
    naming the same field."""
    payload = body()

    previewed = preview(web, payload)
    answer = send(web, payload)

    assert (previewed.status_code, answer.status_code) == (422, 422)
    assert previewed.content_type == "application/problem+json"
    assert previewed.json["errors"][0]["field"] == answer.json["errors"][0]["field"] == field
    assert_refused(answer, field, redis_conn, work, bigpanda)


ACCEPTED = [
    ("internal", None, lambda: change(*window()), "servicenow"),
    ("display-values", LA, lambda: display(*window(ahead=3 * HOUR), LA), "servicenow"),
    ("display-value-all", None, lambda: sample_payload("servicenow", ALL_SHAPE), "servicenow"),
    (
        "jira-automation",
        None,
        lambda: automation_body([component("Payments database", 1)]),
        "jira",
    ),
]


@pytest.mark.parametrize(
    ("display_values", "body", "source"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_preview_shows_the_window_the_webhook_then_plans(
    web, work, bigpanda, redis_conn, display_values, body, source
):
    """The preview of an accepted body shows the desired window and condition the plan then
    gets, and queues nothing itself."""
    payload = body()
    headers = AUTOMATION if source == "jira" else AUTH

    previewed = preview(web, payload, source, headers)

    assert previewed.status_code == 200, previewed.json
    assert queued_jobs(redis_conn) == 0
    assert previewed.json["action"] == "upsert"
    [desired] = previewed.json["desired"]
    answer = send(web, payload, source, headers)
    work()
    assert answer.status_code == 202, answer.json
    [plan] = bigpanda.plans()
    assert (desired["start"], desired["end"]) == (plan["start"], plan["end"])
    assert desired["condition"] == plan["condition"]

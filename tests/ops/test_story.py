"""`bridge show` and `GET /api/changes/<key>?story=1`: one change's story, oldest event first."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from bridge_harness import SANDBOX_TOKEN, SERVICENOW_TOKEN, servicenow_payload
from click.testing import CliRunner

from bridge.app import create_app
from bridge.engine.ownership import Owner
from bridge.jobs.queue import store_of
from bridge.model import ChangeRef
from bridge.ops.cli import main
from bridge.ops.story import story

KEY = "CHG0030412"
CHANGE = ChangeRef("servicenow", KEY)
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
ADMIN_TOKEN = "admin-test-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SCHEDULED = "servicenow_change_scheduled.json"  # sys_mod_count 9
RESCHEDULED = "servicenow_change_rescheduled.json"  # 12
MAPPINGS = str(Path(__file__).parent.parent.parent / "mappings")
EVENT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ)  (\S+) +(.*)$")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def web(settings, redis_conn):
    """The web app with the admin API on."""
    app = create_app(replace(settings, admin_token=ADMIN_TOKEN), redis=redis_conn)
    return app.test_client()


@pytest.fixture
def show(redis_url, bigpanda):
    """`bridge show ...` with REDIS_URL and the sandbox as BigPanda; `env` overrides."""

    def run(*args: str, **env: str | None):
        base = {
            "REDIS_URL": redis_url,
            "BIGPANDA_API_URL": bigpanda.url,
            "BIGPANDA_API_KEY": SANDBOX_TOKEN,
            "BRIDGE_MAPPINGS": MAPPINGS,
            "BRIDGE_SANDBOX": None,
            "BRIDGE_INSTANCE": None,
        }
        return CliRunner().invoke(main, ["show", *args], env={**base, **env})

    return run


def send(web, payload: dict) -> dict:
    return web.post("/webhooks/servicenow", json=payload, headers=AUTH).json


def newer(payload: dict, **fields) -> dict:
    """The same change, one update later in ServiceNow, with some fields changed."""
    return {**payload, **fields, "sys_mod_count": str(int(payload["sys_mod_count"]) + 1)}


def again() -> dict:
    """The change scheduled once more after its cancel (sys_mod_count 14): a new plan."""
    return {**servicenow_payload(RESCHEDULED), "sys_mod_count": "14"}


def scheduled_rescheduled_stale_canceled(web, work) -> None:
    """The common story: created, moved, an old event arriving late, then canceled."""
    scheduled, rescheduled = servicenow_payload(SCHEDULED), servicenow_payload(RESCHEDULED)
    assert send(web, scheduled)["status"] == "accepted"
    work()
    assert send(web, rescheduled)["status"] == "accepted"
    work()
    assert send(web, scheduled)["reason"] == "stale"
    assert send(web, newer(rescheduled, state="4"))["action"] == "remove"
    work()


def events(output: str) -> list[tuple[str, str]]:
    """(event, rest of the line) of each event line, in the order printed."""
    found = (EVENT_LINE.match(line) for line in output.splitlines())
    return [(match[2], match[3]) for match in found if match]


def test_show_tells_each_event_in_order_with_its_verdict_and_calls(web, work, bigpanda, show):
    scheduled_rescheduled_stale_canceled(web, work)
    [created_id] = {path.rsplit("/", 1)[-1] for m, path in bigpanda.requests if m == "PATCH"}

    result = show("servicenow", KEY)

    assert result.exit_code == 0, result.output
    told = events(result.stdout)
    assert [name for name, _ in told] == [
        "received",
        "created",
        "received",
        "updated",
        "received",
        "received",
        "deleted",
    ]
    verdicts = [rest.rsplit("-> ", 1)[1] for name, rest in told if name == "received"]
    assert verdicts == ["accepted", "accepted", "stale", "accepted"]
    assert told[0][1].startswith("v[9, ")
    assert told[4][1].startswith("v[9, ")  # the late old event: its version, and stale
    assert told[5][1].startswith("v[13, ")
    assert "no plan (not_selected)" in told[5][1]
    assert f"id {created_id}" in told[1][1]
    assert f"id {created_id}" in told[3][1]
    assert "fields: " in told[3][1] and "start" in told[3][1]
    assert f"id {created_id}" in told[6][1]
    lines = result.stdout.splitlines()
    assert lines[0] == f"servicenow {KEY}"
    assert "  remembered plan: none" in lines
    assert lines[-1] == "BigPanda now: no plan remembered, nothing to read"
    assert bigpanda.plans() == []


def test_show_of_a_live_plan_reads_it_and_shows_it_planned_with_our_mark(web, work, bigpanda, show):
    send(web, servicenow_payload(SCHEDULED))
    work()
    [plan] = bigpanda.plans()
    reads = bigpanda.count("GET", plan["id"])

    result = show("servicenow", KEY)

    assert result.exit_code == 0, result.output
    assert [name for name, _ in events(result.stdout)] == ["received", "created"]
    lines = result.stdout.splitlines()
    now = lines.index("BigPanda now:")
    [line] = lines[now + 1 :]
    start, end = plan["start"], plan["end"]
    assert line.startswith(f"  {KEY}  id {plan['id']}  planned  ")
    assert "  ours  " in line
    assert line.endswith(f"name={plan['name']!r}")
    window = re.search(r"(\S+Z)\.\.(\S+Z)", line)
    assert window and all(ISO_UTC.match(part) for part in window.groups())
    assert f"plan {start}..{end}" in events(result.stdout)[1][1]
    assert bigpanda.count("GET", plan["id"]) == reads + 1  # one read, nothing written


def test_show_json_holds_the_same_events_and_the_plans_as_bigpanda_has_them(
    web, work, bigpanda, show
):
    scheduled_rescheduled_stale_canceled(web, work)
    send(web, again())
    work()

    result = show("servicenow", KEY, "--json")

    assert result.exit_code == 0, result.output
    told = json.loads(result.stdout)
    assert (told["source"], told["maintenance_key"]) == ("servicenow", KEY)
    names = [event["event"] for event in told["events"]]
    assert names == [name for name, _ in events(show("servicenow", KEY).stdout)]
    received = [event for event in told["events"] if event["event"] == "received"]
    assert [event["verdict"] for event in received] == [
        "accepted",
        "accepted",
        "stale",
        "accepted",
        "accepted",
    ]
    assert all(ISO_UTC.match(event["at"]) for event in told["events"])
    [plan] = bigpanda.plans()
    assert told["plans"] == {KEY: plan["id"]}
    [now] = told["bigpanda"]
    assert (now["id"], now["status"], now["found"], now["ours"]) == (
        plan["id"],
        "planned",
        True,
        True,
    )
    assert now["mark"] == Owner("default", "servicenow").mark
    assert ISO_UTC.match(now["start"]) and ISO_UTC.match(now["end"])


def test_an_unknown_change_exits_2_with_one_line_naming_it(show):
    result = show("servicenow", "CHG-NEVER-SEEN")

    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "CHG-NEVER-SEEN" in line and "servicenow" in line


def test_without_bigpanda_api_key_the_story_is_told_and_says_bigpanda_was_not_read(
    web, work, bigpanda, show
):
    send(web, servicenow_payload(SCHEDULED))
    work()
    requests_before = len(bigpanda.requests)

    result = show("servicenow", KEY, BIGPANDA_API_KEY=None)

    assert result.exit_code == 0, result.output
    assert [name for name, _ in events(result.stdout)] == ["received", "created"]
    [why] = [line for line in result.stdout.splitlines() if line.startswith("BigPanda now:")]
    assert why.startswith("BigPanda now: not read: BIGPANDA_API_KEY is not set")
    assert result.stdout.splitlines()[-1] == why
    assert len(bigpanda.requests) == requests_before


def test_when_bigpanda_cannot_be_reached_the_story_still_shows_and_says_so(web, work, show):
    send(web, servicenow_payload(SCHEDULED))
    work()

    result = show("servicenow", KEY, BIGPANDA_API_URL="http://127.0.0.1:1/sandbox")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2] == "BigPanda now:"
    assert lines[-1].startswith(f"  {KEY}  id ")
    assert "  not read: 'BigPanda no answer: GET " in lines[-1]


def test_worker_outcomes_are_told_and_untrusted_text_is_quoted(redis_conn, web):
    send(web, servicenow_payload(SCHEDULED))
    store = store_of(redis_conn)
    store.record(CHANGE, "retrying", job="reconcile-1", status=503, error="busy\x1b[2J")
    store.record(CHANGE, "failed", job="reconcile-1", status=0, error="timed out")
    store.record(CHANGE, "warning", plan_key=KEY, message="2 plans\ncarry this key")
    store.record(CHANGE, "would_update", plan_key=KEY, plan_id="p-1", fields=["end", "name"])
    store.record(CHANGE, "adopted", plan_key=KEY, plan_id="p\x1b-2", status="running")
    store.record(CHANGE, "in_sync", plan_key=KEY, plan_id=None)

    lines = story(store, None, CHANGE).lines()

    told = events("\n".join(lines))
    assert told[1:] == [
        ("retrying", "BigPanda 503: 'busy\\x1b[2J'  job reconcile-1"),
        ("failed", "BigPanda no answer: 'timed out'  job reconcile-1"),
        ("warning", f"{KEY}  '2 plans\\ncarry this key'"),
        ("would_update", f"{KEY}  id p-1  fields: end, name  (dry run: not sent)"),
        ("adopted", f"{KEY}  id 'p\\x1b-2'  unmarked, running: adopted"),
        ("in_sync", f"{KEY}  no plan, none wanted"),
    ]
    assert not any("\x1b" in line or "\n" in line for line in lines)
    assert lines[-1] == "BigPanda now: BigPanda was not read"


def test_a_plan_name_with_control_characters_is_shown_quoted(web, work, show):
    payload = {**servicenow_payload(SCHEDULED), "short_description": "db\x1b[31m up\rgrade"}
    send(web, payload)
    work()

    result = show("servicenow", KEY)

    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\r" not in result.stdout
    assert result.stdout.splitlines()[-1].endswith("db\\x1b[31m up\\rgrade'")


def test_the_admin_api_story_holds_the_events_but_not_bigpanda(web, work, bigpanda):
    scheduled_rescheduled_stale_canceled(web, work)
    send(web, again())
    work()
    [plan] = bigpanda.plans()
    reads = bigpanda.count("GET")

    answer = web.get(f"/api/changes/{KEY}?story=1&source=servicenow", headers=ADMIN)

    assert answer.status_code == 200
    told = answer.json["story"]
    assert [event["event"] for event in told["events"]] == [
        "received",
        "created",
        "received",
        "updated",
        "received",
        "received",
        "deleted",
        "received",
        "created",
    ]
    verdicts = [event["verdict"] for event in told["events"] if event["event"] == "received"]
    assert verdicts == ["accepted", "accepted", "stale", "accepted", "accepted"]
    assert told["plans"] == {KEY: plan["id"]}
    assert told["bigpanda"] == "not read by the web tier: see bridge show"
    assert bigpanda.count("GET") == reads  # the web tier never calls BigPanda


def test_the_admin_api_story_flag_is_1_or_0(web):
    send(web, servicenow_payload(SCHEDULED))

    assert "history" in web.get(f"/api/changes/{KEY}?story=0", headers=ADMIN).json
    assert web.get(f"/api/changes/{KEY}?story=yes", headers=ADMIN).status_code == 400
    assert web.get("/api/changes/CHG-NEVER?story=1", headers=ADMIN).status_code == 404

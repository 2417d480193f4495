"""One event never makes a change deaf, and forgetting a change never strands or doubles its plan.

SPEC, "Versions and deafness", "Forgetting" and "Ownership": absurd versions are refused at the
door (422 naming the field) so the cancel that follows is still heard; a Jira delete is ordered
by its timestamp like any event; `bridge forget` / `DELETE /api/changes/<key>` drop the memory
while the plan stays findable by its mark (next webhook, or the sweep after the retention); a
plan the bridge did not make is never touched. Everything goes through the web door, the CLI or
the admin API, against the sandbox BigPanda over real HTTP and a real RQ worker.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from bridge_harness import (
    JIRA_SECRET,
    SANDBOX_TOKEN,
    SERVICENOW_TOKEN,
    bridge_settings,
    queued_jobs,
    run_worker,
    sample_payload,
    servicenow_payload,
    sweep_now,
)
from click.testing import CliRunner

from bridge.app import create_app
from bridge.config import RETENTION_SECONDS
from bridge.ops.cli import main

KEY = "CHG0030412"  # the sample change's number; its sys_mod_count is "9"
CHANGE_HASH = f"bridge:change:servicenow:{KEY}"
KNOWN = "bridge:changes"
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
ADMIN_TOKEN = "admin-test-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
AUTOMATION_TOKEN = "jira-automation-token-for-tests"
GENERIC_TOKEN = "generic-test-token"
PLANS = "/resources/v2.0/maintenance-plans"
MAPPINGS = Path(__file__).parent.parent / "mappings"
MARK = {"name": "bridge_owner", "value": "maintenance-bridge/default/servicenow"}


@pytest.fixture
def settings(redis_url, bigpanda):
    """The shipped mappings, with the admin API on and Jira's Automation token set."""
    base = bridge_settings(redis_url, bigpanda.url)
    secrets = {**base.secrets, "JIRA_AUTOMATION_TOKEN": AUTOMATION_TOKEN}
    return replace(base, admin_token=ADMIN_TOKEN, secrets=secrets)


def send(web, payload: dict):
    return web.post("/webhooks/servicenow", json=payload, headers=AUTH)


def newer(payload: dict, count, **fields) -> dict:
    """The same change with sys_mod_count `count` (as given: int, float or text)."""
    return {**payload, **fields, "sys_mod_count": count}


def scheduled_plan(web, work, bigpanda) -> tuple[dict, dict]:
    """The sample change scheduled through the webhook: (its payload, the plan it made)."""
    payload = servicenow_payload("servicenow_change_scheduled.json")
    assert send(web, payload).status_code == 202
    work()
    [plan] = ours(bigpanda)
    return payload, plan


def writes(bigpanda, plan_id: str | None = None) -> list[tuple[str, str]]:
    """Every write BigPanda received (to one plan, when `plan_id` is given)."""
    return [
        (method, path)
        for method, path in bigpanda.requests
        if method != "GET" and (plan_id is None or plan_id in path)
    ]


def ours(bigpanda) -> list[dict]:
    return [plan for plan in bigpanda.plans() if MARK in (plan.get("custom_tags") or [])]


def refused(answer, field: str) -> None:
    assert answer.status_code == 422, answer.json
    assert answer.content_type == "application/problem+json"
    assert field in answer.json["detail"]
    assert [error["field"] for error in answer.json["errors"]] == [field]


# --- 1. ServiceNow sys_mod_count --------------------------------------------------------------


@pytest.mark.parametrize(
    "count",
    [10**9, "1e9", "1000000000", 12.5, "12.5", "0x10", "-3", str(9 + 10_001), 9 + 10_001],
)
def test_an_absurd_sys_mod_count_is_refused_and_the_cancel_is_still_heard(
    web, work, bigpanda, redis_conn, count
):
    """An operator relies on the cancel deleting the plan even after a broken or hostile event
    claimed a huge or malformed sys_mod_count: that event is a 422 and changes nothing."""
    scheduled, plan = scheduled_plan(web, work, bigpanda)
    bigpanda.requests.clear()

    answer = send(web, newer(scheduled, count, short_description="poisoned"))
    work()

    refused(answer, "sys_mod_count")
    assert queued_jobs(redis_conn) == 0
    assert bigpanda.plans() == [plan]
    assert writes(bigpanda) == []

    cancel = send(web, newer(scheduled, "10", state="4"))
    work()

    assert (cancel.status_code, cancel.json["action"]) == (202, "remove")
    assert bigpanda.plans() == []
    assert bigpanda.count("DELETE", plan["id"]) == 1


def test_a_jump_of_exactly_ten_thousand_is_accepted(web, work, bigpanda):
    """A busy change may legitimately move 10,000 times between two deliveries."""
    scheduled, plan = scheduled_plan(web, work, bigpanda)

    answer = send(web, newer(scheduled, str(9 + 10_000), short_description="many edits later"))
    work()
    [after] = bigpanda.plans()
    cancel = send(web, newer(scheduled, str(9 + 10_001), state="4"))
    work()

    assert answer.status_code == 202
    assert (after["id"], after["name"]) == (plan["id"], f"{KEY}: many edits later")
    assert cancel.status_code == 202
    assert bigpanda.plans() == []


def test_a_change_never_seen_may_start_at_ten_thousand_but_not_above(web, work, bigpanda):
    """For a key the bridge has not seen, the bound counts from 0: 10,001 is refused."""
    payload = servicenow_payload("servicenow_change_scheduled.json")

    too_far = send(web, newer(payload, "10001"))
    work()
    plans_after_refusal = bigpanda.plans()
    accepted = send(web, newer(payload, "10000"))
    work()

    refused(too_far, "sys_mod_count")
    assert plans_after_refusal == []
    assert accepted.status_code == 202
    [plan] = bigpanda.plans()
    assert plan["maintenance_key"] == KEY


@pytest.mark.parametrize("count", ["12.0", 12.0])
def test_an_integral_sys_mod_count_with_a_zero_fraction_reads_as_the_integer(
    web, work, bigpanda, count
):
    """ServiceNow may send 12.0 or "12.0": it is version 12, compared as a number."""
    scheduled, plan = scheduled_plan(web, work, bigpanda)

    accepted = send(web, newer(scheduled, count, short_description="moved"))
    work()
    same = send(web, newer(scheduled, "12", short_description="moved"))
    older = send(web, newer(scheduled, "11", short_description="older"))
    lexically_larger = send(web, newer(scheduled, "9", short_description="older"))
    work()

    assert accepted.status_code == 202
    assert (same.status_code, same.json["reason"]) == (200, "duplicate")
    assert (older.status_code, older.json["reason"]) == (200, "stale")
    assert (lexically_larger.status_code, lexically_larger.json["reason"]) == (200, "stale")
    [after] = bigpanda.plans()
    assert (after["id"], after["name"]) == (plan["id"], f"{KEY}: moved")


# --- 2. A generic source's version ------------------------------------------------------------

GENERIC = """
source: inventory
parser: generic
auth: [{type: bearer, secret_env: GENERIC_TOKEN}]
maintenance_key: "{{ id }}"
version: %s
cis: [{field: hosts}]
defaults:
  start: {field: window.start, format: epoch_s}
  end: {field: window.end, format: epoch_s}
  name: "{{ id }}: {{ note }}"
rules:
  - name: cancelled
    filter: {field: status, equals: cancelled}
    plan: none
  - name: everything-else
    plan: {}
"""


class Inventory:
    """A generic source `inventory` whose mapping file orders events by `version`."""

    def __init__(self, folder: Path, version: str, redis_url, redis_conn, bigpanda):
        folder.mkdir()
        (folder / "inventory.yaml").write_text(GENERIC % version)
        base = bridge_settings(redis_url, bigpanda.url)
        secrets = {**base.secrets, "GENERIC_TOKEN": GENERIC_TOKEN}
        self.settings = replace(base, mappings_dir=folder, secrets=secrets)
        self.web = create_app(self.settings, redis=redis_conn).test_client()
        self.redis = redis_conn
        now = int(time.time())
        self.window = {"start": now + 3600, "end": now + 7200}

    def send(self, note: str, status: str = "approved", **version):
        change = {"id": "MW-7", "note": note, "status": status, "hosts": ["web-01"]}
        change = {**change, "window": self.window, **version}
        headers = {"Authorization": f"Bearer {GENERIC_TOKEN}"}
        return self.web.post("/webhooks/inventory", json=change, headers=headers)

    def work(self) -> None:
        run_worker(self.redis, self.settings)


@pytest.fixture
def inventory(tmp_path, redis_url, redis_conn, bigpanda):
    made = iter(range(100))
    return lambda version: Inventory(
        tmp_path / f"mappings-{next(made)}", version, redis_url, redis_conn, bigpanda
    )


@pytest.mark.parametrize("revision", [1e300, "1e300", 12.5])
def test_a_generic_revision_that_is_no_whole_number_is_refused(
    inventory, bigpanda, redis_conn, revision
):
    """A generic sender's broken revision is a 422 naming it, and the next events still land."""
    source = inventory("[revision]")
    source.send("first", revision=1)
    source.work()
    [plan] = bigpanda.plans()

    answer = source.send("poisoned", revision=revision)
    source.work()
    unchanged = bigpanda.plans()
    update = source.send("second", revision=2)
    source.work()
    [updated] = bigpanda.plans()
    cancel = source.send("gone", status="cancelled", revision=3)
    source.work()

    refused(answer, "revision")
    assert unchanged == [plan]
    assert update.status_code == 202
    assert (updated["id"], updated["name"]) == (plan["id"], "MW-7: second")
    assert (cancel.status_code, cancel.json["action"]) == (202, "remove")
    assert bigpanda.plans() == []


def test_a_generic_revision_may_not_jump_past_its_max_jump(inventory, bigpanda):
    """`max_jump` bounds how far one event may move a counter past the newest seen."""
    source = inventory("[{field: revision, max_jump: 5}]")
    source.send("first", revision=1)
    source.work()
    [plan] = bigpanda.plans()

    too_far = source.send("too far", revision=1 + 6)
    source.work()
    unchanged = bigpanda.plans()
    at_bound = source.send("at the bound", revision=1 + 5)
    source.work()

    refused(too_far, "revision")
    assert unchanged == [plan]
    assert at_bound.status_code == 202
    [after] = bigpanda.plans()
    assert (after["id"], after["name"]) == (plan["id"], "MW-7: at the bound")


def test_a_generic_time_version_a_week_ahead_is_refused_and_now_is_accepted(inventory, bigpanda):
    """A version time far in the future would make every real event stale: it is refused."""
    source = inventory("[{field: updated_ms, as: epoch_ms}]")
    now_ms = int(time.time() * 1000)

    ahead = source.send("from the future", updated_ms=now_ms + 7 * 86_400_000)
    source.work()
    plans_after_refusal = bigpanda.plans()
    current = source.send("now", updated_ms=now_ms)
    source.work()
    [plan] = bigpanda.plans()
    cancel = source.send("gone", status="cancelled", updated_ms=now_ms + 1000)
    source.work()

    refused(ahead, "updated_ms")
    assert plans_after_refusal == []
    assert current.status_code == 202
    assert plan["name"] == "MW-7: now"
    assert cancel.status_code == 202
    assert bigpanda.plans() == []


# --- 3. Jira deletes are ordered by their timestamp -------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={digest}"}


def send_jira(web, payload: dict, sender: str = "webhook"):
    body = json.dumps(payload).encode()
    if sender == "webhook":
        headers = signed(body)
    else:  # an Automation rule can only send a header
        bearer = f"Bearer {AUTOMATION_TOKEN}"
        headers = {"Content-Type": "application/json", "Authorization": bearer}
    return web.post("/webhooks/jira", data=body, headers=headers)


def jira(name: str) -> dict:
    payload = sample_payload("jira", name, timedelta(hours=2))
    payload["issue"]["key"] = "ITSM-1042"
    return payload


@pytest.mark.parametrize("sender", ["webhook", "automation"])
def test_a_jira_delete_ends_the_plan_and_a_restored_issue_gets_it_back(web, work, bigpanda, sender):
    """A deleted issue ends its plan; a restored issue (newer event) is heard again, an older
    delivery than the delete is stale. A delete body, signed or from an Automation token, can
    never end the key for good."""
    base = int(time.time() * 1000) - 60_000
    updated = jira("jira_webhook_issue_updated_change.json")
    delete = {**jira("jira_webhook_issue_deleted_change.json"), "timestamp": base + 20_000}
    send_jira(web, {**updated, "timestamp": base})
    work()
    [plan] = bigpanda.plans()

    deleted = send_jira(web, delete, sender)
    work()
    after_delete = bigpanda.plans()
    late = send_jira(web, {**updated, "timestamp": base + 10_000})
    work()
    after_late = bigpanda.plans()
    restored = send_jira(web, {**updated, "timestamp": base + 30_000})
    work()

    assert plan["maintenance_key"] == "ITSM-1042"
    assert (deleted.status_code, deleted.json["action"]) == (202, "remove")
    assert after_delete == []
    assert (late.status_code, late.json["reason"]) == (200, "stale")
    assert after_late == []
    assert (restored.status_code, restored.json["action"]) == (202, "upsert")
    [again] = bigpanda.plans()
    assert again["maintenance_key"] == "ITSM-1042"
    assert (again["start"], again["end"]) == (plan["start"], plan["end"])


# --- 4. Forgetting ----------------------------------------------------------------------------


@pytest.fixture(params=["cli", "admin"])
def forget_either(request, web, redis_url):
    """`bridge forget servicenow <key> --yes`, or DELETE /api/changes/<key>?source=servicenow."""
    return forgetter(request.param, web, redis_url)


@pytest.fixture
def forget(web, redis_url):
    """DELETE /api/changes/<key>?source=servicenow (the CLI does the same: forget_either)."""
    return forgetter("admin", web, redis_url)


def forgetter(kind: str, web, redis_url):
    def run() -> None:
        if kind == "cli":
            result = CliRunner().invoke(
                main, ["forget", "servicenow", KEY, "--yes"], env={"REDIS_URL": redis_url}
            )
            assert result.exit_code == 0, result.output
        else:
            answer = web.delete(f"/api/changes/{KEY}?source=servicenow", headers=ADMIN)
            assert answer.status_code == 200, answer.json

    return run


def no_memory(redis_conn) -> None:
    """What an older forget left: nothing at all of the change."""
    redis_conn.delete(CHANGE_HASH, f"bridge:history:servicenow:{KEY}")
    redis_conn.srem(KNOWN, f"servicenow:{KEY}")


def forgotten_long_ago(redis_conn) -> None:
    redis_conn.hset(CHANGE_HASH, "forgotten_at", int(time.time()) - RETENTION_SECONDS - 60)


def dry_run(redis_url, bigpanda):
    env = {
        "REDIS_URL": redis_url,
        "BIGPANDA_API_KEY": SANDBOX_TOKEN,
        "BIGPANDA_API_URL": bigpanda.url,
        "BRIDGE_MAPPINGS": str(MAPPINGS),
    }
    return CliRunner().invoke(main, ["reconcile", "--dry-run"], env=env)


def test_after_forget_the_next_update_converges_the_same_plan(web, work, bigpanda, forget_either):
    """Forgetting never leads to a second live plan: the next webhook finds the plan by its mark
    and updates it."""
    scheduled, plan = scheduled_plan(web, work, bigpanda)
    forget_either()

    answer = send(web, newer(scheduled, "10", short_description="after the forget"))
    work()

    assert answer.status_code == 202
    [after] = bigpanda.plans()
    assert (after["id"], after["name"]) == (plan["id"], f"{KEY}: after the forget")
    assert bigpanda.count("POST", r"maintenance-plans$") == 1


def test_after_forget_the_next_cancel_deletes_the_plan(web, work, bigpanda, forget_either):
    """A cancel right after a forget still ends the plan the bridge made."""
    scheduled, plan = scheduled_plan(web, work, bigpanda)
    forget_either()

    answer = send(web, newer(scheduled, "10", state="4"))
    work()

    assert (answer.status_code, answer.json["action"]) == (202, "remove")
    assert bigpanda.plans() == []
    assert bigpanda.count("DELETE", plan["id"]) == 1


def test_a_sweep_leaves_a_just_forgotten_plan_and_ends_it_after_the_retention(
    web, work, bigpanda, redis_conn, settings, forget
):
    """A forgotten change's plan waits for its webhook; once the forget is older than the
    retention period, the sweep ends it rather than leave alerts silenced for ever."""
    _, plan = scheduled_plan(web, work, bigpanda)
    forget()
    bigpanda.requests.clear()

    early = sweep_now(redis_conn, settings)
    work()
    after_early = bigpanda.plans()
    forgotten_long_ago(redis_conn)
    late = sweep_now(redis_conn, settings)
    work()

    assert early.orphans == 0
    assert after_early == [plan]
    assert writes(bigpanda, plan["id"]) == [("DELETE", f"/sandbox{PLANS}/{plan['id']}")]
    assert late.orphans == 1
    assert bigpanda.plans() == []


def test_a_marked_plan_with_no_memory_of_its_change_is_ended_by_the_sweep(
    web, work, bigpanda, redis_conn, settings, forget
):
    """A plan of this instance whose change the bridge no longer remembers at all (an older
    forget) is deleted by the next sweep, not left silencing alerts."""
    _, plan = scheduled_plan(web, work, bigpanda)
    forget()
    no_memory(redis_conn)

    counts = sweep_now(redis_conn, settings)
    work()

    assert counts.orphans == 1
    assert bigpanda.plans() == []
    assert bigpanda.count("DELETE", plan["id"]) == 1


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        (no_memory, "its change is no longer remembered"),
        (forgotten_long_ago, "its change was forgotten over the retention period ago"),
    ],
)
def test_dry_run_lists_an_orphaned_plan_and_writes_nothing(
    web, work, bigpanda, redis_conn, redis_url, forget, setup, why
):
    """`bridge reconcile --dry-run` tells the operator which orphaned plan a sweep would end,
    and why, without writing to BigPanda or queueing anything."""
    _, plan = scheduled_plan(web, work, bigpanda)
    forget()
    setup(redis_conn)
    memory = (redis_conn.hgetall(CHANGE_HASH), redis_conn.smembers(KNOWN))
    bigpanda.requests.clear()

    result = dry_run(redis_url, bigpanda)

    assert result.exit_code == 0, result.output
    assert f"servicenow {KEY}: would delete {KEY}: plan {plan['id']}: {why}" in result.stdout
    assert writes(bigpanda) == []
    assert queued_jobs(redis_conn) == 0
    assert (redis_conn.hgetall(CHANGE_HASH), redis_conn.smembers(KNOWN)) == memory
    assert bigpanda.plans() == [plan]


def hand_made(bigpanda, key: str) -> dict:
    """A plan made by hand in BigPanda: no bridge_owner mark."""
    now = int(time.time())
    body = {
        "name": f"by hand: {key}",
        "condition": {"=": ["host", "lnx-db-prod-01"]},
        "start": now + 1800,
        "end": now + 9000,
        "maintenance_key": key,
        "custom_tags": [{"name": "source", "value": "servicenow"}],
    }
    answer = requests.post(
        bigpanda.url + PLANS,
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        json=body,
        timeout=5,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.mark.parametrize(
    ("scenario", "ours_left"),
    [("update", 1), ("cancel", 0), ("retention", 0), ("no_memory", 0), ("dry_run", 1)],
)
def test_plans_made_by_hand_are_never_touched_by_forgetting(
    web, work, bigpanda, redis_conn, redis_url, settings, forget, scenario, ours_left
):
    """Ownership: whatever forget, webhook, sweep or dry run follows, a plan without the
    bridge's mark (same change number or another) is neither updated, stopped nor deleted."""
    foreign = [hand_made(bigpanda, KEY), hand_made(bigpanda, "CHG0099999")]
    scheduled, _ = scheduled_plan(web, work, bigpanda)
    foreign.append(hand_made(bigpanda, KEY))  # listed after the bridge's own plan
    forget()

    if scenario == "update":
        send(web, newer(scheduled, "10", short_description="after the forget"))
    elif scenario == "cancel":
        send(web, newer(scheduled, "10", state="4"))
    elif scenario == "retention":
        sweep_now(redis_conn, settings)
        forgotten_long_ago(redis_conn)
        sweep_now(redis_conn, settings)
    elif scenario == "no_memory":
        no_memory(redis_conn)
        sweep_now(redis_conn, settings)
    else:
        no_memory(redis_conn)
        result = dry_run(redis_url, bigpanda)
        assert result.exit_code == 0, result.output
        assert not any(plan["id"] in result.stdout for plan in foreign)
    work()

    assert len(ours(bigpanda)) == ours_left
    for plan in foreign:
        assert writes(bigpanda, plan["id"]) == []
        [now] = [p for p in bigpanda.plans() if p["id"] == plan["id"]]
        assert {**now, "status": None} == {**plan, "status": None}

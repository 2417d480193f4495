"""End to end: webhook -> Redis -> RQ worker -> the sandbox BigPanda over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bridge_harness import (
    SERVICENOW_TOKEN,
    epoch,
    queued_jobs,
    servicenow_payload,
)

from bridge.app import create_app
from bridge.state.store import connect

AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
SCHEDULED = "servicenow_change_scheduled.json"


def send(web, payload, headers=AUTH):
    return web.post("/webhooks/servicenow", json=payload, headers=headers)


def newer(payload: dict, by: int = 1, **fields) -> dict:
    """The same change, updated `by` more times in ServiceNow, with some fields changed."""
    return {**payload, **fields, "sys_mod_count": str(int(payload["sys_mod_count"]) + by)}


def test_scheduled_change_creates_one_plan_with_key_window_condition_and_name(web, work, bigpanda):
    payload = servicenow_payload(SCHEDULED)

    answer = send(web, payload)
    work()

    assert answer.status_code == 202
    assert answer.json["status"] == "accepted"
    assert answer.json["maintenance_key"] == "CHG0030412"
    assert answer.json["action"] == "upsert"
    assert answer.json["job_id"]
    [plan] = bigpanda.plans()
    assert plan["maintenance_key"] == "CHG0030412"
    assert plan["start"] == epoch(payload["start_date"])
    assert plan["end"] == epoch(payload["end_date"])
    assert plan["condition"] == {  # servers and load balancers by host, the app by application
        "OR": [
            {"IN": ["host", ["lnx-db-prod-01", "lb-edge-02"]]},
            {"IN": ["application", ["payments-api-prod"]]},
        ]
    }
    assert plan["name"] == "CHG0030412: Upgrade PostgreSQL on lnx-db-prod-01 from 15.5 to 15.7"
    assert {"name": "maintenance_key", "value": "CHG0030412"} in plan["custom_tags"]
    assert plan["status"] == "planned"


def test_rescheduled_change_patches_the_same_plan(web, work, bigpanda):
    scheduled = servicenow_payload(SCHEDULED)
    rescheduled = servicenow_payload("servicenow_change_rescheduled.json")
    send(web, scheduled)
    work()
    [before] = bigpanda.plans()

    answer = send(web, rescheduled)
    work()

    assert answer.status_code == 202
    [after] = bigpanda.plans()
    assert after["id"] == before["id"]
    assert (after["start"], after["end"]) == (
        epoch(rescheduled["start_date"]),
        epoch(rescheduled["end_date"]),
    )
    assert bigpanda.count("POST", r"maintenance-plans$") == 1
    assert bigpanda.count("PATCH", before["id"]) == 1


def test_change_canceled_before_start_deletes_its_plan(web, work, bigpanda):
    scheduled = servicenow_payload(SCHEDULED)
    send(web, scheduled)
    work()
    [plan] = bigpanda.plans()

    answer = send(web, newer(scheduled, state="4"))
    work()

    assert answer.status_code == 202
    assert answer.json["action"] == "remove"
    assert bigpanda.plans() == []
    assert bigpanda.count("DELETE", plan["id"]) == 1


def test_change_closed_while_running_stops_its_plan(web, work, bigpanda):
    implementing = servicenow_payload(SCHEDULED, start_in=timedelta(minutes=-10))
    implementing["state"] = "-1"
    send(web, implementing)
    work()
    [running] = bigpanda.plans()
    assert running["status"] == "running"

    answer = send(web, newer(implementing, state="3"))
    work()

    assert answer.json["action"] == "remove"
    assert bigpanda.count("POST", rf"{running['id']}/stop$") == 1
    [stopped] = bigpanda.plans()
    assert stopped["status"] == "done"


def test_the_same_webhook_three_times_makes_one_create_call(web, work, bigpanda):
    payload = servicenow_payload(SCHEDULED)

    first = send(web, payload)
    work()
    again = [send(web, payload) for _ in range(2)]
    work()

    assert first.status_code == 202
    assert [(a.status_code, a.json["reason"]) for a in again] == [(200, "duplicate")] * 2
    assert bigpanda.count("POST", r"maintenance-plans$") == 1
    assert len(bigpanda.plans()) == 1


def test_an_older_event_after_a_newer_one_is_stale_and_changes_nothing(web, work, bigpanda):
    send(web, servicenow_payload("servicenow_change_rescheduled.json"))  # sys_mod_count 12
    work()
    [before] = bigpanda.plans()

    answer = send(web, servicenow_payload("servicenow_change_on_hold.json"))  # 10
    work()

    assert (answer.status_code, answer.json["status"], answer.json["reason"]) == (
        200,
        "ignored",
        "stale",
    )
    assert bigpanda.plans() == [before]
    assert bigpanda.count("PATCH") == 0


def test_versions_compare_as_numbers_not_strings(web, work, bigpanda):
    payload = servicenow_payload(SCHEDULED)
    send(web, {**payload, "sys_mod_count": "9"})
    work()

    answer = send(web, {**payload, "sys_mod_count": "12.0", "short_description": "moved"})

    assert answer.status_code == 202


def test_wrong_token_is_401_and_nothing_is_enqueued(web, redis_conn):
    answer = send(web, servicenow_payload(SCHEDULED), {"Authorization": "Bearer wrong"})

    assert answer.status_code == 401
    assert answer.content_type == "application/problem+json"
    assert queued_jobs(redis_conn) == 0
    assert redis_conn.keys("bridge:*") == [b"bridge:stats"]  # the refusal is only counted


def test_basic_auth_with_the_token_as_password_is_accepted(web):
    answer = web.post(
        "/webhooks/servicenow",
        json=servicenow_payload(SCHEDULED),
        auth=("servicenow.integration", SERVICENOW_TOKEN),
    )

    assert answer.status_code == 202


def test_end_before_start_is_422_naming_end_date_and_nothing_is_enqueued(web, redis_conn):
    payload = servicenow_payload(SCHEDULED)
    payload["end_date"] = "2020-01-01 00:00:00"

    answer = send(web, payload)

    assert answer.status_code == 422
    assert answer.content_type == "application/problem+json"
    assert "end_date" in answer.json["detail"]
    assert answer.json["errors"][0]["field"] == "end_date"
    assert queued_jobs(redis_conn) == 0
    assert redis_conn.keys("bridge:*") == [b"bridge:stats"]  # the refusal is only counted


@pytest.mark.parametrize(
    ("path", "data", "headers", "status"),
    [
        ("/webhooks/nosuch", "{}", {"Content-Type": "application/json"}, 404),
        ("/webhooks/servicenow", "{}", {"Content-Type": "text/plain", **AUTH}, 415),
        ("/webhooks/servicenow", "[1, 2]", {"Content-Type": "application/json", **AUTH}, 400),
        ("/webhooks/servicenow", "{not json", {"Content-Type": "application/json", **AUTH}, 400),
        (
            "/webhooks/servicenow",
            "x" * (1024 * 1024 + 1),
            {"Content-Type": "application/json"},
            413,
        ),
    ],
)
def test_bad_requests_get_problem_answers_in_spec_order(
    web, redis_conn, path, data, headers, status
):
    answer = web.post(path, data=data, headers=headers)

    assert answer.status_code == status
    assert answer.content_type == "application/problem+json"
    assert answer.json["status"] == status
    assert queued_jobs(redis_conn) == 0


def test_a_burst_of_updates_coalesces_into_one_reconcile_of_the_newest(
    web, work, bigpanda, redis_conn
):
    payload = servicenow_payload(SCHEDULED)
    answers = [send(web, newer(payload, by=n, short_description=f"take {n}")) for n in range(1, 6)]

    assert {a.json["job_id"] for a in answers} == {answers[0].json["job_id"]}
    assert queued_jobs(redis_conn) == 1
    work()
    [plan] = bigpanda.plans()
    assert plan["name"].endswith("take 5")
    assert bigpanda.count("POST", r"maintenance-plans$") == 1
    assert bigpanda.count("PATCH") == 0


def test_until_the_ledger_is_known_a_cancel_is_enqueued_to_check_bigpanda(web, work, bigpanda):
    canceled = servicenow_payload("servicenow_change_canceled.json")

    answer = send(web, canceled)
    work()

    assert (answer.status_code, answer.json["action"]) == (202, "remove")
    assert bigpanda.count("GET", r"maintenance-plans$") == 1  # one listing rebuilt the ledger
    assert bigpanda.count("DELETE") == 0


def test_cancel_of_a_change_never_seen_is_ignored_and_makes_no_call(web, work, bigpanda):
    send(web, servicenow_payload(SCHEDULED))  # the first reconcile sets the ledger marker
    work()
    canceled = servicenow_payload("servicenow_change_canceled.json")

    answer = send(web, canceled)
    work()

    assert (answer.status_code, answer.json["reason"]) == (200, "not_selected")
    assert bigpanda.count("DELETE") == 0


def test_a_lost_ledger_is_rebuilt_from_bigpanda_before_any_create(web, work, bigpanda, redis_conn):
    scheduled = servicenow_payload(SCHEDULED)
    send(web, scheduled)
    work()
    [plan] = bigpanda.plans()
    for key in redis_conn.keys("bridge:*"):  # Redis replaced: the bridge's memory is gone
        redis_conn.delete(key)

    send(web, newer(scheduled, short_description="after the flush"))
    work()

    [after] = bigpanda.plans()
    assert after["id"] == plan["id"]
    assert after["name"].endswith("after the flush")
    assert bigpanda.count("POST", r"maintenance-plans$") == 1


def test_a_window_already_over_is_ignored(web, work):
    send(web, servicenow_payload(SCHEDULED))  # the first reconcile sets the ledger marker
    work()
    over = servicenow_payload("servicenow_change_emergency_implement.json", timedelta(days=-2))

    answer = send(web, over)

    assert (answer.status_code, answer.json["reason"]) == (200, "window_over")


def test_redis_unavailable_is_503(settings):
    down = connect("redis://127.0.0.1:1")  # nothing listens there
    web = create_app(settings, redis=down).test_client()

    answer = send(web, servicenow_payload(SCHEDULED))

    assert answer.status_code == 503
    assert web.get("/readyz").status_code == 503
    assert web.get("/healthz").status_code == 200

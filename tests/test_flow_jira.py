"""End to end for Jira: signed webhooks -> plans in the sandbox BigPanda, and split plans."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from bridge_harness import (
    JIRA_SECRET,
    PAYLOADS,
    sample_payload,
)


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={digest}"}


def send(web, payload: dict):
    body = json.dumps(payload).encode()
    return web.post("/webhooks/jira", data=body, headers=signed(body))


def test_the_sample_signature_is_accepted_over_the_exact_bytes(web):
    body = (PAYLOADS / "jira" / "jira_webhook_issue_updated_change.json").read_bytes()
    headers = json.loads((PAYLOADS / "jira" / "headers_examples.json").read_bytes())
    signature = headers["jira_webhook_issue_updated_change.json"]["X-Hub-Signature"]

    accepted = web.post("/webhooks/jira", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature": signature})  # fmt: skip
    tampered = web.post("/webhooks/jira", data=body.replace(b"ITSM", b"ITSN"), headers={
        "Content-Type": "application/json", "X-Hub-Signature": signature})  # fmt: skip

    # Authenticated, then refused as a replay: the signed sample was sent in 2024.
    assert accepted.status_code == 422
    assert [e["field"] for e in accepted.json["errors"]] == ["timestamp"]
    assert "sent over 24 hours ago" in accepted.json["detail"]
    assert tampered.status_code == 401


def test_an_approved_change_gets_a_plan_and_canceling_it_deletes_the_plan(web, work, bigpanda):
    updated = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    canceled = sample_payload("jira", "jira_webhook_transition_canceled.json", timedelta(hours=2))

    first = send(web, updated)
    work()
    [plan] = bigpanda.plans()
    second = send(web, canceled)
    work()

    assert (first.status_code, first.json["action"]) == (202, "upsert")
    assert plan["maintenance_key"] == "ITSM-1042"
    assert plan["condition"] == {"IN": ["service", ["Payments database"]]}
    assert plan["start"] - plan["end"] == -3 * 3600  # 16 Jun 01:00-04:00 in the sample
    assert (second.status_code, second.json["action"]) == (202, "remove")
    assert bigpanda.plans() == []


def test_a_cancel_delivered_before_the_update_it_follows_wins(web, work, bigpanda):
    updated = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    canceled = sample_payload("jira", "jira_webhook_transition_canceled.json", timedelta(hours=2))
    send(web, {**updated, "timestamp": updated["timestamp"] - 1})  # make the ledger known
    work()

    send(web, canceled)
    late = send(web, updated)  # Jira retried the older delivery
    work()

    assert (late.status_code, late.json["reason"]) == (200, "stale")
    assert bigpanda.plans() == []


def test_a_deleted_issue_removes_its_plan(web, work, bigpanda):
    updated = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    send(web, updated)
    work()
    deleted = sample_payload("jira", "jira_webhook_issue_deleted_change.json")
    deleted["issue"]["key"] = "ITSM-1042"

    answer = send(web, deleted)
    work()

    assert answer.json["action"] == "remove"
    assert bigpanda.plans() == []


@pytest.mark.parametrize(("hours_ago", "status"), [(0, 202), (23, 202), (25, 422)])
def test_a_signed_webhook_sent_over_a_day_ago_is_refused_as_a_replay(web, hours_ago, status):
    """A captured, signed body cannot be sent again once the change's memory has expired."""
    payload = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    payload["timestamp"] = int((time.time() - hours_ago * 3600) * 1000)

    answer = send(web, payload)

    assert answer.status_code == status, answer.json
    if status == 422:
        assert [e["field"] for e in answer.json["errors"]] == ["timestamp"]


def test_a_server_offset_window_is_silenced_in_utc_and_its_cancel_deletes_it(web, work, bigpanda):
    """Jira Server / Data Center sends dates in the server's zone (-0400 here): the plan holds
    the same instants in UTC epoch seconds, and the cancel that follows deletes it."""
    updated = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    canceled = sample_payload("jira", "jira_webhook_transition_canceled.json", timedelta(hours=2))
    server = timezone(timedelta(hours=-4))
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=3)
    fields = {
        "customfield_10008": start.astimezone(server).strftime("%Y-%m-%dT%H:%M:%S.000%z"),
        "customfield_10009": (start + timedelta(hours=2))
        .astimezone(server)
        .strftime("%Y-%m-%dT%H:%M:%S.000%z"),
    }
    updated["issue"]["fields"] = {**updated["issue"]["fields"], **fields}

    assert send(web, updated).status_code == 202
    work()
    [plan] = bigpanda.plans()
    cancel = send(web, canceled)
    work()

    assert "-0400" in fields["customfield_10008"]
    assert (plan["start"], plan["end"]) == (int(start.timestamp()), int(start.timestamp()) + 7200)
    assert (cancel.status_code, cancel.json["action"]) == (202, "remove")
    assert bigpanda.plans() == []

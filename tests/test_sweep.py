"""`bridge reconcile`: drift repaired through the workers, forgotten keys expired."""

from __future__ import annotations

import json
import time

import pytest
import requests
from bridge_harness import (
    SANDBOX_TOKEN,
    SERVICENOW_TOKEN,
    queued_jobs,
    run_worker,
    servicenow_payload,
)
from click.testing import CliRunner
from rq import Queue
from rq.serializers import JSONSerializer

from bridge import jobs
from bridge.app import create_app
from bridge.cli import main
from bridge.store import Store
from bridge.sweep import RETENTION_SECONDS, sweep

KEY = "CHG0030412"
PLANS = "/resources/v2.0/maintenance-plans"


@pytest.fixture
def planned(settings, redis_conn, bigpanda) -> dict:
    """A scheduled change whose plan exists in the sandbox; returns the plan."""
    web = create_app(settings, redis=redis_conn).test_client()
    payload = servicenow_payload("servicenow_change_scheduled.json")
    web.post(
        "/webhooks/servicenow",
        json=payload,
        headers={"Authorization": f"Bearer {SERVICENOW_TOKEN}"},
    )
    run_worker(redis_conn, settings)
    [plan] = bigpanda.plans()
    return plan


def sandbox(method: str, bigpanda, path: str, body: dict | None = None) -> requests.Response:
    """A hand-made change in BigPanda, behind the bridge's back."""
    return requests.request(
        method,
        bigpanda.url + path,
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        json=body,
        timeout=5,
    )


def queue(redis_conn) -> Queue:
    return Queue(jobs.QUEUE_NAME, connection=redis_conn, serializer=JSONSerializer)


def test_a_plan_deleted_by_hand_is_created_again(planned, redis_conn, settings, bigpanda):
    sandbox("DELETE", bigpanda, f"{PLANS}/{planned['id']}")

    counts = sweep(Store(redis_conn), queue(redis_conn), time.time())
    run_worker(redis_conn, settings)

    assert (counts.keys, counts.enqueued) == (1, 1)
    [again] = bigpanda.plans()
    assert (again["maintenance_key"], again["start"], again["end"]) == (
        KEY,
        planned["start"],
        planned["end"],
    )


def test_a_plan_edited_by_hand_is_put_back(planned, redis_conn, settings, bigpanda):
    sandbox("PATCH", bigpanda, f"{PLANS}/{planned['id']}", {"name": "edited by hand"})

    sweep(Store(redis_conn), queue(redis_conn), time.time())
    run_worker(redis_conn, settings)

    [plan] = bigpanda.plans()
    assert (plan["id"], plan["name"]) == (planned["id"], planned["name"])


def test_a_key_with_a_reconcile_pending_is_not_queued_twice(planned, redis_conn):
    store = Store(redis_conn)
    first = sweep(store, queue(redis_conn), time.time())
    second = sweep(store, queue(redis_conn), time.time())

    assert (first.enqueued, second.enqueued, second.already_pending) == (1, 0, 1)
    assert queued_jobs(redis_conn) == 1


def test_keys_with_nothing_to_manage_expire_after_the_retention(redis_conn):
    store = Store(redis_conn)
    redis_conn.sadd("bridge:keys", "CHG-OLD", "CHG-NEW")
    old = json.dumps({"at": int(time.time()) - RETENTION_SECONDS - 60, "event": "deleted"})
    redis_conn.lpush("bridge:history:CHG-OLD", old)
    redis_conn.lpush("bridge:history:CHG-NEW", json.dumps({"at": int(time.time()), "event": "x"}))

    counts = sweep(store, queue(redis_conn), time.time())

    assert (counts.expired, counts.idle) == (1, 1)
    assert sorted(store.known_keys()) == ["CHG-NEW"]
    assert store.history("CHG-OLD") == []


def test_bridge_reconcile_prints_progress_and_a_summary(planned, redis_url):
    result = CliRunner().invoke(main, ["reconcile"], env={"REDIS_URL": redis_url})

    assert result.exit_code == 0, result.output
    assert "sweeping keys" in result.output
    assert result.output.strip().endswith(
        "1 keys: 1 reconciles queued, 0 already pending, 0 with nothing to manage, 0 expired"
    )

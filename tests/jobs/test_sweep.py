"""`bridge reconcile`: drift repaired through the workers, forgotten keys expired."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from bridge_harness import (
    SANDBOX_TOKEN,
    SERVICENOW_TOKEN,
    queued_jobs,
    run_worker,
    servicenow_payload,
    sweep_now,
)
from click.testing import CliRunner
from rq import Queue

from bridge.app import create_app
from bridge.config import RETENTION_SECONDS
from bridge.jobs.queue import enqueue_reconcile, new_job_id, queue_of, store_of
from bridge.model import ChangeRef
from bridge.ops.cli import main

KEY = "CHG0030412"
MAPPINGS = Path(__file__).parent.parent.parent / "mappings"
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
    return queue_of(redis_conn)


def test_a_plan_deleted_by_hand_is_created_again(planned, redis_conn, settings, bigpanda):
    sandbox("DELETE", bigpanda, f"{PLANS}/{planned['id']}")

    counts = sweep_now(redis_conn, settings)
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
    bigpanda.requests.clear()

    sweep_now(redis_conn, settings)
    run_worker(redis_conn, settings)

    [plan] = bigpanda.plans()
    assert (plan["id"], plan["name"]) == (planned["id"], planned["name"])
    writes = [(m, p) for m, p in bigpanda.requests if m != "GET"]
    assert writes == [("PATCH", f"/sandbox{PLANS}/{planned['id']}")]  # no read before it


def test_a_sweep_of_changes_in_sync_is_one_listing_and_queues_nothing(
    planned, redis_conn, settings, bigpanda
):
    bigpanda.requests.clear()

    counts = sweep_now(redis_conn, settings)

    assert (counts.keys, counts.in_sync, counts.enqueued) == (1, 1, 0)
    assert bigpanda.requests == [("GET", f"/sandbox{PLANS}")]
    assert queued_jobs(redis_conn) == 0


def test_a_change_with_a_repair_pending_is_not_queued_twice(
    planned, redis_conn, settings, bigpanda
):
    sandbox("DELETE", bigpanda, f"{PLANS}/{planned['id']}")
    first = sweep_now(redis_conn, settings)
    second = sweep_now(redis_conn, settings)

    assert (first.enqueued, second.enqueued, second.already_pending) == (1, 0, 1)
    assert queued_jobs(redis_conn) == 1


def test_a_listing_older_than_the_ledger_does_not_undo_a_newer_plan(
    planned, web, redis_conn, settings, bigpanda
):
    """The sweep saw the plan gone; before its repair ran, a webhook's reconcile re-created it
    under a new id: the repair must not act on the old observation (no second plan)."""
    sandbox("DELETE", bigpanda, f"{PLANS}/{planned['id']}")
    sweep_now(redis_conn, settings)  # observed: gone; a repair is queued
    store = store_of(redis_conn)
    change = ChangeRef("servicenow", KEY)
    run_worker(redis_conn, settings)  # the repair creates the plan again
    [again] = bigpanda.plans()
    store.observe(change, {KEY: (planned["id"], None)})  # a stale observation of the old id
    result = store.request_reconcile(change, new_job_id(change))
    enqueue_reconcile(queue(redis_conn), change, result.job_id)
    run_worker(redis_conn, settings)

    assert [plan["id"] for plan in bigpanda.plans()] == [again["id"]]


def test_keys_with_nothing_to_manage_expire_after_the_retention(redis_conn, settings):
    store = store_of(redis_conn)
    old, new = ChangeRef("servicenow", "CHG-OLD"), ChangeRef("jira", "CHG-NEW")
    redis_conn.sadd("bridge:changes", old.id, new.id)
    entry = json.dumps({"at": int(time.time()) - RETENTION_SECONDS - 60, "event": "deleted"})
    redis_conn.lpush(f"bridge:history:{old.id}", entry)
    redis_conn.lpush(f"bridge:history:{new.id}", json.dumps({"at": int(time.time()), "event": "x"}))

    counts = sweep_now(redis_conn, settings)

    assert (counts.expired, counts.idle) == (1, 1)
    assert list(store.known_changes()) == [new]
    assert store.history(old) == []


def test_bridge_reconcile_prints_progress_and_a_summary(planned, redis_url, bigpanda):
    env = {
        "REDIS_URL": redis_url,
        "BIGPANDA_API_KEY": SANDBOX_TOKEN,
        "BIGPANDA_API_URL": bigpanda.url,
        "BRIDGE_MAPPINGS": str(MAPPINGS),
    }
    result = CliRunner().invoke(main, ["reconcile"], env=env)

    assert result.exit_code == 0, result.output
    assert "comparing changes" in result.output
    assert result.output.strip().endswith(
        "1 changes: 0 repairs queued, 0 already pending, 1 in sync, 0 with nothing to manage, "
        "0 expired, 0 orphaned plans"
    )


# --- bridge reconcile --dry-run: what would be repaired, and why; nothing queued or written ------


def dry_run(redis_url, bigpanda):
    env = {
        "REDIS_URL": redis_url,
        "BIGPANDA_API_KEY": SANDBOX_TOKEN,
        "BIGPANDA_API_URL": bigpanda.url,
        "BRIDGE_MAPPINGS": str(MAPPINGS),
    }
    return CliRunner().invoke(main, ["reconcile", "--dry-run"], env=env)


def test_dry_run_sweep_prints_each_repair_and_its_reason_and_writes_nothing(
    planned, redis_url, redis_conn, bigpanda
):
    sandbox("PATCH", bigpanda, f"{PLANS}/{planned['id']}", {"name": "edited by hand"})
    bigpanda.requests.clear()

    result = dry_run(redis_url, bigpanda)

    assert result.exit_code == 0, result.output
    assert f"servicenow {KEY}: would update {KEY}: BigPanda's plan differs in name" in (
        result.stdout
    )
    assert result.stdout.strip().endswith(
        "1 changes: 1 would be repaired (1 calls), 0 in sync, 0 remembered plans no longer ours, "
        "0 marked plans not in the ledger"
    )
    assert {method for method, _ in bigpanda.requests} == {"GET"}
    assert queued_jobs(redis_conn) == 0


def test_dry_run_sweep_names_a_plan_deleted_by_hand(planned, redis_url, bigpanda):
    sandbox("DELETE", bigpanda, f"{PLANS}/{planned['id']}")

    result = dry_run(redis_url, bigpanda)

    assert result.exit_code == 0, result.output
    assert "would create" in result.stdout
    assert "the remembered plan is gone from BigPanda" in result.stdout


def test_dry_run_sweep_of_plans_in_sync_prints_only_the_summary(planned, redis_url, bigpanda):
    result = dry_run(redis_url, bigpanda)

    assert result.exit_code == 0, result.output
    assert "would" not in result.stdout.replace("would be repaired", "")
    assert "1 changes: 0 would be repaired (0 calls), 1 in sync" in result.stdout

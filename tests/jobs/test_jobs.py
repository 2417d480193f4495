"""The reconcile job against a scripted BigPanda: retries, failures, adoption, re-creation."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from bridge_harness import bridge_settings, run_worker
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from scripted_bigpanda import ScriptedBigPanda

from bridge.engine.ownership import Owner
from bridge.jobs.queue import RETRY_INTERVALS, new_job_id, queue_marked, queue_of, store_of
from bridge.model import ChangeRef, DesiredPlan, NoPlan
from bridge.state.ledger import RememberedPlan
from bridge.state.store import LEDGER_MARKER, Store

KEY = "CHG0030412"
CHANGE = ChangeRef("servicenow", KEY)
OWNER = Owner("default", "servicenow")


@pytest.fixture
def bigpanda():
    with ScriptedBigPanda() as server:
        yield server


@pytest.fixture
def store(redis_conn):
    redis_conn.set(LEDGER_MARKER, 1)  # the ledger is known: no listing unless the job needs one
    return store_of(redis_conn)


@pytest.fixture
def queue(redis_conn):
    return queue_of(redis_conn)


@pytest.fixture
def work(redis_conn, redis_url, bigpanda):
    settings = bridge_settings(redis_url, bigpanda.url)
    return lambda: run_worker(redis_conn, settings)


def desired(**changes) -> DesiredPlan:
    now = int(time.time())
    fields = {
        "maintenance_key": KEY,
        "name": f"{KEY}: patch",
        "condition": {"IN": ["host", ["db-01"]]},
        "start": now + 600,
        "end": now + 4200,
        "custom_tags": (("maintenance_key", KEY),),
        **changes,
    }
    return DesiredPlan(**fields)


def submit(store: Store, queue: Queue, plan: DesiredPlan, version: int = 1) -> str:
    return ingest(store, queue, plan, version).job_id


def stored(plan: DesiredPlan, plan_id: str, status: str = "planned", mark=OWNER) -> dict:
    """The plan as BigPanda holds it: with the bridge's mark, unless `mark` is None."""
    body = (mark.marked(plan) if mark else plan).body()
    return {**body, "id": plan_id, "status": status}


def test_a_5xx_is_retried_later_by_rq_and_recorded(store, queue, work, bigpanda, redis_conn):
    bigpanda.reply(503, {"status": 503, "errors": ["try later"]})

    job_id = submit(store, queue, desired())
    work()

    assert job_id in ScheduledJobRegistry(queue=queue).get_job_ids()
    assert store.history(CHANGE)[0]["event"] == "retrying"
    assert store.history(CHANGE)[0]["status"] == 503
    assert bigpanda.paths() == ["POST /resources/v2.0/maintenance-plans"]


def test_a_4xx_fails_the_job_for_good_with_bigpandas_message(store, queue, work, bigpanda):
    bigpanda.reply(400, {"status": 400, "errors": ["condition: invalid tag"]})

    job_id = submit(store, queue, desired())
    work()

    assert job_id in FailedJobRegistry(queue=queue).get_job_ids()
    assert job_id not in ScheduledJobRegistry(queue=queue).get_job_ids()
    failed = queue.fetch_job(job_id)
    assert "condition: invalid tag" in failed.latest_result().exc_string
    assert store.history(CHANGE)[0]["error"].endswith("condition: invalid tag")
    assert not store.state(CHANGE).create_uncertain  # refused, so certainly not created


def test_after_a_create_of_unknown_outcome_the_plan_is_adopted_not_created_twice(
    store, queue, work, bigpanda, redis_conn
):
    plan = desired()
    bigpanda.reply(502, {"status": 502, "errors": ["bad gateway"]})  # BigPanda may have created it
    submit(store, queue, plan)
    work()
    assert store.state(CHANGE).create_uncertain

    bigpanda.reply(200, [stored(plan, "p-1")])  # the listing shows the plan after all
    job = queue.fetch_job(ScheduledJobRegistry(queue=queue).get_job_ids()[0])
    queue.enqueue_job(job)  # what RQ's scheduler does when the retry interval is over
    work()

    assert bigpanda.paths()[1:] == ["GET /resources/v2.0/maintenance-plans"]
    assert store.state(CHANGE).plans[KEY].id == "p-1"
    assert not store.state(CHANGE).create_uncertain
    assert [e["event"] for e in store.history(CHANGE)][:2] == ["in_sync", "recovered"]


def test_a_remembered_plan_deleted_by_hand_is_created_again(store, queue, work, bigpanda):
    plan = desired()
    store.remember_plan(CHANGE, KEY, RememberedPlan("gone-1"))
    bigpanda.reply(404, {"status": 404, "errors": ["not found"]})
    bigpanda.reply(201, stored(plan, "new-1"))

    submit(store, queue, plan)
    work()

    assert bigpanda.paths() == [
        "GET /resources/v2.0/maintenance-plans/gone-1",
        "POST /resources/v2.0/maintenance-plans",
    ]
    assert store.state(CHANGE).plans[KEY].id == "new-1"


def test_a_remembered_plan_with_equal_fields_makes_no_write(store, queue, work, bigpanda):
    plan = desired()
    store.remember_plan(CHANGE, KEY, RememberedPlan("p-1"))
    bigpanda.reply(200, stored(plan, "p-1"))

    submit(store, queue, plan)
    work()

    assert bigpanda.paths() == ["GET /resources/v2.0/maintenance-plans/p-1"]


def test_stop_refused_because_the_plan_already_ended_counts_as_done(store, queue, work, bigpanda):
    plan = desired(start=int(time.time()) - 60)
    store.remember_plan(CHANGE, KEY, RememberedPlan("p-1"))
    submit(store, queue, plan, version=1)
    bigpanda.reply(200, stored(plan, "p-1", status="running"))
    work()  # in sync: nothing to do

    bigpanda.reply(200, stored(plan, "p-1", status="in progress"))  # BigPanda's other spelling
    bigpanda.reply(409, {"status": 409, "errors": ["plan is not active"]})
    bigpanda.reply(200, stored(plan, "p-1", status="done"))
    submit(store, queue, NoPlan(KEY, "not_selected"), version=2)
    work()

    assert bigpanda.paths()[-2:] == [
        "POST /resources/v2.0/maintenance-plans/p-1/stop",
        "GET /resources/v2.0/maintenance-plans/p-1",
    ]
    assert KEY not in store.state(CHANGE).plans
    assert store.history(CHANGE)[0]["event"] == "stopped"


# --- the pending mark and RQ's own enqueue --------------------------------------------------------


def ingest(store: Store, queue: Queue, plan, version: int):
    """What the webhook does: the script decides and marks; RQ enqueues a job it asks for."""
    result = store.ingest(CHANGE, plan, (version,), new_job_id(CHANGE), {})
    queue_marked(queue, CHANGE, result)
    return result


def test_the_queued_job_is_rqs_own_with_its_retries(store, queue, redis_conn):
    ours = ingest(store, queue, desired(), 1)

    job = Job.fetch(ours.job_id, connection=redis_conn, serializer=JSONSerializer)
    assert (job.func_name, job.args) == ("bridge.jobs.reconcile_change", ["servicenow", KEY])
    assert job.get_status() == JobStatus.QUEUED
    assert job.retries_left == len(RETRY_INTERVALS)
    assert len(job.retry_intervals) == len(RETRY_INTERVALS)
    assert (job.result_ttl, job.failure_ttl) == (60, 30 * 24 * 3600)  # results: a minute
    assert queue.job_ids == [ours.job_id]


def test_a_pending_mark_whose_job_was_deleted_does_not_hold_back_the_next_event(
    store, queue, redis_conn
):
    first = ingest(store, queue, desired(), 1)
    Job.fetch(first.job_id, connection=redis_conn, serializer=JSONSerializer).delete()

    second = ingest(store, queue, desired(), 2)

    assert second.verdict == "enqueue"
    assert queue.job_ids == [second.job_id]


def test_a_mark_whose_enqueue_never_happened_holds_back_nothing(store, queue, redis_conn):
    """The web process died between the script and RQ's enqueue: the next event queues anew."""
    lost = store.ingest(CHANGE, desired(), (1,), new_job_id(CHANGE), {})
    assert lost.verdict == "enqueue"

    second = ingest(store, queue, desired(end=int(time.time()) + 9000), 2)

    assert second.verdict == "enqueue"
    assert queue.job_ids == [second.job_id]


def test_events_that_join_a_pending_job_queue_no_job_of_their_own(store, queue, redis_conn):
    first = ingest(store, queue, desired(), 1)
    later = [ingest(store, queue, desired(end=int(time.time()) + 5000 + n), n) for n in range(2, 6)]

    assert {result.verdict for result in later} == {"joined"}
    assert {result.job_id for result in later} == {first.job_id}
    assert queue.job_ids == [first.job_id]


# --- ownership: writes only to plans with this instance's and source's mark ---------------------


def test_a_created_plan_carries_the_bridges_mark_set_by_the_bridge(store, queue, work, bigpanda):
    bigpanda.reply(201, stored(desired(), "p-1"))

    submit(store, queue, desired())
    work()

    [create] = bigpanda.received
    assert (create.method, create.path) == ("POST", "/resources/v2.0/maintenance-plans")
    mark = {"name": "bridge_owner", "value": "maintenance-bridge/default/servicenow"}
    assert mark in create.json["custom_tags"]


@pytest.mark.parametrize(
    "mark",
    [None, Owner("staging", "servicenow"), Owner("default", "jira")],
    ids=["unmarked", "another-instance", "another-source"],
)
def test_a_remembered_plan_without_our_mark_is_never_written(store, queue, work, bigpanda, mark):
    """Edited by hand (mark removed), or marked by someone else: left alone and forgotten; the
    change gets a plan of its own."""
    plan = desired()
    store.remember_plan(CHANGE, KEY, RememberedPlan("theirs-1"))
    bigpanda.reply(200, stored(desired(name="someone's plan"), "theirs-1", mark=mark))
    bigpanda.reply(201, stored(plan, "ours-1"))

    submit(store, queue, plan)
    work()

    assert bigpanda.paths() == [
        "GET /resources/v2.0/maintenance-plans/theirs-1",
        "POST /resources/v2.0/maintenance-plans",
    ]
    assert store.state(CHANGE).plans[KEY].id == "ours-1"
    assert "not_ours" in [entry["event"] for entry in store.history(CHANGE)]


def test_a_cancel_never_deletes_a_remembered_plan_that_lost_our_mark(store, queue, work, bigpanda):
    store.remember_plan(CHANGE, KEY, RememberedPlan("theirs-1"))
    bigpanda.reply(200, stored(desired(), "theirs-1", mark=None))

    submit(store, queue, NoPlan(KEY, "not_selected"))
    work()

    assert bigpanda.paths() == ["GET /resources/v2.0/maintenance-plans/theirs-1"]
    assert store.state(CHANGE).plans == {}


def test_after_an_uncertain_create_an_unmarked_plan_of_the_key_is_not_taken(
    store, queue, work, bigpanda
):
    plan = desired()
    bigpanda.reply(502, {"status": 502, "errors": ["bad gateway"]})
    submit(store, queue, plan)
    work()
    # The listing shows a plan under the key, but without our mark: BigPanda's own app made it.
    bigpanda.reply(200, [stored(plan, "theirs-1", mark=None)])
    bigpanda.reply(201, stored(plan, "ours-1"))
    job = queue.fetch_job(ScheduledJobRegistry(queue=queue).get_job_ids()[0])
    queue.enqueue_job(job)
    work()

    assert bigpanda.paths()[1:] == [
        "GET /resources/v2.0/maintenance-plans",
        "POST /resources/v2.0/maintenance-plans",
    ]
    assert store.state(CHANGE).plans[KEY].id == "ours-1"


def test_dry_run_reads_and_records_what_it_would_write(
    store, queue, redis_conn, redis_url, bigpanda
):
    plan = desired()
    store.remember_plan(CHANGE, KEY, RememberedPlan("p-1"))
    bigpanda.reply(200, stored(desired(end=plan.end + 600), "p-1"))
    settings = replace(bridge_settings(redis_url, bigpanda.url), dry_run=True)

    submit(store, queue, plan)
    run_worker(redis_conn, settings)

    assert bigpanda.paths() == ["GET /resources/v2.0/maintenance-plans/p-1"]  # no write
    entry = store.history(CHANGE)[0]
    assert entry["event"] == "would_update"
    assert (entry["plan_id"], "end" in entry["fields"]) == ("p-1", True)


def test_job_names_stored_in_redis_keep_working():
    """Queued and failed jobs (kept 30 days) name their function `bridge.jobs.<name>`: after
    the move of the job bodies to bridge/jobs/tasks.py those names still find them."""
    from rq.utils import import_attribute

    from bridge.jobs import queue, tasks

    assert (queue.RECONCILE, queue.WRITE_NOTE) == (
        "bridge.jobs.reconcile_change",
        "bridge.jobs.write_note",
    )
    assert import_attribute(queue.RECONCILE) is tasks.reconcile_change
    assert import_attribute(queue.WRITE_NOTE) is tasks.write_note

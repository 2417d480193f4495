"""Crash safety with real worker processes: SIGKILL mid-create, SIGTERM mid-job, SIGKILL of the
worker whose scheduler holds RQ's scheduler lock."""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from bridge_harness import (
    SERVICENOW_TOKEN,
    bridge_settings,
    descendants,
    kill_tree,
    serve_sandbox,
    servicenow_payload,
    start_worker_process,
    wait_for,
    worker_env,
)
from rq import Worker
from rq.job import JobStatus

from bridge.app import create_app
from bridge.jobs import queue as rq_owner
from bridge.jobs import tasks as jobs
from bridge.jobs.queue import QUEUE_NAME, queue_of, store_of
from bridge.model import ChangeRef

# Real processes, kills and restarts: `-m 'not slow'` leaves them out of a quick local run.
pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent.parent
SCHEDULER_LOCK = f"rq:scheduler-lock:{QUEUE_NAME}"
KEY = "CHG0030412"
CHANGE = ChangeRef("servicenow", KEY)
SLOW_CREATE_SECONDS = 3.0


@pytest.fixture
def bigpanda(redis_conn):
    """The sandbox, answering every create a few seconds after making the plan."""

    def slow_create(method: str, path: str) -> float:
        return SLOW_CREATE_SECONDS if method == "POST" and path.endswith("plans") else 0.0

    with serve_sandbox(redis_conn, delay=slow_create) as server:
        yield server


@pytest.fixture
def web(redis_url, redis_conn, bigpanda):
    return create_app(bridge_settings(redis_url, bigpanda.url), redis=redis_conn).test_client()


@pytest.fixture
def start_worker(redis_url, bigpanda):
    started: list[subprocess.Popen] = []
    env = worker_env(redis_url, bigpanda.url)

    def start() -> subprocess.Popen:
        started.append(start_worker_process(env))
        return started[-1]

    yield start
    for process in started:
        kill_tree(process)


def send(web):
    payload = servicenow_payload("servicenow_change_scheduled.json")
    return web.post(
        "/webhooks/servicenow",
        json=payload,
        headers={"Authorization": f"Bearer {SERVICENOW_TOKEN}"},
    )


def test_a_worker_killed_mid_create_is_replaced_without_a_duplicate_plan(
    web, bigpanda, start_worker, redis_conn
):
    first = start_worker()
    assert send(web).status_code == 202
    wait_for(lambda: bigpanda.count("POST", r"plans$") == 1, 15)  # the create is in flight

    for pid in [first.pid, *descendants(first.pid)]:  # RQ's work horse has a session of its own
        os.kill(pid, signal.SIGKILL)
    first.wait()
    start_worker()
    store = store_of(redis_conn)
    wait_for(lambda: KEY in store.state(CHANGE).plans, 60, step=0.5)

    [plan] = bigpanda.plans()
    assert store.state(CHANGE).plans[KEY].id == plan["id"]
    assert bigpanda.count("POST", r"plans$") == 1  # adopted from the listing, not re-created
    assert "recovered" in [entry["event"] for entry in store.history(CHANGE)]


def test_sigterm_lets_the_worker_finish_its_job_then_exit(web, bigpanda, start_worker, redis_conn):
    worker = start_worker()
    assert send(web).status_code == 202
    wait_for(lambda: bigpanda.count("POST", r"plans$") == 1, 15)

    worker.send_signal(signal.SIGTERM)
    worker.wait(30)

    assert worker.returncode == 0
    store = store_of(redis_conn)
    [plan] = bigpanda.plans()
    assert store.state(CHANGE).plans[KEY].id == plan["id"]  # the answer was awaited and stored
    assert not store.state(CHANGE).create_uncertain


def test_a_worker_killed_with_the_scheduler_lock_does_not_hold_back_retries(
    start_worker, redis_conn
):
    first = start_worker()
    wait_for(lambda: redis_conn.exists(SCHEDULER_LOCK), 15)  # its scheduler took the lock
    start_worker()
    wait_for(lambda: len(Worker.all(connection=redis_conn)) == 2, 15)
    for pid in [first.pid, *descendants(first.pid)]:  # the worker and its scheduler process
        os.kill(pid, signal.SIGKILL)
    first.wait()

    queue = queue_of(redis_conn)
    # A retry falling due a second later: a reconcile of a key with nothing to do.
    job = queue.enqueue_in(timedelta(seconds=1), jobs.reconcile_change, "servicenow", "CHG-NOTHING")
    took = wait_for(lambda: job.get_status() == JobStatus.FINISHED, 50, step=0.5)

    # RQ alone would wait for the dead holder's lock to expire: a minute after its last refresh.
    # Here: two maintenance passes of the survivor to see the lock unrefreshed, then its own.
    assert took < 3 * rq_owner.MAINTENANCE_SECONDS + 5


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_scheduler_lock_of_a_live_worker_is_kept(start_worker, redis_conn):
    start_worker()
    wait_for(lambda: redis_conn.exists(SCHEDULER_LOCK), 15)
    clock = Clock()
    watch = rq_owner.SchedulerLockWatch(clock)

    freed = [watch.release_if_dead(redis_conn)]
    first_ttl = redis_conn.pttl(SCHEDULER_LOCK)
    wait_for(lambda: redis_conn.pttl(SCHEDULER_LOCK) > first_ttl, 15, step=0.05)  # a refresh
    clock.now += rq_owner.SCHEDULER_SILENCE_SECONDS + 0.5
    freed.append(watch.release_if_dead(redis_conn))

    assert freed == [False, False]
    assert redis_conn.exists(SCHEDULER_LOCK)


def test_a_scheduler_lock_nobody_refreshes_is_freed_at_the_second_look(redis_conn):
    redis_conn.set(SCHEDULER_LOCK, "a-dead-scheduler", px=61_000)
    clock = Clock()
    watch = rq_owner.SchedulerLockWatch(clock)

    first_look = watch.release_if_dead(redis_conn)
    clock.now += 1
    too_soon = watch.release_if_dead(redis_conn)
    silence = rq_owner.SCHEDULER_SILENCE_SECONDS + 0.5
    clock.now += silence - 1
    # Redis's own clock stands for the time that passed: the lock's TTL fell all that while.
    redis_conn.pexpire(SCHEDULER_LOCK, redis_conn.pttl(SCHEDULER_LOCK) - int(silence * 1000))
    second_look = watch.release_if_dead(redis_conn)

    assert (first_look, too_soon, second_look) == (False, False, True)
    assert not redis_conn.exists(SCHEDULER_LOCK)


def test_a_scheduler_lock_refreshed_between_two_looks_is_kept(redis_conn):
    """The other side of the test above: the same looks, but the holder refreshed its lock."""
    redis_conn.set(SCHEDULER_LOCK, "a-live-scheduler", px=61_000)
    clock = Clock()
    watch = rq_owner.SchedulerLockWatch(clock)

    first_look = watch.release_if_dead(redis_conn)
    clock.now += rq_owner.SCHEDULER_SILENCE_SECONDS + 0.5
    redis_conn.set(SCHEDULER_LOCK, "a-live-scheduler", px=61_000)
    second_look = watch.release_if_dead(redis_conn)

    assert (first_look, second_look) == (False, False)
    assert redis_conn.exists(SCHEDULER_LOCK)


def test_rqs_heartbeat_grace_is_what_the_worker_corrects_for(redis_conn):
    """BridgeWorker shortens RQ's grace on a job's heartbeat (RQ adds a minute) so that a dead
    worker's job is noticed in seconds: this fails the day RQ changes that grace."""
    from rq import Worker
    from rq.job import Job

    from bridge.jobs.queue import HEARTBEAT_GRACE_SECONDS, RQ_HEARTBEAT_GRACE_SECONDS, make_worker

    job = Job.create("builtins.len", args=("x",), connection=redis_conn, timeout=-1)
    plain = Worker(["bridge"], connection=redis_conn, job_monitoring_interval=5)
    ours = make_worker(redis_conn)

    assert plain.get_heartbeat_ttl(job) == 5 + RQ_HEARTBEAT_GRACE_SECONDS
    assert ours.get_heartbeat_ttl(job) == ours.job_monitoring_interval + HEARTBEAT_GRACE_SECONDS

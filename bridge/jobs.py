"""The functions RQ runs, and how they are enqueued: one reconcile per maintenance_key."""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass

from rq import Queue, Retry, get_current_job

from .bigpanda import BigPandaClient
from .config import Settings
from .errors import PermanentError, TransientError
from .model import Decision, Plan
from .reconcile import Call, reconcile
from .store import PREFIX, Store

log = logging.getLogger(__name__)

QUEUE_NAME = "bridge"
# Transient BigPanda failures: the first retries within seconds, the last about an hour later.
RETRY_INTERVALS = [5, 15, 60, 180, 600, 1200, 1800]
LOCK_SECONDS = 120
# A reconcile re-reads the desired plan after its calls: an event may have arrived meanwhile.
MAX_PASSES = 5


@dataclass
class WorkerContext:
    """What a worker process needs; set once at start by `bridge worker` (or a test)."""

    settings: Settings
    client: BigPandaClient


_context: WorkerContext | None = None


def configure(settings: Settings) -> None:
    """Install the worker's settings and BigPanda client (called at worker start-up)."""
    global _context
    client = BigPandaClient(
        settings.bigpanda_api_url,
        settings.bigpanda_token,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    _context = WorkerContext(settings=settings, client=client)


def new_job_id(maintenance_key: str) -> str:
    """RQ job ids allow only letters, digits, _ and -: a readable slug plus a unique suffix."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", maintenance_key)[:60]
    return f"reconcile-{slug}-{uuid.uuid4().hex[:12]}"


def enqueue_reconcile(queue: Queue, maintenance_key: str, job_id: str) -> None:
    """Queue a reconcile of one key; transient failures are retried by RQ's scheduler."""
    queue.enqueue(
        reconcile_key,
        maintenance_key,
        job_id=job_id,
        retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        result_ttl=3600,
        failure_ttl=30 * 24 * 3600,
        description=f"reconcile {maintenance_key}",
    )


def reconcile_key(maintenance_key: str) -> str:
    """Make BigPanda hold the newest desired plan of one key.

    A TransientError escapes and RQ retries the job; a PermanentError is recorded and ends the
    job in RQ's failed registry with BigPanda's message, without retries."""
    if _context is None:
        configure(Settings.from_env())
    assert _context is not None
    job = get_current_job()
    store = Store(job.connection)
    store.claim(maintenance_key, job.id)
    lock = job.connection.lock(
        f"{PREFIX}lock:{maintenance_key}", timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS
    )
    with lock:
        try:
            return _converge(store, _context.client, maintenance_key)
        except TransientError as exc:
            store.record(maintenance_key, "retrying", status=exc.http_status, error=exc.message)
            raise
        except PermanentError as exc:
            store.record(maintenance_key, "failed", status=exc.http_status, error=exc.message)
            job.retries_left = 0  # retrying cannot help: BigPanda refused the request itself
            raise


def _converge(store: Store, client: BigPandaClient, key: str) -> str:
    """Reconcile until the desired plan read before the calls is still the newest one."""
    _ensure_ledger(store, client)
    for _ in range(MAX_PASSES):
        state = store.state(key)
        actual = _current_plan(store, client, key, state.plan_id, state.create_uncertain)
        outcome = _apply(store, client, key, state.desired, actual)
        if store.state(key).desired == state.desired:
            return outcome
    return outcome


def _ensure_ledger(store: Store, client: BigPandaClient) -> None:
    """When Redis lost the key -> id memory, rebuild it from one full listing before any create."""
    if not store.ledger_intact():
        found = store.rebuild_ledger(client.list_plans())
        log.info("rebuilt the plan ledger from BigPanda: %d live plans", found)


def _current_plan(
    store: Store, client: BigPandaClient, key: str, plan_id: str | None, uncertain: bool
) -> Plan | None:
    """The remembered plan; after a create of unknown outcome, the one BigPanda lists for key."""
    if uncertain:
        adopted = next(
            (p for p in client.list_plans() if p.maintenance_key == key and p.status != "ended"),
            None,
        )
        store.remember_plan(key, adopted.id if adopted else plan_id)
        store.set_create_uncertain(key, False)
        if adopted:
            store.record(key, "adopted", plan_id=adopted.id)
            return adopted
    if not plan_id:
        return None
    plan = client.get(plan_id)
    if plan is None:
        store.remember_plan(key, None)
        store.record(key, "vanished", plan_id=plan_id)
    return plan


def _apply(
    store: Store, client: BigPandaClient, key: str, desired: Decision | None, actual: Plan | None
) -> str:
    result = reconcile(desired, actual, time.time())
    if result.warning:
        store.record(key, "warning", message=result.warning)
    for call in result.calls:
        _call(store, client, key, call)
    if not result.calls:
        store.record(key, "in_sync", plan_id=actual.id if actual else None)
        return "in sync"
    return ", ".join(call.action for call in result.calls)


def _call(store: Store, client: BigPandaClient, key: str, call: Call) -> None:
    if call.action == "create":
        store.set_create_uncertain(key, True)
        try:
            plan = client.create(dict(call.body))
        except PermanentError:
            store.set_create_uncertain(key, False)  # refused: certainly not created
            raise
        store.remember_plan(key, plan.id)
        store.set_create_uncertain(key, False)
        store.record(
            key, "created", plan_id=plan.id, start=call.body["start"], end=call.body["end"]
        )
        return
    assert call.plan_id is not None
    if call.action == "update":
        client.update(call.plan_id, dict(call.body))
        store.record(key, "updated", plan_id=call.plan_id, fields=sorted(call.body))
    elif call.action == "stop":
        _stop(client, call.plan_id)
        store.remember_plan(key, None)
        store.record(key, "stopped", plan_id=call.plan_id)
    else:
        client.delete(call.plan_id)
        store.remember_plan(key, None)
        store.record(key, "deleted", plan_id=call.plan_id)


def _stop(client: BigPandaClient, plan_id: str) -> None:
    """A 4xx on stop means "read the plan again": it may have ended already (SPEC)."""
    try:
        client.stop(plan_id)
    except PermanentError:
        plan = client.get(plan_id)
        if plan is not None and plan.status == "running":
            raise

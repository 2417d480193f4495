"""The functions RQ runs, and how they are enqueued: one reconcile per maintenance_key."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from rq import Queue, Retry, get_current_job

from .bigpanda import BigPandaClient
from .config import Settings
from .errors import ConfigError, PermanentError, TransientError
from .mapping.loader import SourceMapping, load_mappings
from .model import DesiredPlan, Plan, plans_of
from .reconcile import Call, reconcile
from .store import PREFIX, KeyState, Store, change_key_of

log = logging.getLogger(__name__)

QUEUE_NAME = "bridge"
# Transient BigPanda failures: the first retries within seconds, the last about an hour later.
RETRY_INTERVALS = [5, 15, 60, 180, 600, 1200, 1800]
LOCK_SECONDS = 120
# A reconcile re-reads the desired plan after its calls: an event may have arrived meanwhile.
MAX_PASSES = 5


@dataclass
class WorkerContext:
    """What a worker process needs: a BigPanda client per organization (None: the default)."""

    clients: Mapping[str | None, BigPandaClient]


_context: WorkerContext | None = None


def configure(settings: Settings, mappings: Mapping[str, SourceMapping] | None = None) -> None:
    """Build the worker's BigPanda clients (called once at worker start-up)."""
    global _context
    if mappings is None:
        mappings = load_mappings(settings.mappings_dir, settings.secrets)
    clients = {None: _client(settings, settings.bigpanda_api_url, settings.bigpanda_token)}
    for mapping in mappings.values():
        for name, target in mapping.targets.items():
            token = settings.secrets.get(target.api_key_env)
            if not token:
                raise ConfigError(
                    f"{mapping.path}: targets.{name}: {target.api_key_env} is not set"
                )
            clients[name] = _client(settings, target.api_url, token)
    _context = WorkerContext(clients=clients)


def _client(settings: Settings, url: str, token: str) -> BigPandaClient:
    return BigPandaClient(
        url, token, connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout
    )


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
    """Make BigPanda hold the newest desired plan(s) of one key.

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
            return _converge(store, _context.clients, maintenance_key)
        except TransientError as exc:
            store.record(maintenance_key, "retrying", status=exc.http_status, error=exc.message)
            raise
        except PermanentError as exc:
            store.record(maintenance_key, "failed", status=exc.http_status, error=exc.message)
            job.retries_left = 0  # retrying cannot help: BigPanda refused the request itself
            raise


def _converge(store: Store, clients: Mapping[str | None, BigPandaClient], key: str) -> str:
    """Reconcile until the desired plan read before the calls is still the newest one."""
    if not store.ledger_intact():
        # Redis lost the key -> id memory: rebuild it from one full listing before any create.
        found = store.rebuild_ledger({name: c.list_plans() for name, c in clients.items()})
        log.info("rebuilt the plan ledger from BigPanda: %d live plans", found)
    outcomes: list[str] = []
    for _ in range(MAX_PASSES):
        state = store.state(key)
        listed = _adopt(store, clients, key, state) if state.create_uncertain else {}
        state = store.state(key) if listed else state
        wanted = plans_of(state.desired)
        outcomes = [
            _reconcile_plan(store, clients, key, plan_key, wanted.get(plan_key), state, listed)
            for plan_key in sorted(set(wanted) | set(state.plans))
        ]
        if store.state(key).desired == state.desired:
            break
    return "; ".join(outcomes) or "nothing to do"


def _adopt(
    store: Store, clients: Mapping[str | None, BigPandaClient], key: str, state: KeyState
) -> dict[str, Plan]:
    """After a create of unknown outcome, take the plans BigPanda lists under this change;
    returns them by plan key, as read, so that they need not be read again."""
    adopted: dict[str, Plan] = {}
    targets = {plan.target for plan in plans_of(state.desired).values()} or {None}
    for target in targets:
        for plan in clients[target].list_plans():
            plan_key = plan.maintenance_key or ""
            ours = change_key_of(plan_key) == key and plan.status != "ended"
            if ours and plan_key not in state.plans:
                store.remember_plan(key, plan_key, plan.id, target)
                store.record(key, "adopted", plan_key=plan_key, plan_id=plan.id)
                adopted[plan_key] = plan
    store.set_create_uncertain(key, False)
    return adopted


def _reconcile_plan(
    store: Store,
    clients: Mapping[str | None, BigPandaClient],
    key: str,
    plan_key: str,
    desired: DesiredPlan | None,
    state: KeyState,
    listed: Mapping[str, Plan],
) -> str:
    remembered = state.plans.get(plan_key)
    target = desired.target if desired else remembered.target if remembered else None
    client = clients[target]
    actual = listed.get(plan_key) or _current_plan(
        store, client, key, plan_key, remembered.id if remembered else None
    )
    result = reconcile(desired, actual, time.time())
    if result.warning:
        store.record(key, "warning", plan_key=plan_key, message=result.warning)
    for call in result.calls:
        _call(store, client, key, plan_key, target, call)
    if not result.calls:
        store.record(key, "in_sync", plan_key=plan_key, plan_id=actual.id if actual else None)
        return f"{plan_key}: in sync"
    return f"{plan_key}: {', '.join(call.action for call in result.calls)}"


def _current_plan(
    store: Store, client: BigPandaClient, key: str, plan_key: str, plan_id: str | None
) -> Plan | None:
    """The remembered plan as BigPanda holds it now; forgotten when BigPanda no longer has it."""
    if not plan_id:
        return None
    plan = client.get(plan_id)
    if plan is None:
        store.remember_plan(key, plan_key, None)
        store.record(key, "vanished", plan_key=plan_key, plan_id=plan_id)
    return plan


def _call(
    store: Store, client: BigPandaClient, key: str, plan_key: str, target: str | None, call: Call
) -> None:
    if call.action == "create":
        store.set_create_uncertain(key, True)  # a crash or timeout from here on: list, then adopt
        try:
            plan = client.create(dict(call.body))
        except PermanentError:
            store.set_create_uncertain(key, False)  # refused: certainly not created
            raise
        store.remember_plan(key, plan_key, plan.id, target)
        store.set_create_uncertain(key, False)
        store.record(key, "created", plan_key=plan_key, plan_id=plan.id,
                     start=call.body["start"], end=call.body["end"])  # fmt: skip
        return
    assert call.plan_id is not None
    if call.action == "update":
        client.update(call.plan_id, dict(call.body))
        store.record(
            key, "updated", plan_key=plan_key, plan_id=call.plan_id, fields=sorted(call.body)
        )
        return
    if call.action == "stop":
        _stop(client, call.plan_id)
    else:
        client.delete(call.plan_id)
    store.remember_plan(key, plan_key, None)
    event = "stopped" if call.action == "stop" else "deleted"
    store.record(key, event, plan_key=plan_key, plan_id=call.plan_id)


def _stop(client: BigPandaClient, plan_id: str) -> None:
    """A 4xx on stop means "read the plan again": it may have ended already (SPEC)."""
    try:
        client.stop(plan_id)
    except PermanentError:
        plan = client.get(plan_id)
        if plan is not None and plan.status == "running":
            raise

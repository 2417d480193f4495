"""The job RQ runs, one reconcile per change, and the worker process's context for it."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from redis import Redis
from rq import get_current_job

from . import histograms
from .bigpanda import BigPandaClient
from .clients import build_clients
from .config import Settings
from .converge import ChangeConverger
from .errors import PermanentError, TransientError
from .keylock import fence_of, key_lock
from .logs import event as log_event
from .mapping.loader import SourceMapping, load_mappings
from .model import ChangeRef
from .queue import honour_retry_after
from .store import STATS, Store

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """What a worker process needs: a BigPanda client per organization (None: the default),
    this instance's name for the ownership mark, dry run, and the sources that adopt."""

    clients: Mapping[str | None, BigPandaClient]
    instance: str = "default"
    dry_run: bool = False
    adopting: frozenset[str] = frozenset()  # sources whose mapping allows adopting unmarked plans


_context: WorkerContext | None = None


def configure(
    settings: Settings, mappings: Mapping[str, SourceMapping] | None, redis: Redis
) -> None:
    """Build the worker's BigPanda clients, one per organization, each paced by a rate limiter
    that every worker shares through Redis (called once at worker start-up)."""
    global _context
    if mappings is None:
        mappings = load_mappings(settings.mappings_dir, settings.secrets, settings.sources)
    clients = build_clients(settings, mappings, redis)
    adopting = frozenset(m.source for m in mappings.values() if m.adopt_unmarked_plans)
    _context = WorkerContext(clients, settings.instance, settings.dry_run, adopting)
    if settings.dry_run:
        log.warning("BRIDGE_DRY_RUN is on: BigPanda is read, never written")
    if settings.sandbox_forced:
        log.warning("BRIDGE_SANDBOX_FORCE=1: plans go to the built-in sandbox, not to BigPanda")


def reconcile_change(source: str, maintenance_key: str) -> str:
    """Make BigPanda hold the newest desired plan(s) of one change.

    A TransientError escapes and RQ retries the job; a PermanentError is recorded and ends the
    job in RQ's failed registry with BigPanda's message, without retries."""
    job = get_current_job()
    if _context is None:
        configure(Settings.from_env(), None, job.connection)
    assert _context is not None
    change = ChangeRef(source, maintenance_key)
    store = Store(job.connection)
    accepted = store.claim(change, job.id)
    with key_lock(job.connection, job.id, change) as lock:
        reconciler = ChangeConverger(
            store,
            _context.clients,
            change,
            fence_of(lock),
            instance=_context.instance,
            dry_run=_context.dry_run,
            adopt_unmarked=source in _context.adopting,
        )
        try:
            outcome = reconciler.converge()
        except TransientError as exc:
            event = "retrying" if job.retries_left else "failed"  # RQ retries no more after this
            store.record(change, event, job=job.id, status=exc.http_status, error=exc.message)
            honour_retry_after(job, exc.retry_after)
            if accepted is not None and job.retries_left:
                store.unclaim_time(change, accepted)
            raise
        except PermanentError as exc:
            store.record(change, "failed", job=job.id, status=exc.http_status, error=exc.message)
            job.retries_left = 0  # retrying cannot help: BigPanda refused the request itself
            raise
    if accepted is not None:  # from the webhook's acceptance to BigPanda agreeing
        histograms.observe(
            job.connection, STATS, "agreed_seconds", [source], max(0.0, time.time() - accepted)
        )
    log_event(log, "reconcile done", job_id=job.id, source=source, key=maintenance_key,
              outcome=outcome)  # fmt: skip
    return outcome

"""The job RQ runs, one reconcile per change, and the worker process's context for it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from redis import Redis
from rq import get_current_job

from ..bigpanda.client import BigPandaClient
from ..bigpanda.organizations import build_clients
from ..config import Settings
from ..engine.converge import ChangeConverger
from ..errors import ConfigError, PermanentError, TransientError
from ..itsm.notes import (
    NOTE_SENT_DAYS,
    NoteClient,
    attempt_marker,
    note_client,
    note_text,
    sent_marker,
    tag_of,
)
from ..logs import event as log_event
from ..mapping.loader import SourceMapping, load_mappings
from ..model import ChangeRef
from ..state import histograms
from ..state.keylock import fence_of, key_lock
from ..state.store import STATS, Store
from .queue import enqueue_note, honour_retry_after, store_of

log = logging.getLogger(__name__)
# A ServiceNow or Jira that answers slowly holds the notes worker this long at most per note
# (the note is then retried): never a reconcile, which has a worker of its own.
NOTE_READ_TIMEOUT = 10.0


@dataclass
class WorkerContext:
    """What a worker process needs: a BigPanda client per organization (None: the default),
    this instance's name for the ownership mark, dry run, and the sources that adopt."""

    clients: Mapping[str | None, BigPandaClient]
    instance: str = "default"
    dry_run: bool = False
    adopting: frozenset[str] = frozenset()  # sources whose mapping allows adopting unmarked plans
    notes: Mapping[str, NoteClient] = field(default_factory=dict)  # by source: write-back


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
    notes = _note_clients(settings, mappings, redis)
    _context = WorkerContext(clients, settings.instance, settings.dry_run, adopting, notes)
    if settings.dry_run:
        log.warning("BRIDGE_DRY_RUN is on: BigPanda is read, never written")
    if settings.sandbox_forced:
        log.warning("BRIDGE_SANDBOX_FORCE=1: plans go to the built-in sandbox, not to BigPanda")


def _note_clients(
    settings: Settings, mappings: Mapping[str, SourceMapping], redis: Redis
) -> dict[str, NoteClient]:
    found = {}
    for mapping in mappings.values():
        target = mapping.write_back
        if target is None:
            continue
        secret = settings.secrets.get(target.secret_env)
        if not secret:
            raise ConfigError(f"{mapping.path}: write_back: {target.secret_env} is not set")
        # A note's read timeout is short: the notes worker serves every change's notes.
        timeouts = (settings.connect_timeout, min(settings.read_timeout, NOTE_READ_TIMEOUT))
        found[mapping.source] = note_client(redis, target, secret, timeouts, settings.rate_period)
    return found


def reconcile_change(source: str, maintenance_key: str) -> str:
    """Make BigPanda hold the newest desired plan(s) of one change.

    A TransientError escapes and RQ retries the job; a PermanentError is recorded and ends the
    job in RQ's failed registry with BigPanda's message, without retries."""
    job = get_current_job()
    if _context is None:
        configure(Settings.from_env(), None, job.connection)
    assert _context is not None
    change = ChangeRef(source, maintenance_key)
    store = store_of(job.connection)
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
            notify=_notifier(job.connection, store, change),
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
            reconciler.notify("refused", {"message": exc.message})
            job.retries_left = 0  # retrying cannot help: BigPanda refused the request itself
            raise
    if accepted is not None:  # from the webhook's acceptance to BigPanda agreeing
        histograms.observe(
            job.connection, STATS, "agreed_seconds", [source], max(0.0, time.time() - accepted)
        )
    log_event(log, "reconcile done", job_id=job.id, source=source, key=maintenance_key,
              outcome=outcome)  # fmt: skip
    return outcome


def _notifier(connection: Redis, store: Store, change: ChangeRef):
    """Queues one note job per event, when the source writes back and the record is known."""

    def notify(event: str, details: dict[str, object]) -> None:
        assert _context is not None
        if change.source not in _context.notes or _context.dry_run:
            return
        record = next((e["record"] for e in store.history(change) if e.get("record")), None)
        if record is None:
            return
        event_id = uuid.uuid4().hex
        text = f"{note_text(event, details)} {tag_of(event_id)}"
        enqueue_note(connection, event_id, (change.source, change.key, event_id, record, text))

    return notify


def write_note(source: str, maintenance_key: str, event_id: str, record: str, text: str) -> str:
    """Write one note on the sender's record, once: a retry after it was written sends nothing.
    A TransientError escapes (RQ retries); a refusal is recorded and ends the job."""
    job = get_current_job()
    if _context is None:
        configure(Settings.from_env(), None, job.connection)
    assert _context is not None
    change, store = ChangeRef(source, maintenance_key), store_of(job.connection)
    client = _context.notes.get(source)
    if client is None:
        return "write-back is not configured for this source any more"
    if job.connection.exists(sent_marker(event_id)):
        return "written already"
    keep = NOTE_SENT_DAYS * 86400
    first = job.connection.set(attempt_marker(event_id), "1", nx=True, ex=keep)
    try:
        if not first and client.holds(record, tag_of(event_id)):
            job.connection.set(sent_marker(event_id), "1", ex=keep)
            return "written by an earlier attempt"
        client.write(record, text)
    except PermanentError as exc:
        store.record(
            change, "note_failed", record=record, status=exc.http_status, error=exc.message
        )
        job.retries_left = 0
        raise
    job.connection.set(sent_marker(event_id), "1", ex=keep)
    store.record(change, "note", record=record, text=text)
    return "written"

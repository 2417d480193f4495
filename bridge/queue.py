"""The reconcile queue, through RQ's public API: no other module names RQ's keys, job fields or
statuses. The ingest script decides and marks a change pending with a new job id; the job itself
is enqueued here, by RQ (`Queue.enqueue_call(job_id=...)`), in a second round trip."""

from __future__ import annotations

import math
import random
import re
import uuid
from datetime import UTC, datetime

from redis import Redis
from rq import Queue, Retry
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from .model import ChangeRef

QUEUE_NAME = "bridge"
NOTES_QUEUE_NAME = "bridge-notes"  # write-back notes: never ahead of, never holding up, a reconcile
RECONCILE = "bridge.jobs.reconcile_change"  # by name: jobs.py imports this module
WRITE_NOTE = "bridge.jobs.write_note"
# Transient BigPanda failures: 8 retries, the first within seconds (a blip heals in well under a
# minute), growing to half an hour; about 53 minutes in all. Each job gets its own jitter.
RETRY_INTERVALS = (2, 5, 15, 45, 120, 300, 900, 1800)
RETRY_JITTER = 0.2
RESULT_TTL = 3600
FAILURE_TTL = 30 * 24 * 3600  # failed jobs are kept a month for `bridge jobs failed`


def queue_of(connection: Redis) -> Queue:
    """The bridge's queue (JSON serializer: jobs hold JSON-safe arguments, never secrets)."""
    return Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def notes_queue_of(connection: Redis) -> Queue:
    return Queue(NOTES_QUEUE_NAME, connection=connection, serializer=JSONSerializer)


def enqueue_note(connection: Redis, event_id: str, args: tuple[str, ...]) -> None:
    """Queue one note (its id names the event: one job per event), retried like a reconcile."""
    notes_queue_of(connection).enqueue_call(
        WRITE_NOTE,
        args=args,
        job_id=f"note-{event_id}",
        retry=Retry(max=len(RETRY_INTERVALS), interval=retry_intervals()),
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=f"note {args[0]} {args[1]}",
    )


def new_job_id(change: ChangeRef) -> str:
    """RQ job ids allow only letters, digits, _ and -: a readable slug plus a unique suffix."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", change.key)[:60]
    return f"reconcile-{change.source}-{slug}-{uuid.uuid4().hex[:12]}"


def job_key_prefix() -> str:
    """What RQ puts before a job's id to name its hash (the ingest script asks whether the
    pending job has been written)."""
    return Job.key_for("")


def enqueue_reconcile(queue: Queue, change: ChangeRef, job_id: str) -> None:
    """Queue the reconcile the ingest script marked pending under `job_id`."""
    queue.enqueue_call(
        RECONCILE,
        args=(change.source, change.key),
        job_id=job_id,
        retry=Retry(max=len(RETRY_INTERVALS), interval=retry_intervals()),
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=f"reconcile {change}",
    )


def retry_intervals() -> list[int]:
    """The retry intervals of one job: the base ones with +-20% jitter, so that jobs failed by
    the same BigPanda blip (or 429) do not all come back in the same second."""
    return [
        max(1, round(i * random.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)))
        for i in RETRY_INTERVALS
    ]


def job_counts(queue: Queue) -> dict[str, int]:
    """Reconcile jobs by state, for /metrics."""
    return {
        "queued": queue.count,
        "started": StartedJobRegistry(queue=queue).count,
        "scheduled": ScheduledJobRegistry(queue=queue).count,
        "failed": FailedJobRegistry(queue=queue).count,
    }


def oldest_queued_seconds(queue: Queue) -> float:
    """How long the job at the head of the queue has waited (0: none waits)."""
    ids = queue.get_job_ids(0, 0)
    job = queue.fetch_job(ids[0]) if ids else None
    enqueued = job.enqueued_at if job is not None else None
    if enqueued is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - enqueued.replace(tzinfo=UTC)).total_seconds())


def honour_retry_after(job: Job, retry_after: float | None) -> None:
    """BigPanda's Retry-After, when it sends one, lengthens the next retry interval."""
    if retry_after is None or not job.retries_left or not job.retry_intervals:
        return
    index = max(len(job.retry_intervals) - job.retries_left, 0)
    job.retry_intervals[index] = max(job.retry_intervals[index], math.ceil(retry_after))

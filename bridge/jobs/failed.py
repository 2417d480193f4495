"""Failed jobs in RQ (reconciles and notes): list them with the remote service's message, put one or
all back to work."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq.exceptions import DeserializationError, InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from ..errors import PermanentError, TransientError
from ..model import ChangeRef
from ..state.store import Store
from .queue import NOTES_QUEUE_NAME, QUEUE_NAME, RECONCILE, RETRY_INTERVALS, WRITE_NOTE, store_of

# What a reconcile records in the key's history each time a run of it fails.
FAILED_RUN_EVENTS = frozenset({"retrying", "failed", "note_failed"})
# The exception class the worker writes before BigPanda's message: not worth showing.
_REMOTE_PREFIXES = tuple(
    f"{e.__module__}.{e.__qualname__}: " for e in (PermanentError, TransientError)
)


@dataclass(frozen=True)
class FailedJob:
    """A reconcile job RQ gave up on, and why."""

    id: str
    change: ChangeRef
    error: str
    tries: int
    failed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        failed_at = self.failed_at.astimezone(UTC) if self.failed_at else None
        return {
            "id": self.id,
            "source": self.change.source,
            "maintenance_key": self.change.key,
            "error": self.error,
            "tries": self.tries,
            "failed_at": failed_at.strftime("%Y-%m-%dT%H:%M:%SZ") if failed_at else None,
        }


def failed_registries(connection: Redis) -> list[FailedJobRegistry]:
    """The failed jobs of the reconcile queue, then of the notes queue."""
    return [
        FailedJobRegistry(name, connection=connection, serializer=JSONSerializer)
        for name in (QUEUE_NAME, NOTES_QUEUE_NAME)
    ]


def list_failed(connection: Redis) -> list[FailedJob]:
    """Every failed reconcile or note job RQ still keeps (a note's id starts with `note-`), the
    latest failure first."""
    ids = [
        job_id for registry in failed_registries(connection) for job_id in registry.get_job_ids()
    ]
    found = Job.fetch_many(ids, connection=connection, serializer=JSONSerializer)
    store = store_of(connection)
    failed = [_describe(job, store) for job in found if job is not None and _is_ours(job)]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(failed, key=lambda job: job.failed_at or oldest, reverse=True)


def requeue(connection: Redis, job_id: str) -> ChangeRef | None:
    """Put one failed reconcile job back on the queue with its retries restored; returns its
    change, or None when no failed reconcile job has that id."""
    # `in` also refuses ids RQ would not accept, without fetching them.
    registry = next((r for r in failed_registries(connection) if job_id in r), None)
    if registry is None:
        return None
    try:
        job = Job.fetch(job_id, connection=connection, serializer=JSONSerializer)
    except NoSuchJobError:  # the job expired while its registry entry did not yet
        return None
    if not _is_ours(job):
        return None
    # RQ's requeue keeps retries_left, which is 0 here: a failed reconcile used its retries up or
    # was refused for good (tasks.py sets 0). Without this a requeued job would get no retry at all.
    if job.retry_intervals:
        job.retries_left = len(RETRY_INTERVALS)  # the budget every reconcile job gets
    try:
        registry.requeue(job)  # saves the job (with retries_left) and enqueues it
    except InvalidJobOperation:  # someone else requeued or deleted it meanwhile
        return None
    return _change_of(job)


def requeue_all(connection: Redis) -> dict[str, ChangeRef]:
    """Requeue every failed reconcile and note job; returns them: job id -> change."""
    requeued = {}
    every = [
        job_id for registry in failed_registries(connection) for job_id in registry.get_job_ids()
    ]
    for job_id in every:
        key = requeue(connection, job_id)
        if key is not None:
            requeued[job_id] = key
    return requeued


def error_of(exc_string: str | None) -> str:
    """The last line of a failed job's exception text; for a remote service's error, its own
    message (which names the service) without the exception's class."""
    lines = [line.strip() for line in (exc_string or "").splitlines() if line.strip()]
    if not lines:
        return "(no error recorded)"
    last = lines[-1]
    for prefix in _REMOTE_PREFIXES:
        if last.startswith(prefix):
            return last[len(prefix) :]
    return last


def _failed_ids(connection: Redis) -> list[str]:
    return [
        job_id for registry in failed_registries(connection) for job_id in registry.get_job_ids()
    ]


def _is_ours(job: Job) -> bool:
    """A reconcile or note job; one this serializer cannot read is not, rather than the
    listing's end."""
    try:
        shape = (job.func_name, len(job.args))
    except DeserializationError:
        return False
    return shape in ((RECONCILE, 2), (WRITE_NOTE, 5))


def _change_of(job: Job) -> ChangeRef:
    source, key = job.args[:2]
    return ChangeRef(str(source), str(key))


def _describe(job: Job, store: Store) -> FailedJob:
    change = _change_of(job)
    result = job.latest_result()
    return FailedJob(
        id=job.id,
        change=change,
        error=error_of(result.exc_string if result else None),
        tries=_tries(job, store.history(change)),
        failed_at=job.ended_at,
    )


def _tries(job: Job, history: list[dict[str, Any]]) -> int:
    """Runs of the job that failed, counted in the key's history between the job's creation and
    its failure (RQ keeps no count, and tasks.py zeroes retries_left on a permanent error).
    Entries written before they named their job count for any job of the key."""
    start = math.floor(job.created_at.timestamp())  # history stamps are whole seconds
    end = job.ended_at.timestamp() if job.ended_at else math.inf
    runs = sum(
        1
        for entry in history
        if entry.get("event") in FAILED_RUN_EVENTS
        and start <= entry.get("at", 0) <= end
        and entry.get("job", job.id) == job.id
    )
    return max(runs, 1)  # a run that failed outside BigPanda (a bug, Redis) records no event

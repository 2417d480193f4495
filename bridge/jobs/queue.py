"""RQ, owned here: the queues, the enqueue of reconciles and notes, the retry policy, the job
counts, and the worker with the workarounds RQ needs (each says which RQ behaviour it answers). No
other module names RQ's keys, job fields or statuses. The ingest script decides and marks a change
pending under a new job id; the job is then enqueued here, by RQ (`Queue.enqueue_call(job_id=...)`),
in a second round trip."""

from __future__ import annotations

import logging
import math
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError, WatchError
from rq import Queue, Retry, Worker
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from ..model import ChangeRef
from ..state.ledger import IngestResult
from ..state.store import Store

log = logging.getLogger(__name__)

QUEUE_NAME = "bridge"
NOTES_QUEUE_NAME = "bridge-notes"  # write-back notes: never ahead of, never holding up, a reconcile
RECONCILE = "bridge.jobs.reconcile_change"  # by name: jobs.py imports this module
WRITE_NOTE = "bridge.jobs.write_note"
# Transient BigPanda failures: 8 retries, the first within seconds (a blip heals in well under a
# minute), growing to half an hour; about 53 minutes in all. Each job gets its own jitter.
RETRY_INTERVALS = (2, 5, 15, 45, 120, 300, 900, 1800)
RETRY_JITTER = 0.2
# Nothing reads a finished job's result: it is kept a minute (for RQ's own tools), not an hour
# (about 6.6 KB a reconcile: 120 MB at BigPanda's 5 calls a second).
RESULT_TTL = 60
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


def store_of(connection: Redis) -> Store:
    """The store on `connection`, told what RQ puts before a job's id to name its hash (the
    ingest script asks whether the pending job has been written)."""
    return Store(connection, Job.key_for(""))


def request_reconcile(store: Store, queue: Queue, change: ChangeRef) -> IngestResult:
    """A reconcile of the change without an event (the drift sweep, the overrun pass): it joins
    the job waiting for the change, else the store marks a new one pending and RQ queues it."""
    result = store.request_reconcile(change, new_job_id(change))
    queue_marked(queue, change, result)
    return result


def queue_marked(queue: Queue, change: ChangeRef, result: IngestResult) -> None:
    """RQ queues the job the store marked pending (verdict "enqueue"); a joined one waits."""
    if result.verdict == "enqueue":
        enqueue_reconcile(queue, change, result.job_id)  # type: ignore[arg-type]


def enqueue_reconcile(queue: Queue, change: ChangeRef, job_id: str) -> None:
    """Queue the reconcile the ingest script marked pending under `job_id`, in one round trip:
    RQ's own pipeline support (without it RQ makes two, the queue set and then the job)."""
    with queue.connection.pipeline() as pipe:
        queue.enqueue_call(
            RECONCILE,
            args=(change.source, change.key),
            job_id=job_id,
            retry=Retry(max=len(RETRY_INTERVALS), interval=retry_intervals()),
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
            description=f"reconcile {change}",
            pipeline=pipe,
        )
        pipe.execute()


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
    ids = queue.get_job_ids(0, 1)  # offset, length (RQ 3: a length of 0 is an empty list)
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


# --- the worker: RQ's, with the workarounds it needs -----------------------------------------

# RQ notices a job whose worker died (SIGKILL, lost host) when the job's heartbeat expires and
# some worker's maintenance pass runs. RQ's defaults make that minutes (heartbeat TTL = interval
# + 60 s, maintenance every 10 min, an idle worker blocking 405 s on the queue); these make it
# well under a minute. The job is then requeued at once (not through the scheduler, whose lock
# the dead worker may still hold), and resumes from the key's state.
HEARTBEAT_SECONDS = 5
HEARTBEAT_GRACE_SECONDS = 10
RQ_HEARTBEAT_GRACE_SECONDS = 60  # what RQ adds to a job's heartbeat TTL; a test pins it
MAINTENANCE_SECONDS = 10
# An idle worker blocks on the queue for worker_ttl - 15 s before it can run maintenance.
WORKER_TTL_SECONDS = 20
# One worker's scheduler holds RQ's scheduler lock and refreshes it every second; a worker killed
# with its scheduler leaves the lock for a minute, holding back every retry that falls due
# meanwhile. A holder that refreshed nothing between two maintenance passes of a live worker is
# dead: that worker frees the lock, and RQ's own maintenance then starts its scheduler. Passes
# closer than this say too little (the holder refreshes every second).
SCHEDULER_SILENCE_SECONDS = 3


class BridgeWorker(Worker):
    """An RQ worker whose running jobs count as abandoned ~15 s after their last heartbeat, and
    whose maintenance passes also run the bridge's own `hooks` (each given the connection)."""

    stop_requested_by_signal = False

    def __init__(self, *args, hooks: tuple[Callable[[Redis], None], ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scheduler_lock = SchedulerLockWatch()
        self.hooks = hooks

    def request_stop(self, signum, frame):
        self.stop_requested_by_signal = True
        super().request_stop(signum, frame)

    def run_maintenance_tasks(self):
        self.scheduler_lock.release_if_dead(self.connection)
        for hook in self.hooks:
            hook(self.connection)
        super().run_maintenance_tasks()

    def get_heartbeat_ttl(self, job: Job, *args, **kwargs) -> int:
        """RQ's own TTL (its signature differs between RQ 2 and 3), with our grace for RQ's."""
        ttl = super().get_heartbeat_ttl(job, *args, **kwargs)
        return ttl - RQ_HEARTBEAT_GRACE_SECONDS + HEARTBEAT_GRACE_SECONDS


class SchedulerLockWatch:
    """Frees RQ's scheduler lock of a dead holder. Judged by the lock's own TTL, on Redis's clock
    (the hosts' clocks may disagree): its holder sets it back to the full TTL every second, so a
    TTL that fell by all the time between two of our looks was not refreshed in that time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock  # tests pass their own, so that they need not wait through the silence
        self._seen: tuple[bytes, int, float] | None = None  # holder, TTL (ms), when (clock)

    def release_if_dead(self, connection: Redis) -> bool:
        """True if it freed the lock. Best effort: a Redis error is logged and waits for the next
        pass. A holder that was only stalled finds its lock taken at its next refresh and stops
        scheduling; a retry scheduled twice meanwhile runs twice, which reconciles allow."""
        try:
            return self._release_if_dead(connection)
        except RedisError as exc:
            log.warning("could not check RQ's scheduler lock: %s", exc)
            return False

    def _release_if_dead(self, connection: Redis) -> bool:
        seen, now = self._seen, self._clock()
        if seen is not None and now - seen[2] < SCHEDULER_SILENCE_SECONDS:
            return False  # too soon to tell: the next look compares with that earlier one
        key = RQScheduler.get_locking_key(QUEUE_NAME)
        with connection.pipeline() as pipe:
            pipe.watch(key)  # a refresh by the holder in between makes the delete abort
            holder, ttl_ms = pipe.get(key), pipe.pttl(key)
            self._seen = (holder, ttl_ms, now)
            if holder is None or seen is None or seen[0] != holder:
                return False
            silence = now - seen[2]
            if ttl_ms > seen[1] - (silence - 1) * 1000:
                return False  # refreshed since
            pipe.multi()
            pipe.delete(key)
            try:
                pipe.execute()
            except WatchError:
                return False
        log.warning(
            "freed RQ's scheduler lock of %s: not refreshed for %.0f s", holder.decode(), silence
        )
        self._seen = None
        return True


def requeue_abandoned_now(
    job: Job, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> bool:
    """RQ exception handler: a job abandoned by a dead worker retries now, not after its
    retry interval (it did not fail; its worker did)."""
    if issubclass(exc_type, AbandonedJobError) and job.retries_left and job.retry_intervals:
        job.retry_intervals[max(len(job.retry_intervals) - job.retries_left, 0)] = 0
    return True  # let RQ's own handling go on


WORKER_ROLES = ("reconciles", "notes", "all")


def make_worker(
    connection: Redis, hooks: tuple[Callable[[Redis], None], ...] = (), role: str = "all"
) -> BridgeWorker:
    """A worker on the bridge's queues, with the JSON serializer the jobs are enqueued with.
    `role`: the reconcile queue, the notes queue, or both (reconciles first)."""
    queues = {
        "reconciles": [queue_of(connection)],
        "notes": [notes_queue_of(connection)],
        "all": [queue_of(connection), notes_queue_of(connection)],
    }[role]
    return BridgeWorker(
        queues,
        connection=connection,
        serializer=JSONSerializer,
        job_monitoring_interval=HEARTBEAT_SECONDS,
        maintenance_interval=MAINTENANCE_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
        exception_handlers=[requeue_abandoned_now],
        hooks=hooks,
    )

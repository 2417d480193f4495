"""The RQ worker process: scheduler on (retry intervals need it), quick to notice dead workers."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError, WatchError
from rq import Queue, Worker
from rq.exceptions import AbandonedJobError, SchedulerNotFound
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from .jobs import QUEUE_NAME

# RQ notices a job whose worker died (SIGKILL, lost host) when the job's heartbeat expires and
# some worker's maintenance pass runs. RQ's defaults make that minutes (heartbeat TTL = interval
# + 60 s, maintenance every 10 min, an idle worker blocking 405 s on the queue); these make it
# well under a minute. The job is then requeued at once (not through the scheduler, whose lock
# the dead worker may have held for another minute), and resumes from the key's state.
HEARTBEAT_SECONDS = 5
HEARTBEAT_GRACE_SECONDS = 10
MAINTENANCE_SECONDS = 10
# An idle worker blocks on the queue for worker_ttl - 15 s before it can run maintenance.
WORKER_TTL_SECONDS = 20
# One worker's scheduler holds RQ's scheduler lock and beats every second; a worker killed with
# its scheduler leaves the lock for 61 s, holding back every retry that falls due meanwhile.
# A holder silent this long is dead: the next maintenance pass of a live worker frees its lock,
# and RQ's own maintenance then starts that worker's scheduler.
SCHEDULER_SILENT_SECONDS = 15
RESTART_DELAY_SECONDS = 2

log = logging.getLogger(__name__)


class BridgeWorker(Worker):
    """An RQ worker whose running jobs count as abandoned ~15 s after their last heartbeat."""

    stop_requested_by_signal = False

    def request_stop(self, signum, frame):
        self.stop_requested_by_signal = True
        super().request_stop(signum, frame)

    def run_maintenance_tasks(self):
        release_dead_scheduler_lock(self.connection)
        super().run_maintenance_tasks()

    def get_heartbeat_ttl(self, job: Job) -> int:
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            return int(min(remaining, self.job_monitoring_interval)) + HEARTBEAT_GRACE_SECONDS
        return self.job_monitoring_interval + HEARTBEAT_GRACE_SECONDS


def release_dead_scheduler_lock(connection: Redis) -> bool:
    """Free the queue's scheduler lock if its holder has not beaten for SCHEDULER_SILENT_SECONDS;
    True if it did. A holder that only paused finds its lock taken at its next beat and stops
    scheduling; a job scheduled twice meanwhile is harmless (reconciles are idempotent)."""
    key = RQScheduler.get_locking_key(QUEUE_NAME)
    with connection.pipeline() as pipe:
        pipe.watch(key)  # a beat of the holder in between refreshes the lock: the delete aborts
        holder = pipe.get(key)
        if holder is None or not _silent(connection, holder.decode()):
            return False
        pipe.multi()
        pipe.delete(key)
        try:
            pipe.execute()
        except WatchError:
            return False
    log.warning(
        "freed the scheduler lock of %s: no heartbeat for %d s",
        holder.decode(),
        SCHEDULER_SILENT_SECONDS,
    )
    return True


def _silent(connection: Redis, scheduler_name: str) -> bool:
    try:
        beat = RQScheduler.fetch(scheduler_name, connection).last_heartbeat
    except SchedulerNotFound:  # not registered yet (it just took the lock), or long gone
        return False
    return (
        beat is not None and (datetime.now(UTC) - beat).total_seconds() > SCHEDULER_SILENT_SECONDS
    )


def requeue_abandoned_now(
    job: Job, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> bool:
    """RQ exception handler: a job abandoned by a dead worker retries now, not after its
    retry interval (it did not fail; its worker did)."""
    if issubclass(exc_type, AbandonedJobError) and job.retries_left and job.retry_intervals:
        job.retry_intervals[max(len(job.retry_intervals) - job.retries_left, 0)] = 0
    return True  # let RQ's own handling go on


def run_worker(connection: Redis, burst: bool = False) -> None:
    """Work until told to stop. RQ's loop quits (status 0) on a Redis error it meets while a job
    runs; a worker must outlive a Redis restart, so it starts again until a signal stopped it."""
    while True:
        worker = make_worker(connection)
        try:
            worker.work(with_scheduler=True, burst=burst)
        except RedisError as exc:  # while registering or cleaning up, Redis gone
            log.warning("the worker stopped: Redis unavailable (%s)", exc)
        if burst or worker.stop_requested_by_signal:
            return
        log.warning("starting the worker again in %d s", RESTART_DELAY_SECONDS)
        time.sleep(RESTART_DELAY_SECONDS)


def make_worker(connection: Redis) -> BridgeWorker:
    """A worker on the bridge's queue, with the JSON serializer the jobs are enqueued with."""
    queue = Queue(QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    return BridgeWorker(
        [queue],
        connection=connection,
        serializer=JSONSerializer,
        job_monitoring_interval=HEARTBEAT_SECONDS,
        maintenance_interval=MAINTENANCE_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
        exception_handlers=[requeue_abandoned_now],
    )

"""The RQ worker process: scheduler on (retry intervals need it), quick to notice dead workers."""

from __future__ import annotations

import logging
import time
from types import TracebackType

from redis import Redis
from redis.exceptions import RedisError, WatchError
from rq import Queue, Worker
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from .following import run_pass_once
from .queue import QUEUE_NAME, notes_queue_of

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
RESTART_DELAY_SECONDS = 2

log = logging.getLogger(__name__)


class BridgeWorker(Worker):
    """An RQ worker whose running jobs count as abandoned ~15 s after their last heartbeat."""

    stop_requested_by_signal = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scheduler_lock = SchedulerLockWatch()

    def request_stop(self, signum, frame):
        self.stop_requested_by_signal = True
        super().request_stop(signum, frame)

    def run_maintenance_tasks(self):
        self.scheduler_lock.release_if_dead(self.connection)
        self._follow_overruns()
        super().run_maintenance_tasks()

    def _follow_overruns(self) -> None:
        """The overrun pass (following.py), by one worker at a time; best effort."""
        try:
            extended = run_pass_once(self.connection, self.queues[0], time.time())
        except RedisError as exc:
            log.warning("could not run the overrun pass: %s", exc)
            return
        if extended:
            log.info("extended %d overrunning plans", extended)

    def get_heartbeat_ttl(self, job: Job, *args, **kwargs) -> int:
        """RQ's own TTL (its signature differs between RQ 2 and 3), with our grace for RQ's."""
        ttl = super().get_heartbeat_ttl(job, *args, **kwargs)
        return ttl - RQ_HEARTBEAT_GRACE_SECONDS + HEARTBEAT_GRACE_SECONDS


class SchedulerLockWatch:
    """Frees RQ's scheduler lock of a dead holder. Judged by the lock's own TTL, on Redis's clock
    (the hosts' clocks may disagree): its holder sets it back to the full TTL every second, so a
    TTL that fell by all the time between two of our looks was not refreshed in that time."""

    def __init__(self) -> None:
        self._seen: tuple[bytes, int, float] | None = None  # holder, TTL (ms), when (monotonic)

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
        seen, now = self._seen, time.monotonic()
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
        [queue, notes_queue_of(connection)],  # reconciles first: notes wait, never the reverse
        connection=connection,
        serializer=JSONSerializer,
        job_monitoring_interval=HEARTBEAT_SECONDS,
        maintenance_interval=MAINTENANCE_SECONDS,
        worker_ttl=WORKER_TTL_SECONDS,
        exception_handlers=[requeue_abandoned_now],
    )

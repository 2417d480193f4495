"""The RQ worker process: scheduler on (retry intervals need it), quick to notice dead workers."""

from __future__ import annotations

from types import TracebackType

from redis import Redis
from rq import Queue, Worker
from rq.exceptions import AbandonedJobError
from rq.job import Job
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


class BridgeWorker(Worker):
    """An RQ worker whose running jobs count as abandoned ~15 s after their last heartbeat."""

    def get_heartbeat_ttl(self, job: Job) -> int:
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            return int(min(remaining, self.job_monitoring_interval)) + HEARTBEAT_GRACE_SECONDS
        return self.job_monitoring_interval + HEARTBEAT_GRACE_SECONDS


def requeue_abandoned_now(
    job: Job, exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> bool:
    """RQ exception handler: a job abandoned by a dead worker retries now, not after its
    retry interval (it did not fail; its worker did)."""
    if issubclass(exc_type, AbandonedJobError) and job.retries_left and job.retry_intervals:
        job.retry_intervals[max(len(job.retry_intervals) - job.retries_left, 0)] = 0
    return True  # let RQ's own handling go on


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

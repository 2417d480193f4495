"""The worker process: RQ's worker (queue.py) run until a signal stops it, restarted after a
Redis loss, with the overrun pass in its maintenance."""

from __future__ import annotations

import logging
import time

from redis import Redis
from redis.exceptions import RedisError

from .overrun_pass import run_pass_once
from .queue import make_worker, queue_of

RESTART_DELAY_SECONDS = 2

log = logging.getLogger(__name__)


def run_worker(connection: Redis, burst: bool = False) -> None:
    """Work until told to stop. RQ's loop quits (status 0) on a Redis error it meets while a job
    runs; a worker must outlive a Redis restart, so it starts again until a signal stopped it."""
    while True:
        worker = make_worker(connection, hooks=(follow_overruns,))
        try:
            worker.work(with_scheduler=True, burst=burst)
        except RedisError as exc:  # while registering or cleaning up, Redis gone
            log.warning("the worker stopped: Redis unavailable (%s)", exc)
        if burst or worker.stop_requested_by_signal:
            return
        log.warning("starting the worker again in %d s", RESTART_DELAY_SECONDS)
        time.sleep(RESTART_DELAY_SECONDS)


def follow_overruns(connection: Redis) -> None:
    """The overrun pass (jobs/overrun_pass.py), by one worker at a time; best effort."""
    try:
        extended = run_pass_once(connection, queue_of(connection), time.time())
    except RedisError as exc:
        log.warning("could not run the overrun pass: %s", exc)
        return
    if extended:
        log.info("extended %d overrunning plans", extended)

"""The worker process: RQ's worker (queue.py) run until a signal stops it, restarted after a
Redis loss, with the overrun pass in its maintenance. Notes have a worker of their own, a child
process by default, so that a slow ServiceNow or Jira never holds up a plan."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from redis import Redis
from redis.exceptions import RedisError

from .overrun_pass import run_pass_once
from .queue import make_worker, queue_of

RESTART_DELAY_SECONDS = 2
NOTES_STOP_SECONDS = 15  # a note in flight gets this long to finish when the worker stops

log = logging.getLogger(__name__)


def run_worker(connection: Redis, burst: bool = False, role: str = "all") -> None:
    """Work until told to stop. `role` "all" works the reconciles here and starts the notes
    worker as a child process (a burst works both queues here, in order); "reconciles" or
    "notes" works that queue alone (for a deployment that runs them as two processes)."""
    if role != "all" or burst:
        _work(connection, burst, role)
        return
    notes = NotesChild()
    try:
        _work(connection, burst, "reconciles", hooks=(notes.keep_running,))
    finally:
        notes.stop()


def _work(connection: Redis, burst: bool, role: str, hooks: tuple = ()) -> None:
    """RQ's loop quits (status 0) on a Redis error it meets while a job runs; a worker must
    outlive a Redis restart, so it starts again until a signal stopped it."""
    if role != "notes":
        hooks = (follow_overruns, *hooks)
    while True:
        worker = make_worker(connection, hooks=hooks, role=role)
        try:
            worker.work(with_scheduler=True, burst=burst)
        except RedisError as exc:  # while registering or cleaning up, Redis gone
            log.warning("the worker stopped: Redis unavailable (%s)", exc)
        if burst or worker.stop_requested_by_signal:
            return
        log.warning("starting the worker again in %d s", RESTART_DELAY_SECONDS)
        time.sleep(RESTART_DELAY_SECONDS)


class NotesChild:
    """The notes worker as a child process of the reconcile worker: started with it, started
    again at a maintenance pass if it died, stopped (SIGTERM, then SIGKILL) with it."""

    def __init__(self) -> None:
        self.process = self._start()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "bridge", "worker", "--role", "notes"])

    def keep_running(self, connection: Redis) -> None:
        if self.process.poll() is not None:
            log.warning("the notes worker exited (%s): starting it again", self.process.returncode)
            self.process = self._start()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(NOTES_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def follow_overruns(connection: Redis) -> None:
    """The overrun pass (jobs/overrun_pass.py), by one worker at a time; best effort."""
    try:
        extended = run_pass_once(connection, queue_of(connection), time.time())
    except RedisError as exc:
        log.warning("could not run the overrun pass: %s", exc)
        return
    if extended:
        log.info("extended %d overrunning plans", extended)

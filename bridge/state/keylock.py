"""The per-change lock: reconciles of one change are serialized across every worker, and a job
that lost the lock stops writing (fencing)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock

from ..errors import TransientError
from ..model import ChangeRef
from .lua import RELEASE_ATTEMPT
from .store import PREFIX

# The lock outlives one slow BigPanda call (30 s read timeout); it is renewed before every write.
LOCK = "the change's lock"  # what an error about it names: no remote service
LOCK_SECONDS = 45


@contextmanager
def key_lock(connection: Redis, job_id: str, change: ChangeRef) -> Iterator[Lock]:
    """Serialize reconciles of one change across all workers. The lock's token names this attempt
    of this job: an earlier attempt of the same job that RQ declared dead (its worker was
    killed) left its lock behind, and the retry takes it over at once instead of waiting for
    it to expire; should that attempt still be alive, its next fence check fails."""
    name = f"{PREFIX}lock:{change.id}"
    token = f"{job_id}:{uuid.uuid4().hex}"
    # An earlier attempt's lock is deleted (compare-and-delete on its job id), then taken the
    # ordinary way: redis-py's Lock is used only through its API.
    connection.register_script(RELEASE_ATTEMPT)(keys=[name], args=[f"{job_id}:"])
    lock = connection.lock(name, timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
    if not lock.acquire(token=token):
        raise TransientError(
            None, f"{change} is being reconciled by another worker; retrying", service=LOCK
        )
    try:
        yield lock
    finally:
        with contextlib.suppress(LockError):
            lock.release()


def fence_of(lock: Lock) -> Callable[[], None]:
    """Renew the key's lock before a write; a job that lost it must not write (fencing)."""

    def fence() -> None:
        try:
            lock.reacquire()
        except LockError:
            raise TransientError(None, "lost to another worker; retrying", service=LOCK) from None

    return fence

"""The functions RQ runs, and how they are enqueued: one reconcile per change."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import LockError
from redis.lock import Lock
from rq import get_current_job
from rq.job import Job

from . import histograms
from .bigpanda import BigPandaClient
from .config import Settings
from .converge import KeyReconciler
from .errors import ConfigError, PermanentError, TransientError
from .logs import event as log_event
from .mapping.loader import SourceMapping, load_mappings
from .model import ChangeRef
from .ratelimit import RateLimiter
from .scripts import RELEASE_ATTEMPT
from .store import PREFIX, STATS, Store

log = logging.getLogger(__name__)

# The per-key lock outlives one slow BigPanda call (30 s read timeout); it is renewed before
# every write, and a job that lost it stops writing (fencing).
LOCK_SECONDS = 45
# BigPanda allows `rate` requests per second; the pace leaves 5% for network jitter.
RATE_PERIOD_SECONDS = 1.05


@dataclass
class WorkerContext:
    """What a worker process needs: a BigPanda client per organization (None: the default),
    this instance's name for the ownership mark, dry run, and the sources that adopt."""

    clients: Mapping[str | None, BigPandaClient]
    instance: str = "default"
    dry_run: bool = False
    adopting: frozenset[str] = frozenset()  # sources whose mapping allows adopting unmarked plans


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
    _context = WorkerContext(clients, settings.instance, settings.dry_run, adopting)
    if settings.dry_run:
        log.warning("BRIDGE_DRY_RUN is on: BigPanda is read, never written")
    if settings.sandbox_forced:
        log.warning("BRIDGE_SANDBOX_FORCE=1: plans go to the built-in sandbox, not to BigPanda")


def build_clients(
    settings: Settings, mappings: Mapping[str, SourceMapping], redis: Redis
) -> dict[str | None, BigPandaClient]:
    """A BigPanda client for the default organization (None) and each named target, paced by
    the limiter every process shares."""
    default = (settings.bigpanda_api_url, settings.bigpanda_token)
    clients = {None: _client(settings, redis, *default)}
    for mapping in mappings.values():
        for name, target in mapping.targets.items():
            token = settings.secrets.get(target.api_key_env)
            if not token:
                raise ConfigError(
                    f"{mapping.path}: targets.{name}: {target.api_key_env} is not set"
                )
            clients[name] = _client(settings, redis, target.api_url, token)
    return clients


def _client(settings: Settings, redis: Redis, url: str, token: str) -> BigPandaClient:
    # The limit is BigPanda's per organization: one limiter per URL and key, named by a hash
    # so that no key appears in Redis.
    organization = hashlib.sha256(f"{url}\n{token}".encode()).hexdigest()[:16]
    limiter = RateLimiter(redis, organization, rate=settings.rate_limit, period=RATE_PERIOD_SECONDS)
    return BigPandaClient(
        url,
        token,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        limiter=limiter,
        observer=lambda method, status, seconds: histograms.observe(
            redis, STATS, "bigpanda_call_seconds", [method, status], seconds
        ),
    )


def reconcile_change(source: str, maintenance_key: str) -> str:
    """Make BigPanda hold the newest desired plan(s) of one change.

    A TransientError escapes and RQ retries the job; a PermanentError is recorded and ends the
    job in RQ's failed registry with BigPanda's message, without retries."""
    job = get_current_job()
    if _context is None:
        configure(Settings.from_env(), None, job.connection)
    assert _context is not None
    change = ChangeRef(source, maintenance_key)
    store = Store(job.connection)
    accepted = store.claim(change, job.id)
    with _key_lock(job, change) as lock:
        reconciler = KeyReconciler(
            store,
            _context.clients,
            change,
            _fence(lock),
            instance=_context.instance,
            dry_run=_context.dry_run,
            adopt_unmarked=source in _context.adopting,
        )
        try:
            outcome = reconciler.converge()
        except TransientError as exc:
            event = "retrying" if job.retries_left else "failed"  # RQ retries no more after this
            store.record(change, event, job=job.id, status=exc.http_status, error=exc.message)
            _honour_retry_after(job, exc.retry_after)
            if accepted is not None and job.retries_left:
                store.unclaim_time(change, accepted)
            raise
        except PermanentError as exc:
            store.record(change, "failed", job=job.id, status=exc.http_status, error=exc.message)
            job.retries_left = 0  # retrying cannot help: BigPanda refused the request itself
            raise
    if accepted is not None:  # from the webhook's acceptance to BigPanda agreeing
        histograms.observe(
            job.connection, STATS, "agreed_seconds", [source], max(0.0, time.time() - accepted)
        )
    log_event(log, "reconcile done", job_id=job.id, source=source, key=maintenance_key,
              outcome=outcome)  # fmt: skip
    return outcome


@contextmanager
def _key_lock(job: Job, change: ChangeRef) -> Iterator[Lock]:
    """Serialize reconciles of one change across all workers. The lock's token names this attempt
    of this job: an earlier attempt of the same job that RQ declared dead (its worker was
    killed) left its lock behind, and the retry takes it over at once instead of waiting for
    it to expire; should that attempt still be alive, its next fence check fails."""
    name = f"{PREFIX}lock:{change.id}"
    token = f"{job.id}:{uuid.uuid4().hex}"
    # An earlier attempt's lock is deleted (compare-and-delete on its job id), then taken the
    # ordinary way: redis-py's Lock is used only through its API.
    job.connection.register_script(RELEASE_ATTEMPT)(keys=[name], args=[f"{job.id}:"])
    lock = job.connection.lock(name, timeout=LOCK_SECONDS, blocking_timeout=LOCK_SECONDS)
    if not lock.acquire(token=token):
        raise TransientError(0, f"{change} is being reconciled by another worker; retrying")
    try:
        yield lock
    finally:
        with contextlib.suppress(LockError):
            lock.release()


def _fence(lock: Lock) -> Callable[[], None]:
    """Renew the key's lock before a write; a job that lost it must not write (fencing)."""

    def fence() -> None:
        try:
            lock.reacquire()
        except LockError:
            raise TransientError(0, "lost the key's lock to another worker; retrying") from None

    return fence


def _honour_retry_after(job, retry_after: float | None) -> None:
    """BigPanda's Retry-After, when it sends one, lengthens the next retry interval."""
    if retry_after is None or not job.retries_left or not job.retry_intervals:
        return
    index = max(len(job.retry_intervals) - job.retries_left, 0)
    job.retry_intervals[index] = max(job.retry_intervals[index], math.ceil(retry_after))

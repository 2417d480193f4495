"""Redis state per maintenance_key: newest version and desired plan, plan id, pending job, history.

The ingest path is one Lua script (one round trip): it orders the event against the newest seen,
stores it, and either joins the reconcile already pending for the key or queues the new one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .model import Decision, DesiredPlan, NoPlan, Plan, SplitPlan, change_key_of
from .scripts import CLAIM, INGEST, REQUEST

PREFIX = "bridge:"
LEDGER_MARKER = PREFIX + "ledger-marker"  # absent: the key -> plan id memory may have been lost
KNOWN_KEYS = PREFIX + "keys"
STATS = PREFIX + "stats"  # counters behind /metrics, shared by every process
HISTORY_LENGTH = 50
RQ_JOB_PREFIX = "rq:job:"
RQ_QUEUES = "rq:queues"  # the set of queue keys RQ's enqueue adds to

Verdict = Literal["stale", "duplicate", "ignored", "joined", "enqueue"]


@dataclass(frozen=True)
class IngestResult:
    verdict: Verdict
    job_id: str | None


@dataclass(frozen=True)
class JobWrite:
    """A reconcile job to queue if the key has none pending: RQ's hash fields, and its keys."""

    id: str
    hash_key: str  # rq:job:<id>
    queue_key: str  # rq:queue:<name>
    fields: list[str | bytes]  # name, value, name, value...


@dataclass(frozen=True)
class KeyState:
    """What the bridge remembers of one key when a reconcile starts."""

    desired: Decision | None
    plans: Mapping[str, RememberedPlan]  # by the plan's own maintenance_key (K, or K#n parts)
    create_uncertain: bool
    version: tuple[float, ...] | None = None  # of the newest event seen
    pending_job: str | None = None


@dataclass(frozen=True)
class RememberedPlan:
    """The BigPanda id of a plan and the organization (target) that holds it."""

    id: str
    target: str | None = None


def decision_to_json(decision: Decision) -> str:
    if isinstance(decision, DesiredPlan):
        return decision.to_json()
    if isinstance(decision, SplitPlan):
        parts = [json.loads(part.to_json()) for part in decision.parts]
        return json.dumps({"maintenance_key": decision.maintenance_key, "parts": parts})
    return json.dumps({"no_plan": decision.reason, "maintenance_key": decision.maintenance_key})


def decision_from_json(text: str | bytes) -> Decision:
    data = json.loads(text)
    if "no_plan" in data:
        return NoPlan(data["maintenance_key"], data["no_plan"])
    if "parts" in data:
        parts = tuple(DesiredPlan.from_json(json.dumps(part)) for part in data["parts"])
        return SplitPlan(data["maintenance_key"], parts)
    return DesiredPlan.from_json(text if isinstance(text, str) else text.decode())


class Store:
    """The bridge's memory in Redis; every method is one or two round trips."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self._ingest = redis.register_script(INGEST)
        self._claim = redis.register_script(CLAIM)
        self._request = redis.register_script(REQUEST)

    def ingest(
        self, decision: Decision, version: Iterable[float], job: JobWrite, event: dict[str, Any]
    ) -> IngestResult:
        """Order, store and coalesce one event; queues `job` unless one is pending already."""
        key = decision.maintenance_key
        entry = {"at": int(time.time()), "event": "received", "version": list(version), **event}
        verdict, job_id = self._ingest(
            keys=[_change(key), _history(key), KNOWN_KEYS, LEDGER_MARKER, STATS, *_job_keys(job)],
            args=[
                json.dumps(list(version)),
                decision_to_json(decision),
                "0" if isinstance(decision, NoPlan) else "1",
                json.dumps(entry),
                RQ_JOB_PREFIX,
                HISTORY_LENGTH,
                f"webhooks:{event.get('source', 'unknown')}:",
                job.id,
                *job.fields,
            ],
        )
        return IngestResult(verdict.decode(), job_id.decode() or None)  # type: ignore[arg-type]

    def predict(self, decision: Decision, version: Iterable[float]) -> str:
        """How ingest would answer now (read only): accepted, stale, duplicate or ignored."""
        stored, desired, plans = self.redis.hmget(
            _change(decision.maintenance_key), ["version", "desired", "plans"]
        )
        if stored is not None:
            old, new = json.loads(stored), list(version)
            width = max(len(old), len(new))
            old, new = old + [0] * (width - len(old)), new + [0] * (width - len(new))
            if new < old:
                return "ignored: stale"
            if new == old and desired and desired.decode() == decision_to_json(decision):
                return "ignored: duplicate"
        if isinstance(decision, NoPlan) and not plans and self.ledger_intact():
            return f"ignored: {decision.reason}"
        return "accepted"

    def claim(self, key: str, job_id: str) -> None:
        """Mark the pending job as started so newer events enqueue a fresh reconcile."""
        self._claim(keys=[_change(key)], args=[job_id])

    def state(self, key: str) -> KeyState:
        desired, plans, uncertain, version, pending = self.redis.hmget(
            _change(key), ["desired", "plans", "create_uncertain", "version", "pending"]
        )
        return KeyState(
            desired=decision_from_json(desired) if desired else None,
            plans=_plans_from_json(plans),
            create_uncertain=bool(uncertain),
            version=tuple(json.loads(version)) if version else None,
            pending_job=pending.decode() if pending else None,
        )

    def is_known(self, key: str) -> bool:
        return bool(self.redis.sismember(KNOWN_KEYS, key))

    def remember_plan(
        self, key: str, plan_key: str, plan_id: str | None, target: str | None = None
    ) -> None:
        """Store (or forget, with None) the id of one of the change's plans. The caller holds the
        key's lock, so this read-modify-write does not race."""
        plans = _plans_from_json(self.redis.hget(_change(key), "plans"))
        if plan_id:
            plans[plan_key] = RememberedPlan(plan_id, target)
        else:
            plans.pop(plan_key, None)
        if plans:
            encoded = {k: [p.id, p.target] for k, p in plans.items()}
            self.redis.hset(_change(key), "plans", json.dumps(encoded, sort_keys=True))
        else:
            self.redis.hdel(_change(key), "plans")

    def set_create_uncertain(self, key: str, uncertain: bool) -> None:
        """Set before a create, cleared once its answer is recorded: a crash leaves it set."""
        if uncertain:
            self.redis.hset(_change(key), "create_uncertain", "1")
        else:
            self.redis.hdel(_change(key), "create_uncertain")

    def request_reconcile(self, key: str, job: JobWrite) -> IngestResult:
        """Ask for a reconcile of `key` without an event: queue `job` ("enqueue"), or join the
        one pending ("joined")."""
        verdict, job_id = self._request(
            keys=[_change(key), *_job_keys(job)], args=[RQ_JOB_PREFIX, job.id, *job.fields]
        )
        return IngestResult(verdict.decode(), job_id.decode())  # type: ignore[arg-type]

    def record(self, key: str, event: str, **details: Any) -> None:
        """Add to the key's history (newest first, capped) and count the event for /metrics."""
        entry = json.dumps({"at": int(time.time()), "event": event, **details})
        with self.redis.pipeline() as pipe:
            pipe.lpush(_history(key), entry).ltrim(_history(key), 0, HISTORY_LENGTH - 1)
            pipe.hincrby(STATS, f"events:{event}", 1)
            pipe.execute()

    def known_keys(self) -> Iterator[str]:
        """Every maintenance_key the bridge has seen (and not yet expired)."""
        for key in self.redis.sscan_iter(KNOWN_KEYS, count=500):
            yield key.decode()

    def count_keys(self) -> int:
        return int(self.redis.scard(KNOWN_KEYS))

    def last_activity(self, key: str) -> int | None:
        """When the newest history entry of the key was written (epoch seconds)."""
        newest = self.redis.lindex(_history(key), 0)
        return json.loads(newest)["at"] if newest else None

    def forget(self, key: str) -> None:
        """Drop everything the bridge remembers of a key (housekeeping)."""
        with self.redis.pipeline() as pipe:
            pipe.delete(_change(key), _history(key)).srem(KNOWN_KEYS, key)
            pipe.execute()

    def stats(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.redis.hgetall(STATS).items()}

    def history(self, key: str) -> list[dict[str, Any]]:
        """Newest first."""
        return [json.loads(item) for item in self.redis.lrange(_history(key), 0, -1)]

    def ledger_intact(self) -> bool:
        return bool(self.redis.exists(LEDGER_MARKER))

    def rebuild_ledger(self, plans_by_target: Mapping[str | None, Iterable[Plan]]) -> int:
        """Remember the live plan of every key found in BigPanda, then set the marker."""
        ledger: dict[str, dict[str, list[str | None]]] = {}
        for target, plans in plans_by_target.items():
            for plan in plans:
                if plan.maintenance_key and plan.status != "ended":
                    change = change_key_of(plan.maintenance_key)
                    ledger.setdefault(change, {})[plan.maintenance_key] = [plan.id, target]
        with self.redis.pipeline() as pipe:
            for change, plans in ledger.items():
                pipe.hset(_change(change), "plans", json.dumps(plans, sort_keys=True))
                pipe.sadd(KNOWN_KEYS, change)
            pipe.set(LEDGER_MARKER, int(time.time()))
            pipe.execute()
        return sum(len(plans) for plans in ledger.values())


def connect(url: str) -> Redis:
    """A connection for RQ and the store (bytes answers, as RQ needs). Few, short retries: a
    webhook must get its 503 within the sender's timeout, not after redis-py's default backoff."""
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=30,
    )


def _plans_from_json(raw: bytes | None) -> dict[str, RememberedPlan]:
    if not raw:
        return {}
    return {key: RememberedPlan(*value) for key, value in json.loads(raw).items()}


def _change(key: str) -> str:
    return f"{PREFIX}change:{key}"


def _history(key: str) -> str:
    return f"{PREFIX}history:{key}"


def _job_keys(job: JobWrite) -> list[str]:
    return [job.hash_key, job.queue_key, RQ_QUEUES]

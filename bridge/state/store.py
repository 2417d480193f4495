"""Redis state per change (source, maintenance_key): newest version and desired plan, plan ids,
pending job, history.

The ingest path is one Lua script (one round trip): it orders the event against the newest seen,
stores it, and either joins the reconcile already pending for the key or queues the new one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ..config import IGNORED_RETENTION_SECONDS, RETENTION_SECONDS
from ..errors import jump_refused
from ..logs import event as log_event
from ..model import ChangeRef, Decision, NoPlan, Plan, body_of, plans_of
from . import histograms
from .ledger import (
    IngestResult,
    KeyState,
    RememberedPlan,
    decision_from_json,
    decision_to_json,
    plans_from_json,
)
from .lua import CLAIM, INGEST, KEEP, REQUEST

log = logging.getLogger(__name__)
PREFIX = "bridge:"
LEDGER_MARKER = PREFIX + "ledger-marker"  # absent: the key -> plan id memory may have been lost
KNOWN_KEYS = PREFIX + "changes"  # members "<source>:<maintenance_key>" (ChangeRef.id)
STATS = PREFIX + "stats"  # counters behind /metrics, shared by every process
OVERRUN_INDEX = PREFIX + "overrun"  # sorted set: changes that may overrun, by their plan's end
HISTORY_LENGTH = 50


class Store:
    """The bridge's memory in Redis; every method is one or two round trips."""

    def __init__(self, redis: Redis, job_prefix: str):
        """`job_prefix`: what the queue puts before a job's id to name its hash (the ingest
        script asks whether the pending job has been written); jobs.queue.store_of knows it."""
        self.redis = redis
        self._ingest = redis.register_script(INGEST)
        self._claim = redis.register_script(CLAIM)
        self._request = redis.register_script(REQUEST)
        self._keep = redis.register_script(KEEP)
        self._job_prefix = job_prefix

    def ingest(
        self,
        change: ChangeRef,
        decision: Decision,
        version: Iterable[float],
        job_id: str,
        event: dict[str, Any],
        delivery: str | None = None,
        seconds: float = 0.0,
        bound: tuple[int, str, int] | None = None,
    ) -> IngestResult:
        """Order, store and coalesce one event; marks the change pending under `job_id` unless
        a job waits already (verdict "enqueue": the caller then enqueues that job).
        `delivery`, the sender's id of this delivery: a repeat within a day is a duplicate.
        `seconds`, the webhook's handling time so far, goes to its histogram. `bound`, the
        version part (index, field, largest jump) that may not jump far past the newest seen:
        InvalidChange names the field, and nothing is written."""
        return self._verdict(change, decision, version, job_id, event, delivery, seconds, bound)

    def _verdict(
        self,
        change: ChangeRef,
        decision: Decision,
        version: Iterable[float],
        job_id: str,
        event: dict[str, Any],
        delivery: str | None,
        seconds: float,
        bound: tuple[int, str, int] | None,
        dry: bool = False,
    ) -> IngestResult:
        bucket, total = histograms.fields("webhook_seconds", [change.source], seconds)
        entry = {"at": int(time.time()), "event": "received", "version": list(version), **event}
        keys = [_change(change), _history(change), KNOWN_KEYS, LEDGER_MARKER, STATS]
        verdict, found_job = self._ingest(
            keys=keys,
            args=[
                json.dumps(list(version)),
                decision_to_json(decision),
                "0" if isinstance(decision, NoPlan) else "1",
                json.dumps(entry),
                self._job_prefix,
                HISTORY_LENGTH,
                f"webhooks:{change.source}:",
                f"{PREFIX}delivery:{change.source}:{delivery}" if delivery else "",
                bucket,
                total,
                repr(seconds),
                int(time.time() * 1000),
                job_id,
                "1" if dry else "0",
                f"{bound[0]},{bound[2]}" if bound else "",
                _time_to_live(max((p.end for p in plans_of(decision).values()), default=0)),
                IGNORED_RETENTION_SECONDS,
            ],
        )
        if verdict == b"too_far":
            raise jump_refused(list(version), bound, int(found_job))  # type: ignore[arg-type]
        return IngestResult(verdict.decode(), found_job.decode() or None)  # type: ignore[arg-type]

    def predict(
        self,
        change: ChangeRef,
        decision: Decision,
        version: Iterable[float],
        bound: tuple[int, str, int] | None = None,
    ) -> str:
        """The verdict ingest would reach now: the ingest script itself, told to write nothing."""
        return self._verdict(
            change, decision, version, "preview", {}, None, 0.0, bound, True
        ).verdict

    def claim(self, change: ChangeRef, job_id: str) -> float | None:
        """Mark the pending job as started so newer events enqueue a fresh reconcile; returns
        when the oldest event it serves was accepted (epoch seconds), if any."""
        accepted = self._claim(keys=[_change(change)], args=[job_id])
        return int(accepted) / 1000 if accepted else None

    def unclaim_time(self, change: ChangeRef, accepted: float) -> None:
        """A reconcile that did not finish gives the time back to its retry."""
        self.redis.hsetnx(_change(change), "accepted_at", int(accepted * 1000))

    def state(self, change: ChangeRef) -> KeyState:
        fields = ["desired", "plans", "create_uncertain", "version", "pending", "adoption_checked"]
        desired, plans, uncertain, version, pending, checked, extension = self.redis.hmget(
            _change(change), [*fields, "extension"]
        )
        return KeyState(
            desired=decision_from_json(desired) if desired else None,
            plans=plans_from_json(plans),
            create_uncertain=bool(uncertain),
            version=tuple(json.loads(version)) if version else None,
            pending_job=pending.decode() if pending else None,
            adoption_checked=bool(checked),
            extension=tuple(json.loads(extension)) if extension else None,  # type: ignore[arg-type]
        )

    def extend(self, change: ChangeRef, planned_end: int, end: int) -> None:
        """Remember that the plan planned to end at `planned_end` now ends at `end` (overrun)."""
        self.redis.hset(_change(change), "extension", json.dumps([planned_end, end]))

    def follow(self, change: ChangeRef, end: int | None) -> None:
        """Index a change whose running plan may overrun by its end (None: no longer)."""
        if end is None:
            self.redis.zrem(OVERRUN_INDEX, change.id)
        else:
            self.redis.zadd(OVERRUN_INDEX, {change.id: end})

    def ending_before(self, until: float) -> list[ChangeRef]:
        """The indexed changes whose plan ends before `until`."""
        found = self.redis.zrangebyscore(OVERRUN_INDEX, "-inf", until)
        return [ChangeRef.from_id(member.decode()) for member in found]

    def is_known(self, change: ChangeRef) -> bool:
        return bool(self.redis.sismember(KNOWN_KEYS, change.id))

    def remember_plan(self, change: ChangeRef, plan_key: str, plan: RememberedPlan | None) -> None:
        """Store (or forget, with None) one of the change's plans. The caller holds the change's
        lock, so this read-modify-write does not race."""
        plans = plans_from_json(self.redis.hget(_change(change), "plans"))
        if plan:
            plans[plan_key] = plan
        else:
            plans.pop(plan_key, None)
        if plans:
            encoded = {k: p.to_json() for k, p in plans.items()}
            with self.redis.pipeline() as pipe:  # one round trip, its time to live with it
                pipe.hset(_change(change), "plans", json.dumps(encoded, sort_keys=True))
                self.keep(change, until=_latest_end(plans.values()), pipe=pipe)
                pipe.execute()
        else:
            self.redis.hdel(_change(change), "plans")

    def set_create_uncertain(self, change: ChangeRef, uncertain: bool) -> None:
        """Set before a create, cleared once its answer is recorded: a crash leaves it set."""
        if uncertain:
            self.redis.hset(_change(change), "create_uncertain", "1")
        else:
            self.redis.hdel(_change(change), "create_uncertain", "forgotten_at")

    def observe(self, change: ChangeRef, observed: Mapping[str, tuple[str, Plan | None]]) -> None:
        """Leave what a sweep's listing showed of the change's plans (plan key -> (id, plan or
        None: gone)) for its next reconcile, which holds the lock to act on it."""
        encoded = {
            key: {"id": plan_id, "plan": {**body_of(plan), "status": plan.status} if plan else None}
            for key, (plan_id, plan) in observed.items()
        }
        self.redis.hset(_change(change), "observed", json.dumps(encoded, sort_keys=True))

    def take_observed(self, change: ChangeRef) -> dict[str, tuple[str, dict[str, Any] | None]]:
        """The sweep's observation of the change's plans, once (plans as BigPanda's bodies)."""
        with self.redis.pipeline() as pipe:
            raw, _ = (
                pipe.hget(_change(change), "observed").hdel(_change(change), "observed").execute()
            )
        found = json.loads(raw) if raw else {}
        return {key: (entry["id"], entry["plan"]) for key, entry in found.items()}

    def set_adoption_checked(self, change: ChangeRef) -> None:
        """The change's unmarked plans were looked for: the listing is not repeated."""
        self.redis.hset(_change(change), "adoption_checked", "1")

    def request_reconcile(self, change: ChangeRef, job_id: str) -> IngestResult:
        """Ask for a reconcile of a change without an event: mark it pending under `job_id`
        ("enqueue": the caller enqueues it), or join the one pending ("joined")."""
        verdict, job_id = self._request(keys=[_change(change)], args=[self._job_prefix, job_id])
        return IngestResult(verdict.decode(), job_id.decode())  # type: ignore[arg-type]

    def record(self, change: ChangeRef, event: str, **details: Any) -> None:
        """Add to the change's history (newest first, capped), count the event for /metrics and
        log it: every decision of a reconcile passes here."""
        entry = json.dumps({"at": int(time.time()), "event": event, **details})
        log_event(log, f"change {event}", source=change.source, key=change.key, **details)
        with self.redis.pipeline() as pipe:
            pipe.lpush(_history(change), entry).ltrim(_history(change), 0, HISTORY_LENGTH - 1)
            pipe.hincrby(STATS, f"events:{event}", 1)
            self.keep(change, pipe=pipe)
            pipe.execute()

    def keep(self, change: ChangeRef, until: float = 0, pipe: Any = None) -> None:
        """Lengthen the change's time to live to the retention past now and past `until` (a
        plan's end): its keys expire by themselves, refreshed by every activity."""
        keys = [_change(change), _history(change)]
        self._keep(keys=keys, args=[_time_to_live(until)], client=pipe or self.redis)

    def known_changes(self) -> Iterator[ChangeRef]:
        """Every change the bridge has seen (and not yet expired)."""
        for member in self.redis.sscan_iter(KNOWN_KEYS, count=500):
            yield ChangeRef.from_id(member.decode())

    def count_changes(self) -> int:
        return int(self.redis.scard(KNOWN_KEYS))

    def last_activity(self, change: ChangeRef) -> int | None:
        """When the newest history entry of the change was written (epoch seconds)."""
        newest = self.redis.lindex(_history(change), 0)
        return json.loads(newest)["at"] if newest else None

    def forget(self, change: ChangeRef) -> None:
        """Drop everything the bridge remembers of a change; BigPanda is not touched. A plan it
        may have stays findable: the next reconcile of the change looks for its marked plans
        (as after a create of unknown outcome), and the sweep removes them after the retention
        period (`forgotten_at`)."""
        plans, uncertain = self.redis.hmget(_change(change), ["plans", "create_uncertain"])
        with self.redis.pipeline() as pipe:  # MULTI: never a moment with neither
            pipe.delete(_change(change), _history(change)).srem(KNOWN_KEYS, change.id)
            if plans or uncertain:
                lookout = {"create_uncertain": "1", "forgotten_at": int(time.time())}
                pipe.hset(_change(change), mapping=lookout)
                pipe.expire(_change(change), RETENTION_SECONDS + 86400)  # the sweep's look first
            pipe.execute()

    def forgotten_at(self, change: ChangeRef) -> int | None:
        """When `forget` dropped the change while it may still have had a plan (epoch s)."""
        at = self.redis.hget(_change(change), "forgotten_at")
        return int(at) if at else None

    def take_orphan(self, change: ChangeRef, why: str) -> None:
        """A marked plan of the change that the ledger lacks, and the change wants none: its
        next reconcile looks for it (and, with no desired state left, wants no plan)."""
        orphan = {"create_uncertain": "1"}
        if not self.redis.hexists(_change(change), "desired"):
            orphan["desired"] = decision_to_json(NoPlan(change.key, "not_selected"))
        with self.redis.pipeline() as pipe:
            pipe.hset(_change(change), mapping=orphan).hdel(_change(change), "forgotten_at")
            pipe.sadd(KNOWN_KEYS, change.id)
            pipe.execute()
        self.record(change, "orphan", message=why)  # which also sets its time to live

    def summary(self, change: ChangeRef) -> dict[str, Any]:
        """What the bridge remembers of a change, in brief (what `forget` would drop)."""
        state = self.state(change)
        return {
            "source": change.source,
            "maintenance_key": change.key,
            "version": list(state.version) if state.version is not None else None,
            "plans": {key: plan.id for key, plan in state.plans.items()},
            "pending_job": state.pending_job,
            "history_entries": int(self.redis.llen(_history(change))),
        }

    def stats(self) -> dict[str, float]:
        return {k.decode(): float(v) for k, v in self.redis.hgetall(STATS).items()}

    def history(self, change: ChangeRef) -> list[dict[str, Any]]:
        """Newest first."""
        return [json.loads(item) for item in self.redis.lrange(_history(change), 0, -1)]

    def ledger_intact(self) -> bool:
        return bool(self.redis.exists(LEDGER_MARKER))

    def rebuild_ledger(self, plans: Iterable[tuple[ChangeRef, str | None, Plan]]) -> int:
        """Remember the plans (change, organization, plan) a full listing found with this
        instance's mark, then set the marker; the caller leaves out every other plan."""
        ledger: dict[ChangeRef, dict[str, RememberedPlan]] = {}
        for change, target, plan in plans:
            remembered = RememberedPlan(plan.id, target, written=body_of(plan))
            ledger.setdefault(change, {})[plan.maintenance_key or change.key] = remembered
        with self.redis.pipeline() as pipe:
            for change, remembered_plans in ledger.items():
                encoded = {key: p.to_json() for key, p in remembered_plans.items()}
                pipe.hset(_change(change), "plans", json.dumps(encoded, sort_keys=True))
                pipe.sadd(KNOWN_KEYS, change.id)
                self.keep(change, until=_latest_end(remembered_plans.values()), pipe=pipe)
            pipe.set(LEDGER_MARKER, int(time.time()))
            pipe.execute()
        return sum(len(found) for found in ledger.values())


def connect(url: str, verify_tls: bool = True) -> Redis:
    """A connection for RQ and the store (bytes answers, as RQ needs). Few, short retries: a
    webhook must get its 503 within the sender's timeout, not after redis-py's default backoff.
    `verify_tls` False accepts a rediss:// server's self-signed certificate (Heroku's); the
    connection is still encrypted."""
    tls = {"ssl_cert_reqs": "none"} if url.startswith("rediss://") and not verify_tls else {}
    return Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
        socket_connect_timeout=2,
        socket_timeout=10,
        health_check_interval=30,
        **tls,
    )


def _latest_end(plans: Iterable[RememberedPlan]) -> int:
    """The latest end of the plans as the bridge last wrote them (0: none known)."""
    return max((int((plan.written or {}).get("end") or 0) for plan in plans), default=0)


def _time_to_live(until: float) -> int:
    """Seconds to keep a change: the retention past now, or past `until` if later."""
    return int(max(0.0, until - time.time()) + RETENTION_SECONDS)


def _change(change: ChangeRef) -> str:
    return f"{PREFIX}change:{change.id}"


def _history(change: ChangeRef) -> str:
    return f"{PREFIX}history:{change.id}"

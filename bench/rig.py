"""The bridge as bench/lifecycle.py drives it: a Redis of its own, the fake BigPanda of the tests
(tests/faulty_bigpanda.py, over real HTTP, every call recorded with its arrival time) with a
latency per call, real `bridge worker` processes, and the web app under Flask's test client."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from processes import BenchError, spawn, start_redis, tail
from redis import Redis
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from bridge.app import create_app
from bridge.bigpanda.sandbox import PLANS_KEY
from bridge.config import Settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the fake BigPanda the tests use
from faulty_bigpanda import (  # noqa: E402
    CREATE_PATH,
    LIST_PATH,
    TOKEN,
    WRITES,
    Arrival,
    FaultyBigPanda,
    serve_faulty_bigpanda,
)

SAMPLE = ROOT / "tests" / "payloads" / "servicenow" / "servicenow_change_scheduled.json"
STAMP = "%Y-%m-%d %H:%M:%S"  # ServiceNow's internal UTC dates
LIST_CALL = re.compile(LIST_PATH)  # with GET: the list call, any page
CREATE_CALL = re.compile(CREATE_PATH)  # with POST: a create


@dataclass
class Rig:
    """What a case needs: post changes, watch BigPanda's plans and calls, wait for quiet."""

    fake: FaultyBigPanda
    web: Any  # the web app's FlaskClient
    queue: Queue
    env: dict[str, str]  # the workers' environment, for `bridge` commands
    workers: list[subprocess.Popen]
    logs: list[Path]  # the workers' output
    started: float = field(default_factory=time.monotonic)

    def post(self, change: dict) -> dict:
        """One webhook; anything but 202 or 200 means the bench itself is wrong."""
        token = self.env["SERVICENOW_WEBHOOK_TOKEN"]
        answer = self.web.post(
            "/webhooks/servicenow", json=change, headers={"Authorization": f"Bearer {token}"}
        )
        if answer.status_code not in (200, 202):
            raise BenchError(f"webhook answered {answer.status_code}: {answer.get_data(True)}")
        return answer.get_json()

    def plan_count(self) -> int:
        """How many plans the fake holds (one Redis call: cheap enough to poll)."""
        return self.fake.redis.hlen(PLANS_KEY)

    def plans(self) -> dict[str, dict]:
        """The fake's plans by maintenance_key."""
        return {plan["maintenance_key"]: plan for plan in self.fake.plans()}

    def mark(self) -> int:
        """A point in the fake's record of calls, for `calls_since`."""
        return len(self.fake.arrivals)

    def calls_since(self, mark: int) -> list[Arrival]:
        return self.fake.arrivals[mark:]

    def writes_since(self, mark: int) -> list[Arrival]:
        """The calls since `mark` that change a plan."""
        return [call for call in self.calls_since(mark) if call.method in WRITES]

    def busiest(self, window: float = 1.0) -> list[Arrival]:
        """The most calls that arrived within any `window` seconds (as FaultyBigPanda.busiest
        counts them), the earliest such run if there are several."""
        calls = sorted(self.fake.arrivals, key=lambda call: call.at)
        most: list[Arrival] = []
        first = 0
        for last, call in enumerate(calls):
            while call.at - calls[first].at >= window:
                first += 1
            if last - first + 1 > len(most):
                most = calls[first : last + 1]
        return most

    def kinds_since(self, mark: int) -> Counter[str]:
        """The calls since `mark` by kind: `list` (any page), `create` and `other`."""
        return Counter(_kind(call) for call in self.calls_since(mark))

    def wait_for(self, condition: Callable[[], bool], timeout: float, poll: float = 0.001) -> bool:
        """Poll `condition` until it holds (True) or `timeout` seconds pass (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            time.sleep(poll)
        return True

    def wait_for_plans(self, count: int, timeout: float) -> bool:
        """Wait until the fake holds `count` plans (True), or False after `timeout` seconds."""
        return self.wait_for(lambda: self.plan_count() >= count, timeout)

    def settle(self, quiet: float = 0.5, timeout: float = 120.0) -> None:
        """Wait until no job is queued, running or waiting for a retry and BigPanda has seen
        no call for `quiet` seconds: whatever the last webhooks caused has been done."""
        deadline = time.monotonic() + timeout
        while not (self._idle() and self._silent_for(quiet) and self._idle()):
            if time.monotonic() > deadline:
                raise BenchError(f"the workers were still busy after {timeout:g} s{self.tails()}")
            self.check_workers()
            time.sleep(0.05)

    def _idle(self) -> bool:
        queue = self.queue
        return (
            queue.count == 0
            and queue.started_job_registry.get_job_count(cleanup=False) == 0
            and queue.scheduled_job_registry.get_job_count(cleanup=False) == 0
        )

    def _silent_for(self, quiet: float) -> bool:
        arrivals = self.fake.arrivals
        return not arrivals or time.monotonic() - arrivals[-1].at >= quiet

    def failed_jobs(self) -> int:
        return self.queue.failed_job_registry.get_job_count(cleanup=False)

    def check_workers(self) -> None:
        if any(worker.poll() is not None for worker in self.workers):
            raise BenchError(f"a worker is gone{self.tails()}")

    def tails(self) -> str:
        return _tails(self.logs)

    def reconcile(self) -> str:
        """`bridge reconcile` (one drift sweep), as an operator runs it; its summary line."""
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "reconcile"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            raise BenchError(f"bridge reconcile exited {done.returncode}: {done.stderr[-2000:]}")
        return done.stdout.strip().splitlines()[-1]


def _tails(logs: list[Path]) -> str:
    return "".join(f"\n{log.name}:\n{tail(log)}" for log in logs)


def _kind(call: Arrival) -> str:
    if call.method == "GET" and LIST_CALL.search(call.path):
        return "list"
    if call.method == "POST" and CREATE_CALL.search(call.path):
        return "create"
    return "other"


def start_rig(tmp: Path, stack: ExitStack, latency: float, workers: int, rate: float) -> Rig:
    """Redis, the fake BigPanda (its plans in db 1, the bridge's data in db 0) answering each
    call `latency` seconds late, and `workers` worker processes; all stopped by `stack`."""
    redis_url = start_redis(tmp, stack)
    bridge_redis = stack.enter_context(Redis.from_url(redis_url))
    fake_redis = stack.enter_context(Redis.from_url(f"{redis_url}?db=1"))
    # The delay comes before the fake acts, as a request in flight and BigPanda's own work:
    # a plan is there when a real BigPanda would have it, the answer right after.
    fake = stack.enter_context(serve_faulty_bigpanda(fake_redis, stall=lambda _m, _p: latency))
    env = _bridge_env(redis_url, fake.url, rate)
    logs = [tmp / f"worker-{number}.log" for number in range(1, workers + 1)]
    worker = [sys.executable, "-m", "bridge", "worker"]
    processes = [spawn(worker, stack, env, log) for log in logs]
    web = create_app(Settings.from_env(env), redis=bridge_redis).test_client()
    return Rig(fake, web, _queue_of(bridge_redis, workers, logs), env, processes, logs)


def _queue_of(redis: Redis, workers: int, logs: list[Path]) -> Queue:
    """The reconcile queue, once all workers have registered: the first each listens on (the
    notes queue comes after it)."""
    deadline = time.monotonic() + 30
    while len(found := Worker.all(connection=redis)) < workers:
        if time.monotonic() > deadline:
            raise BenchError("the workers did not start within 30 s" + _tails(logs))
        time.sleep(0.05)
    names = {worker.queues[0].name for worker in found}
    if len(names) != 1:
        raise BenchError(f"the workers listen first on {sorted(names)}, not one queue")
    return Queue(names.pop(), connection=redis, serializer=JSONSerializer)


def _bridge_env(redis_url: str, bigpanda_url: str, rate: float) -> dict[str, str]:
    return dict(
        os.environ,
        REDIS_URL=redis_url,
        BIGPANDA_API_URL=bigpanda_url,
        BIGPANDA_API_KEY=TOKEN,  # the token the fake accepts
        BIGPANDA_RATE_LIMIT=f"{rate:g}",
        BRIDGE_MAPPINGS=str(ROOT / "mappings"),
        BRIDGE_SOURCES="servicenow",
        SERVICENOW_WEBHOOK_TOKEN=secrets.token_urlsafe(18),
        BRIDGE_INSTANCE="bench",
        BRIDGE_DRY_RUN="0",
        LOG_FORMAT="text",
    )


# --- changes ---------------------------------------------------------------------------------


def window(start_in: timedelta = timedelta(hours=2), hours: float = 2) -> tuple[datetime, datetime]:
    """A change window starting `start_in` from now (whole seconds, UTC)."""
    start = (datetime.now(UTC) + start_in).replace(microsecond=0)
    return start, start + timedelta(hours=hours)


def change(
    key: str,
    version: int,
    when: tuple[datetime, datetime] | None = None,
    state: str = "Scheduled",
) -> dict:
    """The ServiceNow sample as change `key` at `version` (its sys_mod_count), in `when`."""
    start, end = when or window()
    code = {"Scheduled": "-2", "Canceled": "4"}[state]
    return dict(
        _sample(),
        number=key,
        sys_mod_count=str(version),
        sys_updated_on=datetime.now(UTC).strftime(STAMP),
        state=code,
        state_display=state,
        start_date=start.strftime(STAMP),
        end_date=end.strftime(STAMP),
    )


@cache
def _sample() -> dict:
    return json.loads(SAMPLE.read_text())

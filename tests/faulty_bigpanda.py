"""The sandbox BigPanda over real HTTP behind a fault-injecting WSGI middleware.

Every request that reaches the middleware is recorded with its arrival time (faulted or not), so
a test can check the rate BigPanda saw. A FaultPlan decides per request, from a script first and
then from a seeded random draw, whether it is:
- answered 500/503/429 without touching the sandbox (nothing happened);
- handled by the sandbox, then its connection dropped (the work done, the answer lost);
- handled by the sandbox, then answered after the client's read timeout (the same, by timeout).
After each write the sandbox's live plans are counted per maintenance_key, so that two live plans
for one key are seen even if something removes one of them later.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from bridge_harness import serve_in_thread
from flask import Flask
from redis import Redis
from werkzeug.serving import WSGIRequestHandler

from bridge.bigpanda.sandbox import PLANS_KEY, create_sandbox

TOKEN = "sandbox-test-token"  # bridge_harness.SANDBOX_TOKEN: the bridge's settings send it
LIST_PATH = r"/maintenance-plans(\?|$)"  # the list call, any page
CREATE_PATH = r"/maintenance-plans$"  # with POST
WRITES = ("POST", "PATCH", "DELETE")
REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}
FaultKind = Literal["status", "drop", "late"]


@dataclass(frozen=True)
class Fault:
    """What happens to one request: `status` (an error answer, the sandbox untouched), `drop`
    (handled, then the connection closed unanswered) or `late` (handled, answered `delay` s on)."""

    kind: FaultKind
    status: int = 503
    delay: float = 0.0

    @property
    def touches_sandbox(self) -> bool:
        return self.kind != "status"


@dataclass(frozen=True)
class Arrival:
    """One request as it reached the middleware, and the fault it was given (None: served)."""

    at: float  # time.monotonic()
    method: str
    path: str
    fault: Fault | None


class FaultPlan:
    """Which request gets which fault: scripted faults for the next matching requests first, then
    each request independently with probability `rate` (seeded), at most `limit` random faults,
    of a kind drawn from `kinds`. `late_delay` must exceed the client's read timeout."""

    def __init__(
        self,
        rate: float = 0.0,
        seed: int = 0,
        late_delay: float = 1.5,
        limit: int | None = None,
        kinds: tuple[FaultKind, ...] = ("status", "status", "drop", "late"),
    ) -> None:
        self.rate, self.late_delay, self.limit, self.kinds = rate, late_delay, limit, kinds
        self._rng = random.Random(seed)
        self._script: list[tuple[str | None, re.Pattern[str], Fault]] = []
        self._lock = threading.Lock()
        self.injected = 0  # random faults given so far

    def script(self, fault: Fault, method: str | None = None, path: str = "") -> FaultPlan:
        """Give `fault` to the next request matching `method` and the `path` regex."""
        with self._lock:
            self._script.append((method, re.compile(path), fault))
        return self

    def stop(self) -> None:
        """No more faults, scripted or random: the final drain runs against a healthy BigPanda."""
        with self._lock:
            self.rate, self._script = 0.0, []

    def __call__(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for index, (wanted, pattern, fault) in enumerate(self._script):
                if wanted in (None, method) and pattern.search(path):
                    del self._script[index]
                    return fault
            if self.rate <= 0 or (self.limit is not None and self.injected >= self.limit):
                return None
            if self._rng.random() >= self.rate:
                return None
            self.injected += 1
            kind = self._rng.choice(self.kinds)
            if kind == "status":
                return Fault("status", status=self._rng.choice((500, 503, 429)))
            return Fault(kind, delay=self.late_delay if kind == "late" else 0.0)


Delay = Callable[[str, str], float]  # (method, path) -> seconds


class FaultyBigPanda:
    """The sandbox on 127.0.0.1 behind the fault middleware; read `url`, `arrivals`, `plans()`.

    `stall(method, path)` seconds pass before the sandbox handles a request (BigPanda slow to
    act: the work is not done yet), `slow(method, path)` seconds after it, before the answer
    (the work is done, the answer is late). Both must stay below the client's read timeout;
    beyond it, use a `late` fault. A test may also act in them (flush the bridge's Redis when
    a given request arrives)."""

    def __init__(
        self,
        redis: Redis,
        faults: FaultPlan | None = None,
        stall: Delay | None = None,
        slow: Delay | None = None,
    ) -> None:
        self.redis = redis  # where the sandbox keeps its plans: BigPanda's state, not the bridge's
        self.faults = faults or FaultPlan()
        self.stall, self.slow = stall, slow
        self.url = ""
        self.arrivals: list[Arrival] = []
        self.doubles: list[tuple[str, list[str]]] = []  # (key, its live plan ids) after a write
        self._lock = threading.Lock()

    def __repr__(self) -> str:  # short: hypothesis prints it with every failing example
        return f"FaultyBigPanda({self.url}, {len(self.arrivals)} requests)"

    # --- what BigPanda saw ------------------------------------------------------------------

    def count(self, method: str, pattern: str = "", served_only: bool = False) -> int:
        """Requests by method and path regex (`served_only`: those the sandbox handled)."""
        with self._lock:
            return sum(
                1
                for a in self.arrivals
                if a.method == method
                and re.search(pattern, a.path)
                and not (served_only and a.fault is not None and not a.fault.touches_sandbox)
            )

    def busiest(self, window: float = 0.98) -> int:
        """The largest number of requests that arrived within any `window` seconds."""
        with self._lock:
            stamps = sorted(a.at for a in self.arrivals)
        most, first = 0, 0
        for last, stamp in enumerate(stamps):
            while stamp - stamps[first] >= window:
                first += 1
            most = max(most, last - first + 1)
        return most

    def faulted(self) -> Counter[str]:
        """How many requests got each kind of fault."""
        with self._lock:
            return Counter(a.fault.kind for a in self.arrivals if a.fault is not None)

    def plans(self) -> list[dict[str, Any]]:
        """Every plan the sandbox holds, read from its storage (no HTTP, no rate budget), with
        its status from the clock as the sandbox computes it."""
        now = time.time()
        found = []
        for raw in self.redis.hvals(PLANS_KEY):
            plan = json.loads(raw)
            status = (
                "planned" if now < plan["start"] else "running" if now < plan["end"] else "done"
            )
            found.append({**plan, "status": status})
        return sorted(found, key=lambda plan: plan["id"])

    def live_by_key(self) -> dict[str, list[dict[str, Any]]]:
        """Planned and running plans by maintenance_key."""
        live: dict[str, list[dict[str, Any]]] = {}
        for plan in self.plans():
            if plan["status"] != "done":
                live.setdefault(plan.get("maintenance_key") or "", []).append(plan)
        return live

    def reset(self, faults: FaultPlan | None = None) -> None:
        """Forget the requests seen (a new hypothesis example); optionally a new fault plan."""
        with self._lock:
            self.arrivals.clear()
            self.doubles.clear()
            if faults is not None:
                self.faults = faults

    # --- the middleware ---------------------------------------------------------------------

    def _middleware(self, inner: Callable) -> Callable:
        def app(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
            method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            fault = self.faults(method, path)
            with self._lock:
                self.arrivals.append(Arrival(time.monotonic(), method, path, fault))
            if fault is not None and fault.kind == "status":
                body = json.dumps({"status": fault.status, "errors": ["injected fault"]}).encode()
                headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
                start_response(f"{fault.status} {REASONS.get(fault.status, 'Error')}", headers)
                return [body]
            answer: dict[str, Any] = {}

            def capture(status: str, headers: list, exc_info: Any = None) -> Callable:
                answer.update(status=status, headers=headers)
                return lambda data: None

            time.sleep(self.stall(method, path) if self.stall else 0)
            body = b"".join(inner(environ, capture))  # the sandbox has done the work now
            if method in WRITES:
                self._watch()
            if fault is not None and fault.kind == "drop":
                with contextlib.suppress(OSError):
                    environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
                # werkzeug's write of the answer fails on the closed socket (a dropped
                # connection, which it ignores); the client reads EOF instead of an answer.
                start_response(answer["status"], answer["headers"])
                return [body]
            delay = (
                fault.delay if fault is not None else self.slow(method, path) if self.slow else 0
            )
            time.sleep(delay)
            start_response(answer["status"], answer["headers"])
            return [body]

        return app

    def _watch(self) -> None:
        """Record every key that has two live plans of one owner right now (a plan the bridge
        did not make may share a key with the bridge's own)."""
        for key, plans in self.live_by_key().items():
            for owner in {_owner(plan) for plan in plans}:
                mine = [plan["id"] for plan in plans if _owner(plan) == owner]
                if len(mine) > 1:
                    with self._lock:
                        self.doubles.append((key, mine))


def _owner(plan: dict[str, Any]) -> str | None:
    tags = plan.get("custom_tags") or []
    return next((tag["value"] for tag in tags if tag.get("name") == "bridge_owner"), None)


class _QuietHandler(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:
        pass  # one line per request would drown pytest's output


@contextlib.contextmanager
def serve_faulty_bigpanda(
    redis: Redis,
    faults: FaultPlan | None = None,
    stall: Delay | None = None,
    slow: Delay | None = None,
) -> Iterator[FaultyBigPanda]:
    """Serve the sandbox (plans kept in `redis`) behind the fault middleware on 127.0.0.1."""
    app = Flask("faulty-bigpanda")
    app.register_blueprint(create_sandbox(redis, TOKEN))
    bigpanda = FaultyBigPanda(redis, faults, stall, slow)
    app.wsgi_app = bigpanda._middleware(app.wsgi_app)  # type: ignore[method-assign]
    with serve_in_thread(app, request_handler=_QuietHandler) as port:
        bigpanda.url = f"http://127.0.0.1:{port}/sandbox"
        yield bigpanda

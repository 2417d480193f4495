"""`bridge dev` as a new user runs it: banner, the printed curl works, Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from bridge_harness import descendants

# Real processes, kills and restarts: `-m 'not slow'` leaves them out of a quick local run.
pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_banner(process: subprocess.Popen, deadline: float) -> str:
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            return "".join(lines)
    pytest.fail("no banner from bridge dev:\n" + "".join(lines))


def curl_command(banner: str, marker: str) -> list[str]:
    line = next(line for line in banner.splitlines() if marker in line)
    return shlex.split(line.strip())


def run_curl(args: list[str]) -> requests.Response:
    """Send what a printed `curl` line says, with requests (curl may not be installed)."""
    assert args[0] == "curl"
    method, url, headers, data = "GET", None, {}, None
    words = iter(args[1:])
    for word in words:
        if word == "-X":
            method = next(words)
        elif word == "-H":
            name, _, value = next(words).partition(": ")
            headers[name] = value
        elif word == "-d":
            data = next(words)
        elif not word.startswith("-"):
            url = word
    return requests.request(method, url, headers=headers, data=data, timeout=5)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_bridge_dev_serves_the_printed_curls_and_ctrl_c_stops_every_process(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BIGPANDA_API_KEY")}
    env.update(PORT=str(free_port()), BRIDGE_MAPPINGS=str(REPO / "mappings"))
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        banner = read_banner(process, time.monotonic() + 60)
        children = descendants(process.pid)

        posted = run_curl(curl_command(banner, "/webhooks/servicenow"))
        assert posted.status_code == 202, posted.text
        listing = curl_command(banner, "maintenance-plans")
        deadline = time.monotonic() + 15
        while (answer := run_curl(listing)).status_code == 204 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [plan["maintenance_key"] for plan in answer.json()] == ["CHG0000001"]
        assert re.search(r"starts in ten minutes", banner)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)

    assert process.returncode == 0
    assert len(children) >= 3  # Redis, gunicorn (and its workers), the RQ worker
    assert not [pid for pid in children if alive(pid)]
    assert (tmp_path / "var").is_dir()  # the embedded Redis keeps its data there

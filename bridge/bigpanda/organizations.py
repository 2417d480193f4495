"""The worker's BigPanda clients: one per organization (the default and each mapping target),
each paced by the rate limiter every process shares through Redis, each call timed for /metrics."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from redis import Redis

from ..config import Settings
from ..errors import ConfigError
from ..mapping.loader import SourceMapping
from ..state import histograms
from ..state.ratelimit import RateLimiter
from ..state.store import STATS
from .client import BigPandaClient


def build_clients(
    settings: Settings, mappings: Mapping[str, SourceMapping], redis: Redis
) -> dict[str | None, BigPandaClient]:
    """A BigPanda client for the default organization (None) and each named target, paced by
    the limiter every process shares."""
    default = (settings.bigpanda_api_url, settings.bigpanda_token)
    clients = {None: _client(settings, redis, *default)}
    for mapping in mappings.values():
        for name, target in mapping.targets.items():
            token = settings.secrets.get(target.api_key_env)
            if not token:
                raise ConfigError(
                    f"{mapping.path}: targets.{name}: {target.api_key_env} is not set"
                )
            clients[name] = _client(settings, redis, target.api_url, token)
    return clients


def _client(settings: Settings, redis: Redis, url: str, token: str) -> BigPandaClient:
    # The limit is BigPanda's per organization: one limiter per URL and key, named by a hash
    # so that no key appears in Redis.
    organization = hashlib.sha256(f"{url}\n{token}".encode()).hexdigest()[:16]
    limiter = RateLimiter(
        redis, organization, rate=settings.rate_limit, period=settings.rate_period
    )
    return BigPandaClient(
        url,
        token,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        limiter=limiter,
        observer=lambda method, status, seconds: histograms.observe(
            redis, STATS, "bigpanda_call_seconds", [method, status], seconds
        ),
    )

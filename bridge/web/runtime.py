"""What a web process holds once it has started: settings, Redis, store, queue and mappings."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis
from rq import Queue

from ..config import Settings
from ..mapping.loader import SourceMapping
from ..state.store import Store


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    redis: Redis
    store: Store
    queue: Queue
    mappings: dict[str, SourceMapping]

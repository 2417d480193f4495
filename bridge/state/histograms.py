"""Latency histograms kept in Redis, beside the counters: every web and worker process, on any
host, adds to the same buckets, so whichever process serves /metrics reports the whole bridge
(Heroku's router cannot scrape dynos one by one, which prometheus-client's multiprocess mode
would need). Fields of the stats hash: `h:<name>:<labels>:<le>` counts, `hs:<name>:<labels>` sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from redis import Redis

# Seconds, from a fast webhook (milliseconds) to a change that waited out BigPanda's retries.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
INF = "+Inf"
LABELS = {
    "webhook_seconds": ("source",),
    "bigpanda_call_seconds": ("method", "status"),
    "agreed_seconds": ("source",),
}


def fields(name: str, labels: Iterable[str], seconds: float) -> tuple[str, str]:
    """The bucket field and the sum field one observation adds to."""
    le = next((str(bound) for bound in BUCKETS if seconds <= bound), INF)
    joined = "|".join(labels)
    return f"h:{name}:{joined}:{le}", f"hs:{name}:{joined}"


def observe(redis: Redis, stats_key: str, name: str, labels: Iterable[str], seconds: float) -> None:
    """Add one observation (one round trip)."""
    bucket, total = fields(name, labels, seconds)
    with redis.pipeline(transaction=False) as pipe:
        pipe.hincrby(stats_key, bucket, 1).hincrbyfloat(stats_key, total, seconds)
        pipe.execute()


@dataclass
class Series:
    """One labelled histogram as Prometheus wants it: cumulative buckets, count and sum."""

    counts: dict[str, int] = field(default_factory=dict)
    total: float = 0.0

    def buckets(self) -> list[tuple[str, int]]:
        running, found = 0, []
        for le in [*map(str, BUCKETS), INF]:
            running += self.counts.get(le, 0)
            found.append((le, running))
        return found


def read(stats: Mapping[str, float]) -> dict[str, dict[tuple[str, ...], Series]]:
    """Every histogram in the stats hash: name -> labels -> series."""
    found: dict[str, dict[tuple[str, ...], Series]] = {name: {} for name in LABELS}
    for key, value in stats.items():
        kind, _, rest = key.partition(":")
        if kind not in ("h", "hs"):
            continue
        name, _, rest = rest.partition(":")
        joined, le = rest.rsplit(":", 1) if kind == "h" else (rest, None)
        series = found.setdefault(name, {}).setdefault(tuple(joined.split("|")), Series())
        if le is None:
            series.total = float(value)
        else:
            series.counts[le] = int(value)
    return found

"""GET /metrics: Prometheus text, from counters every process keeps in Redis.

Webhooks are counted by the ingest script itself (no extra round trip) and reconcile events by
the workers' history writes, so the numbers are the whole bridge's, whichever process serves
the scrape; queue depths are read from RQ's registries at scrape time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from ..jobs.queue import job_counts, oldest_queued_seconds
from ..state import histograms
from ..state.store import STATS
from .runtime import Runtime

blueprint = Blueprint("metrics", __name__)
UNKNOWN_SOURCE = "_unknown"  # the one label of webhooks to sources no mapping file defines


@blueprint.get("/metrics")
def metrics() -> Response:
    """The Prometheus text exposition format."""
    runtime: Runtime = current_app.extensions["bridge"]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BridgeCollector(runtime))
    try:
        body = generate_latest(registry)
    except RedisError:
        return Response("redis unavailable\n", status=503, mimetype="text/plain")
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


def count_refused_webhook(runtime: Runtime, source: str, status: int) -> None:
    """Count a webhook answered 4xx (the ingest script counts the rest); best effort."""
    with contextlib.suppress(RedisError):  # the answer matters more than the count
        runtime.redis.hincrby(STATS, f"webhooks:{source}:http_{status}", 1)


class BridgeCollector(Collector):
    """Reads the counters and queue depths on each scrape."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        stats = self.runtime.store.stats()
        webhooks = CounterMetricFamily(
            "bridge_webhooks",
            "Webhooks answered, by source and answer",
            labels=["source", "answer"],
        )
        events = CounterMetricFamily(
            "bridge_reconcile_events",
            "Reconcile outcomes: created, updated, stopped, deleted, in_sync, retrying, failed...",
            labels=["event"],
        )
        for name, value in sorted(stats.items()):
            kind, _, rest = name.partition(":")
            if kind == "webhooks":
                source, _, answer = rest.rpartition(":")
                webhooks.add_metric([source, answer], value)
            elif kind == "events":
                events.add_metric([rest], value)
        yield webhooks
        yield events
        yield from _histograms(stats)
        yield self._jobs()
        yield self._oldest_queued()
        keys = GaugeMetricFamily("bridge_known_keys", "Changes the bridge remembers")
        keys.add_metric([], self.runtime.store.count_changes())
        yield keys

    def _oldest_queued(self) -> Metric:
        """How long the job at the head of the queue has waited: a stuck or starved worker."""
        age = GaugeMetricFamily(
            "bridge_oldest_queued_job_seconds", "Age of the oldest reconcile job waiting (0: none)"
        )
        age.add_metric([], oldest_queued_seconds(self.runtime.queue))
        return age

    def _jobs(self) -> Metric:
        jobs = GaugeMetricFamily("bridge_jobs", "Reconcile jobs by state", labels=["state"])
        for state, count in job_counts(self.runtime.queue).items():
            jobs.add_metric([state], count)
        return jobs


HISTOGRAM_HELP = {
    "webhook_seconds": "Webhook handling time, from the request to the stored event",
    "bigpanda_call_seconds": "BigPanda call latency, by method and status (or network error)",
    "agreed_seconds": "Time from an accepted webhook to BigPanda holding its plan",
}


def _histograms(stats: dict[str, float]) -> Iterator[Metric]:
    for name, series in histograms.read(stats).items():
        family = HistogramMetricFamily(
            f"bridge_{name}", HISTOGRAM_HELP.get(name, name), labels=list(histograms.LABELS[name])
        )
        for labels, found in sorted(series.items()):
            family.add_metric(list(labels), found.buckets(), found.total)
        yield family


def webhook_source() -> str | None:
    """The source of a /webhooks/<source> request, for counting its refusal."""
    if request.url_rule is None or not request.path.startswith("/webhooks/"):
        return None
    return (request.view_args or {}).get("source")

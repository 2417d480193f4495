"""GET /metrics: the whole bridge's counters, read from Redis, in Prometheus text format."""

from __future__ import annotations

from bridge_harness import (
    SERVICENOW_TOKEN,
    bridge_settings,
    run_worker,
    serve_sandbox,
    servicenow_payload,
)
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import create_app


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_answers_events_and_jobs(redis_url, redis_conn):
    with serve_sandbox(redis_conn) as bigpanda:
        settings = bridge_settings(redis_url, bigpanda.url)
        web = create_app(settings, redis=redis_conn).test_client()
        auth = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
        payload = servicenow_payload("servicenow_change_scheduled.json")
        web.post("/webhooks/servicenow", json=payload, headers=auth)
        web.post("/webhooks/servicenow", json=payload, headers=auth)
        web.post("/webhooks/servicenow", json=payload, headers={"Authorization": "Bearer no"})
        queued = samples(web.get("/metrics").get_data(as_text=True))
        run_worker(redis_conn, settings)

        answer = web.get("/metrics")

    found = samples(answer.get_data(as_text=True))
    assert answer.status_code == 200
    assert answer.mimetype == "text/plain"
    webhook = "bridge_webhooks_total"
    assert found[(webhook, (("answer", "enqueue"), ("source", "servicenow")))] == 1
    assert found[(webhook, (("answer", "duplicate"), ("source", "servicenow")))] == 1
    assert found[(webhook, (("answer", "http_401"), ("source", "servicenow")))] == 1
    assert found[("bridge_reconcile_events_total", (("event", "created"),))] == 1
    assert queued[("bridge_jobs", (("state", "queued"),))] == 1
    assert found[("bridge_jobs", (("state", "queued"),))] == 0
    assert found[("bridge_known_keys", ())] == 1


def test_latency_histograms_and_the_oldest_queued_job(redis_url, redis_conn):
    with serve_sandbox(redis_conn) as bigpanda:
        settings = bridge_settings(redis_url, bigpanda.url)
        web = create_app(settings, redis=redis_conn).test_client()
        auth = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
        web.post(
            "/webhooks/servicenow",
            json=servicenow_payload("servicenow_change_scheduled.json"),
            headers=auth,
        )
        waiting = samples(web.get("/metrics").get_data(as_text=True))
        run_worker(redis_conn, settings)
        found = samples(web.get("/metrics").get_data(as_text=True))

    source = (("source", "servicenow"),)
    assert 0 < waiting[("bridge_oldest_queued_job_seconds", ())] < 60  # the job just queued
    assert found[("bridge_oldest_queued_job_seconds", ())] == 0
    assert found[("bridge_webhook_seconds_count", source)] == 1
    assert found[("bridge_webhook_seconds_bucket", (("le", "+Inf"), *source))] == 1
    assert 0 < found[("bridge_webhook_seconds_sum", source)] < 5
    created = (("method", "POST"), ("status", "201"))
    assert found[("bridge_bigpanda_call_seconds_count", created)] == 1
    listed = (("method", "GET"), ("status", "204"))  # the ledger's first listing: no plans yet
    assert found[("bridge_bigpanda_call_seconds_count", listed)] == 1
    assert found[("bridge_agreed_seconds_count", source)] == 1
    assert 0 < found[("bridge_agreed_seconds_sum", source)] < 30


def test_histogram_buckets_are_cumulative_and_end_in_the_count():
    from bridge.state import histograms

    stats = {}
    for seconds in (0.0005, 0.004, 0.004, 7.0, 1000.0):
        bucket, total = histograms.fields("webhook_seconds", ["servicenow"], seconds)
        stats[bucket] = stats.get(bucket, 0) + 1
        stats[total] = stats.get(total, 0) + seconds
    [series] = histograms.read(stats)["webhook_seconds"].values()
    buckets = dict(series.buckets())
    assert (buckets["0.001"], buckets["0.005"], buckets["10"], buckets["+Inf"]) == (1, 3, 4, 5)
    assert series.total == 0.0005 + 0.004 + 0.004 + 7.0 + 1000.0

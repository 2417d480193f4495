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

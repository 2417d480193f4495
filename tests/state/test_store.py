"""The store's memory expires by itself: every key of a change has a time to live, refreshed by
its activity, reaching past its plan's end; an ignored event of an unknown change is kept a day."""

from __future__ import annotations

import time

from bridge_harness import SERVICENOW_TOKEN, servicenow_payload

from bridge.config import IGNORED_RETENTION_SECONDS, RETENTION_SECONDS
from bridge.jobs.queue import store_of
from bridge.model import ChangeRef

AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
# Keys that are not a change's and are bounded by design: the ledger marker (its loss must be
# seen), the counters behind /metrics, the rate limiters' paces (one short string each).
LASTING = ("bridge:ledger-marker", "bridge:stats")
LASTING_PREFIXES = ("bridge:pace:",)


def send(web, payload):
    return web.post("/webhooks/servicenow", json=payload, headers=AUTH)


def bridge_keys_without_ttl(redis_conn) -> list[str]:
    found = []
    for raw in redis_conn.scan_iter("bridge:*"):
        key = raw.decode()
        if key in LASTING or key.startswith(LASTING_PREFIXES):
            continue
        if redis_conn.ttl(key) < 0:
            found.append(key)
    return sorted(found)


def test_every_key_of_a_change_expires_after_its_plan_ends(web, work, redis_conn):
    payload = servicenow_payload("servicenow_change_scheduled.json")
    assert send(web, payload).status_code == 202
    work()

    assert bridge_keys_without_ttl(redis_conn) == []
    change = "bridge:change:servicenow:CHG0030412"
    end = store_of(redis_conn).state(ChangeRef("servicenow", "CHG0030412")).plans
    [plan] = end.values()
    past_end = plan.written["end"] - time.time() + RETENTION_SECONDS
    assert past_end - 60 < redis_conn.ttl(change) <= past_end + 1
    assert redis_conn.ttl("bridge:history:servicenow:CHG0030412") > RETENTION_SECONDS - 60


def test_an_ignored_event_of_an_unknown_change_is_kept_a_day(web, redis_conn):
    redis_conn.set("bridge:ledger-marker", int(time.time()))  # the memory is intact
    payload = {**servicenow_payload("servicenow_change_canceled.json"), "number": "CHG0099999"}
    answer = send(web, payload)

    assert answer.json["status"] == "ignored"
    for key in ("bridge:change:servicenow:CHG0099999", "bridge:history:servicenow:CHG0099999"):
        assert 0 < redis_conn.ttl(key) <= IGNORED_RETENTION_SECONDS
    assert bridge_keys_without_ttl(redis_conn) == []


def test_a_forgotten_changes_lookout_expires_after_the_retention(web, work, redis_conn):
    send(web, servicenow_payload("servicenow_change_scheduled.json"))
    work()
    store_of(redis_conn).forget(ChangeRef("servicenow", "CHG0030412"))

    assert 0 < redis_conn.ttl("bridge:change:servicenow:CHG0030412") <= RETENTION_SECONDS + 86400
    assert bridge_keys_without_ttl(redis_conn) == []

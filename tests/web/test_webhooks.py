"""The door: hostile requests get a clear 4xx and leave nothing behind; sloppy but honest
senders are understood."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
from bridge_harness import (
    JIRA_SECRET,
    SERVICENOW_TOKEN,
    queued_jobs,
    sample_payload,
    servicenow_payload,
)
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bridge.app import create_app
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.logs import TextFormatter

AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
SCHEDULED = "servicenow_change_scheduled.json"


def send(web, payload, headers=AUTH, source="servicenow"):
    return web.post(f"/webhooks/{source}", json=payload, headers=headers)


def send_raw(web, body: bytes, headers=AUTH, source="servicenow"):
    return web.post(
        f"/webhooks/{source}", data=body, headers={"Content-Type": "application/json", **headers}
    )


def bridge_keys(redis_conn) -> set[bytes]:
    """Every key the bridge or RQ wrote, but the counters (a refusal is counted)."""
    return {k for k in redis_conn.keys("*") if not k.startswith(b"sandbox:")} - {b"bridge:stats"}


# --- no 5xx from input, and nothing stored ------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    ["Basic \u00e9", "Basic ===", "Basic", "Bearer", "Bearer \u00e9\u00e9", "Digest x", ""],
)
def test_undecodable_or_wrong_credentials_are_a_401(web, redis_conn, authorization):
    answer = send(web, servicenow_payload(SCHEDULED), headers={"Authorization": authorization})

    assert answer.status_code == 401
    assert answer.content_type == "application/problem+json"
    assert bridge_keys(redis_conn) == set()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper"),
        (b'{"number": NaN}', "NaN"),
        (b'{"number": "CHG", "sys_mod_count": ' + b"9" * 401 + b"}", "401 digits"),
        (b'{"number": "CHG\\ud800", "state": "-2", "sys_mod_count": "1"}', "invalid Unicode"),
        (b'{"number": "' + b"C" * 900_000 + b'"}', "900,000 characters"),
    ],
)
def test_hostile_bodies_are_a_400_naming_the_problem(web, redis_conn, body, problem):
    answer = send_raw(web, body)

    assert answer.status_code == 400
    assert problem in answer.json["detail"]
    assert bridge_keys(redis_conn) == set()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sys_mod_count": "9" * 401}, "sys_mod_count"),
        ({"state": "9" * 401}, "state"),
        ({"number": "CHG" + "1" * 300}, "maintenance_key"),
        ({"number": "CHG0030412\nINFO forged log line"}, "maintenance_key"),
        ({"number": "CHG\x00"}, "maintenance_key"),
        ({"number": "CHG\u2028x"}, "maintenance_key"),
    ],
)
def test_absurd_or_control_values_are_a_422_naming_the_field(web, redis_conn, fields, field):
    answer = send(web, {**servicenow_payload(SCHEDULED), **fields})

    assert answer.status_code == 422, answer.json
    assert answer.json["errors"][0]["field"] == field
    assert bridge_keys(redis_conn) == set()


def test_a_key_of_255_characters_is_accepted(web):
    answer = send(web, {**servicenow_payload(SCHEDULED), "number": "C" * 255})
    assert answer.status_code == 202


def test_requests_to_made_up_sources_leave_no_series_and_no_field(web, redis_conn):
    for n in range(50):
        assert send(web, {}, headers={}, source=f"random-{n}").status_code == 404

    stats = redis_conn.hkeys("bridge:stats")
    metrics = web.get("/metrics").get_data(as_text=True)

    assert stats == [b"webhooks:_unknown:http_404"]
    assert int(redis_conn.hget("bridge:stats", "webhooks:_unknown:http_404")) == 50
    assert "random-" not in metrics
    assert 'source="_unknown"' in metrics


def test_a_failed_authentication_is_logged_without_the_secret_and_counted(web, redis_conn, caplog):
    caplog.set_level(logging.WARNING, logger="bridge")
    wrong = "Bearer not-the-servicenow-token"

    send(web, servicenow_payload(SCHEDULED), headers={"Authorization": wrong})

    [line] = [r.getMessage() for r in caplog.records if "authentication failed" in r.message]
    assert "source=servicenow" in line
    assert "remote=127.0.0.1" in line
    assert "tried=bearer" in line
    assert SERVICENOW_TOKEN not in caplog.text and "not-the-servicenow-token" not in caplog.text
    assert int(redis_conn.hget("bridge:stats", "webhooks:servicenow:http_401")) == 1


def test_each_webhook_decision_is_one_log_line_with_its_fields(web, caplog):
    caplog.set_level(logging.INFO, logger="bridge")
    answer = send(web, {**servicenow_payload(SCHEDULED), "number": "CHG 7 'x'"})

    [record] = [r for r in caplog.records if r.getMessage() == "webhook answered"]
    assert record.fields == {
        "request_id": answer.headers["X-Request-Id"],
        "source": "servicenow",
        "key": "CHG 7 'x'",
        "rule": "scheduled-or-implementing",
        "verdict": "accepted",
        "action": "upsert",
        "job_id": answer.json["job_id"],
    }
    assert "key=\"CHG 7 'x'\"" in TextFormatter().format(record)  # quoted: no forged line


# --- the fuzz: never a 5xx; nothing stored unless authentic and valid -----------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)
AUTHS = st.sampled_from(
    [None, f"Bearer {SERVICENOW_TOKEN}", "Bearer wrong", "Basic \u00e9", "Basic Og==", "x"]
)


@st.composite
def requests(draw) -> tuple[bytes, dict[str, str]]:
    if draw(st.booleans()):
        sample = servicenow_payload(SCHEDULED)
        for name in draw(st.lists(st.sampled_from(sorted(sample)), max_size=4)):
            sample[name] = draw(JSON)
        body = json.dumps(sample, allow_nan=True).encode()
    else:
        body = draw(st.binary(max_size=200) | JSON.map(lambda v: json.dumps(v).encode()))
    headers = {
        "Content-Type": draw(st.sampled_from(["application/json", "text/plain", "a/b+json"]))
    }
    authorization = draw(AUTHS)
    if authorization is not None:
        headers["Authorization"] = authorization
    return body, headers


@hypothesis_settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_any_request_gets_no_5xx_and_stores_nothing_unless_authentic_and_valid(
    web, redis_conn, request
):
    redis_conn.flushdb()
    body, headers = request

    answer = web.post("/webhooks/servicenow", data=body, headers=headers)

    assert answer.status_code < 500, answer.get_data(as_text=True)
    authentic = headers.get("Authorization") == f"Bearer {SERVICENOW_TOKEN}"
    if answer.status_code not in (200, 202):
        assert bridge_keys(redis_conn) == set()
    if not authentic:
        assert answer.status_code == 401


# --- authentication as operators run it ---------------------------------------------------------


def signed(body: bytes, secret: str = JIRA_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={digest}"}


def test_a_repeated_jira_delivery_id_is_a_duplicate_within_a_day(web, redis_conn):
    payload = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    body = json.dumps(payload).encode()
    first = {**signed(body), "X-Atlassian-Webhook-Identifier": "delivery-1"}
    other = {**signed(body), "X-Atlassian-Webhook-Identifier": "delivery-2"}

    answers = [web.post("/webhooks/jira", data=body, headers=h) for h in (first, first, other)]

    assert answers[0].status_code == 202
    assert (answers[1].status_code, answers[1].json["reason"]) == (200, "duplicate")
    assert answers[2].status_code == 200  # a new delivery of the same event: a duplicate too
    assert 0 < redis_conn.ttl("bridge:delivery:jira:delivery-1") <= 86400
    assert queued_jobs(redis_conn) == 1


def test_the_jira_automation_token_is_not_the_hmac_key(web):
    payload = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    answer = send(web, payload, headers={"Authorization": f"Bearer {JIRA_SECRET}"}, source="jira")
    assert answer.status_code == 401


def test_the_jira_automation_token_of_its_own_passes(settings, redis_conn):
    token = "jira-automation-token-for-tests"
    secrets = {**settings.secrets, "JIRA_AUTOMATION_TOKEN": token}
    web = create_app(replace(settings, secrets=secrets), redis=redis_conn).test_client()
    payload = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))

    answer = send(web, payload, headers={"Authorization": f"Bearer {token}"}, source="jira")

    assert answer.status_code == 202


def test_a_short_secret_stops_the_web_app_naming_the_variable(settings, redis_conn):
    secrets = {**settings.secrets, "SERVICENOW_WEBHOOK_TOKEN": "short"}
    with pytest.raises(ConfigError) as caught:
        create_app(replace(settings, secrets=secrets), redis=redis_conn)
    assert "SERVICENOW_WEBHOOK_TOKEN is 5 characters; a secret needs at least 16" in str(
        caught.value
    )
    assert "short" not in str(caught.value).replace("SERVICENOW", "")


def test_a_short_admin_token_is_refused_at_start():
    with pytest.raises(ConfigError, match="BRIDGE_ADMIN_TOKEN is 5 characters"):
        Settings.from_env({"BRIDGE_ADMIN_TOKEN": "admin"})


# --- the sandbox is for bridge dev ---------------------------------------------------------------


def test_the_sandbox_outside_bridge_dev_is_refused_unless_forced():
    with pytest.raises(ConfigError, match="BRIDGE_SANDBOX_FORCE=1"):
        Settings.from_env({"BRIDGE_SANDBOX": "1"})
    dev = Settings.from_env({"BRIDGE_SANDBOX": "1", "BRIDGE_STARTED_BY": "dev"})
    forced = Settings.from_env({"BRIDGE_SANDBOX": "1", "BRIDGE_SANDBOX_FORCE": "1"})
    assert (dev.sandbox, dev.sandbox_forced) == (True, False)
    assert (forced.sandbox, forced.sandbox_forced) == (True, True)


def test_a_forced_sandbox_is_warned_about_at_start_and_in_readyz(settings, redis_conn, caplog):
    forced = replace(settings, sandbox=True, sandbox_forced=True, sandbox_token="t" * 16)
    with caplog.at_level(logging.WARNING, logger="bridge"):
        web = create_app(forced, redis=redis_conn).test_client()

    assert "BRIDGE_SANDBOX_FORCE=1" in caplog.text
    assert "BRIDGE_SANDBOX_FORCE=1" in web.get("/readyz").json["warning"]


# --- honest but sloppy senders --------------------------------------------------------------------


def test_a_plain_string_cmdb_ci_is_the_cis_name(web, work, bigpanda):
    payload = {**servicenow_payload(SCHEDULED), "affected_cis": [], "cmdb_ci": "web-01"}

    assert send(web, payload).status_code == 202
    work()

    [plan] = bigpanda.plans()
    assert plan["condition"] == {"IN": ["host", ["web-01"]]}


def test_a_record_without_sys_mod_count_is_ordered_by_sys_updated_on(web, work, bigpanda):
    payload = servicenow_payload(SCHEDULED)
    del payload["sys_mod_count"]
    older = {**payload, "sys_updated_on": "2020-01-01 00:00:00"}

    assert send(web, payload).status_code == 202
    assert send(web, {**older, "state": "4"}).json["reason"] == "stale"


def test_a_change_without_short_description_still_gets_its_plan(web, work, bigpanda):
    payload = servicenow_payload(SCHEDULED)
    del payload["short_description"]

    assert send(web, payload).status_code == 202
    work()

    [plan] = bigpanda.plans()
    assert plan["name"] == "CHG0030412: no description"


def test_a_jira_issue_without_summary_still_gets_its_plan(web, work, bigpanda):
    payload = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    del payload["issue"]["fields"]["summary"]
    body = json.dumps(payload).encode()

    assert web.post("/webhooks/jira", data=body, headers=signed(body)).status_code == 202
    work()

    [plan] = bigpanda.plans()
    assert plan["name"] == "ITSM-1042: no summary"


def counting(connection_class: type) -> type:
    """The test Redis's own connection class (TCP or unix socket), counting what it sends: one
    send, one round trip (a pipeline or a script is one)."""

    class CountingConnection(connection_class):
        sends = 0

        def send_packed_command(self, command, check_health=True):
            CountingConnection.sends += 1
            return super().send_packed_command(command, check_health)

    return CountingConnection


def test_a_webhook_costs_two_redis_round_trips_for_a_new_key_and_one_to_join(settings, redis_conn):
    """The ingest script, then RQ's enqueue in one pipeline; a key whose reconcile waits already
    joins it in the script alone (README, "Delivery guarantees")."""
    own = redis_conn.connection_pool
    CountingConnection = counting(own.connection_class)
    pool = redis.ConnectionPool(connection_class=CountingConnection, **own.connection_kwargs)
    counted = redis.Redis(connection_pool=pool)
    web = create_app(settings, redis=counted).test_client()
    payload = servicenow_payload("servicenow_change_scheduled.json")
    send(web, {**payload, "number": "CHG-WARMUP"})  # scripts loaded, the ledger marker read

    CountingConnection.sends = 0
    first = send(web, payload)
    new_key = CountingConnection.sends
    CountingConnection.sends = 0
    newer = send(web, {**payload, "sys_mod_count": "10", "short_description": "moved"})
    joined = CountingConnection.sends

    assert first.status_code == newer.status_code == 202
    assert newer.json["job_id"] == first.json["job_id"]  # it joined the waiting reconcile
    assert (new_key, joined) == (2, 1)


def chunked(web, body: bytes):
    """A body sent chunked, with no Content-Length, as the server hands it over dechunked."""
    return web.post(
        "/webhooks/servicenow",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers=AUTH,
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )


def test_a_chunked_body_over_the_limit_is_a_413_not_cut(settings, redis_conn):
    web = create_app(replace(settings, max_body_bytes=2048), redis=redis_conn).test_client()
    payload = servicenow_payload("servicenow_change_scheduled.json")
    over = json.dumps({**payload, "description": "x" * 4096}).encode()

    refused = chunked(web, over)

    assert refused.status_code == 413
    assert "over the limit of 2,048 bytes" in refused.json["detail"]
    assert redis_conn.keys("bridge:change:*") == [] and redis_conn.keys("rq:*") == []


def test_a_chunked_body_within_the_limit_is_read_whole(web):
    body = json.dumps(servicenow_payload("servicenow_change_scheduled.json")).encode()
    assert chunked(web, body).status_code == 202

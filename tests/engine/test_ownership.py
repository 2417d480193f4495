"""What the bridge touches: only plans with its own instance's and source's mark.

Against the sandbox over real HTTP that already holds plans the bridge did not make: one made by
hand, a running change freeze, one left by another integration under a change number, and one
marked by another instance of the bridge. Through webhooks, sweeps, a Redis flush and rebuild,
two instances on one organization and adoption on request, none of them ever sees a write.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from bridge_harness import (
    JIRA_SECRET,
    SANDBOX_TOKEN,
    SERVICENOW_TOKEN,
    bridge_settings,
    drain,
    move_scheduled_jobs,
    queued_jobs,
    run_worker,
    sample_payload,
    servicenow_payload,
    sweep_now,
)
from faulty_bigpanda import WRITES, FaultPlan, serve_faulty_bigpanda
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from redis import Redis

from bridge.app import create_app
from bridge.errors import TransientError
from bridge.jobs.queue import store_of
from bridge.model import ChangeRef

PLANS = "/resources/v2.0/maintenance-plans"
KEY = "CHG0030412"  # the sample change's number
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
WRITE = re.compile(r"^(PATCH|DELETE) |^POST .*/stop$")
MAPPINGS = Path(__file__).parent.parent.parent / "mappings"
STAMP = "%Y-%m-%d %H:%M:%S"


def sandbox_call(bigpanda, method: str, path: str = "", body: Any = None) -> requests.Response:
    return requests.request(
        method,
        bigpanda.url + PLANS + path,
        headers={"Authorization": f"Bearer {SANDBOX_TOKEN}"},
        json=body,
        timeout=5,
    )


def foreign_plan(bigpanda, key: str, start_in: int, tags: list[dict] | None = None) -> dict:
    now = int(time.time())
    body = {
        "name": f"not the bridge's: {key}",
        "condition": {"=": ["host", {"type": "regex", "value": "*"}]},  # a freeze: everything
        "start": now + start_in,
        "end": now + start_in + 7200,
        "maintenance_key": key,
        "custom_tags": tags or [],
    }
    answer = sandbox_call(bigpanda, "POST", body=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


@pytest.fixture
def foreign(bigpanda) -> dict[str, dict]:
    """The plans an organization already holds before the bridge's first deploy, by role."""
    plans = {
        "by_hand": foreign_plan(bigpanda, "HAND-1", 3600),
        "freeze": foreign_plan(bigpanda, "FREEZE-1", -60),  # running
        "other_integration": foreign_plan(
            bigpanda, KEY, 3600, [{"name": "source", "value": "servicenow"}]
        ),
        "other_instance": foreign_plan(
            bigpanda,
            KEY,
            3600,
            [{"name": "bridge_owner", "value": "maintenance-bridge/staging/servicenow"}],
        ),
    }
    bigpanda.requests.clear()
    return plans


def writes_to(bigpanda, plans: dict[str, dict]) -> list[str]:
    """Every write request BigPanda received for one of `plans`."""
    ids = {plan["id"] for plan in plans.values()}
    calls = [f"{method} {path}" for method, path in bigpanda.requests]
    return [call for call in calls if WRITE.match(call) and any(i in call for i in ids)]


def unchanged(bigpanda, plans: dict[str, dict]) -> None:
    """Each plan still holds exactly what its maker wrote."""
    for role, plan in plans.items():
        now = sandbox_call(bigpanda, "GET", f"/{plan['id']}").json()
        assert {**now, "status": None} == {**plan, "status": None}, role


def ours(bigpanda, key: str = KEY, instance: str = "default") -> list[dict]:
    mark = {"name": "bridge_owner", "value": f"maintenance-bridge/{instance}/servicenow"}
    return [
        plan
        for plan in bigpanda.plans()
        if plan["maintenance_key"] == key
        and mark in plan["custom_tags"]
        and plan["status"] != "done"
    ]


def flush_bridge(redis: Redis) -> None:
    """Redis replaced under the bridge: its keys and RQ's are gone (the sandbox's are not)."""
    for name in redis.scan_iter("bridge:*"):
        redis.delete(name)
    for name in redis.scan_iter("rq:*"):
        redis.delete(name)


def sweep_and_work(redis: Redis, settings) -> None:
    sweep_now(redis, settings)
    run_worker(redis, settings)


def send(web, payload: dict, headers: dict = AUTH):
    return web.post("/webhooks/servicenow", json=payload, headers=headers)


def newer(payload: dict, by: int = 1, **fields: Any) -> dict:
    return {**payload, **fields, "sys_mod_count": str(int(payload["sys_mod_count"]) + by)}


def moved(stamp: str, minutes: int) -> str:
    """A ServiceNow date `minutes` later."""
    return (datetime.strptime(stamp, STAMP) + timedelta(minutes=minutes)).strftime(STAMP)


# --- a first deploy against an organization that holds foreign plans --------------------------


def test_a_first_deploy_sweeps_and_flushes_touch_no_foreign_plan(
    web, work, bigpanda, foreign, settings, redis_conn
):
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    assert send(web, scheduled).status_code == 202
    work()  # the ledger's first rebuild lists every plan: it takes none of the foreign ones
    sweep_and_work(redis_conn, settings)
    [plan] = ours(bigpanda)

    flush_bridge(redis_conn)
    sweep_and_work(redis_conn, settings)  # nothing known: nothing visited
    rescheduled = newer(scheduled, end_date=moved(scheduled["end_date"], minutes=30))
    assert send(web, rescheduled).status_code == 202
    work()  # rebuilt from the listing: our plan found again by its mark
    sweep_and_work(redis_conn, settings)

    assert writes_to(bigpanda, foreign) == []
    unchanged(bigpanda, foreign)
    [again] = ours(bigpanda)
    assert again["id"] == plan["id"]  # recovered after the flush, not created twice
    assert again["end"] == plan["end"] + 1800
    known = {change.key for change in store_of(redis_conn).known_changes()}
    assert known == {KEY}  # HAND-1 and FREEZE-1 are not the bridge's to sweep


def test_after_a_flush_a_sweep_keeps_the_bridges_plans_until_their_change_speaks_again(
    web, work, bigpanda, settings, redis_conn
):
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    send(web, scheduled)
    work()
    [plan] = ours(bigpanda)
    flush_bridge(redis_conn)
    other = {**scheduled, "number": "CHG0099999"}
    send(web, other)
    work()  # rebuilds the ledger: KEY's plan is remembered, what KEY wants is not known
    bigpanda.requests.clear()

    sweep_and_work(redis_conn, settings)

    assert [p["id"] for p in ours(bigpanda)] == [plan["id"]]
    assert writes_to(bigpanda, {"ours": plan}) == []


def test_a_cancel_deletes_only_the_bridges_plan_under_a_shared_key(
    web, work, bigpanda, foreign, redis_conn
):
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    send(web, scheduled)
    work()
    flush_bridge(redis_conn)  # and with the memory lost in between

    canceled = newer(scheduled, state="4")
    assert send(web, canceled).json["action"] == "remove"
    work()

    assert ours(bigpanda) == []
    assert writes_to(bigpanda, foreign) == []
    unchanged(bigpanda, foreign)


def test_a_plan_whose_mark_was_removed_by_hand_is_left_alone_once_a_listing_shows_it(
    web, work, bigpanda, settings, redis_conn
):
    """A reconcile decides from what the bridge last wrote (no read); the drift sweep's listing
    sees the mark gone, and from then on the plan is not the bridge's."""
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    send(web, scheduled)
    work()
    [plan] = ours(bigpanda)
    sandbox_call(bigpanda, "PATCH", f"/{plan['id']}", {"custom_tags": []})  # taken over by hand
    bigpanda.requests.clear()

    sweep_and_work(redis_conn, settings)
    send(web, newer(scheduled, state="4"))
    work()

    assert writes_to(bigpanda, {"taken": plan}) == []
    history = store_of(redis_conn).history(ChangeRef("servicenow", KEY))
    assert "not_ours" in [entry["event"] for entry in history]


# --- two instances of the bridge on one organization --------------------------------------------


@pytest.fixture
def staging_redis(redis_url):
    """A second Redis database for a second bridge instance (its own memory)."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        url = f"{redis_url}?db=1"  # urlunsplit would drop the empty host: unix:/path
    else:
        db = int(parts.path.strip("/") or 0)
        url = urlunsplit(parts._replace(path=f"/{(db + 1) % 16}"))
    conn = Redis.from_url(url)
    conn.flushdb()
    yield conn
    conn.flushdb()


def test_two_instances_on_one_organization_each_manage_only_their_own_plan(
    web, work, bigpanda, foreign, settings, redis_conn, staging_redis
):
    staging = replace(settings, instance="staging")
    staging_web = create_app(staging, redis=staging_redis).test_client()
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    del foreign["other_instance"]  # staging's own plan of KEY, made by an earlier staging run
    flush_bridge(staging_redis)

    send(web, scheduled)
    send(staging_web, scheduled)
    work()
    run_worker(staging_redis, staging)
    [production] = ours(bigpanda)
    staging_plans = ours(bigpanda, instance="staging")
    assert len(staging_plans) == 1  # the earlier run's plan, recovered by its mark

    send(staging_web, newer(scheduled, state="4"))  # staging's copy of the change is cancelled
    run_worker(staging_redis, staging)
    flush_bridge(redis_conn)
    sweep_and_work(redis_conn, settings)
    send(web, newer(scheduled, by=2))
    work()

    assert ours(bigpanda, instance="staging") == []
    assert [plan["id"] for plan in ours(bigpanda)] == [production["id"]]
    assert writes_to(bigpanda, foreign) == []
    assert writes_to(bigpanda, {"production": production}) == []  # in sync: never rewritten
    unchanged(bigpanda, foreign)


# --- adoption on request ----------------------------------------------------------------------


@pytest.fixture
def adopting(tmp_path, settings, redis_conn):
    """The shipped mappings, with servicenow.yaml allowing the adoption of unmarked plans."""
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, folder)
    path = folder / "servicenow.yaml"
    path.write_text(path.read_text() + "\nadopt_unmarked_plans: true\n")
    adopting = replace(settings, mappings_dir=folder)
    return adopting, create_app(adopting, redis=redis_conn).test_client()


def test_adoption_takes_exactly_the_unmarked_plan_a_webhook_names_and_marks_it(
    adopting, bigpanda, foreign, redis_conn
):
    settings, web = adopting
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    sweep_and_work(redis_conn, settings)  # a sweep or rebuild alone adopts nothing

    send(web, scheduled)
    run_worker(redis_conn, settings)

    adopted = foreign.pop("other_integration")
    [plan] = ours(bigpanda)
    assert plan["id"] == adopted["id"]  # taken over and marked, not a second plan
    assert (plan["start"], plan["name"]) != (adopted["start"], adopted["name"])
    assert writes_to(bigpanda, foreign) == []
    unchanged(bigpanda, foreign)
    history = store_of(redis_conn).history(ChangeRef("servicenow", KEY))
    assert "adopted" in [entry["event"] for entry in history]


def test_an_adopted_running_plan_gets_only_its_end_and_is_adopted_again_after_a_flush(
    adopting, bigpanda, foreign, redis_conn
):
    settings, web = adopting
    freeze = foreign.pop("freeze")
    started = servicenow_payload("servicenow_change_scheduled.json", timedelta(minutes=-5))
    implementing = {**started, "number": "FREEZE-1", "state": "-1"}
    later_end = newer(implementing, end_date=moved(implementing["end_date"], minutes=45))

    first = send(web, implementing)
    run_worker(redis_conn, settings)
    end_after_adoption = sandbox_call(bigpanda, "GET", f"/{freeze['id']}").json()["end"]
    flush_bridge(redis_conn)
    send(web, later_end)
    run_worker(redis_conn, settings)
    send(web, newer(later_end, state="4"))
    run_worker(redis_conn, settings)

    assert first.status_code == 202, first.json
    path = f"{urlsplit(bigpanda.url).path}{PLANS}/{freeze['id']}"
    # A running plan takes only a new end (the sandbox refuses anything else), then is stopped.
    assert writes_to(bigpanda, {"freeze": freeze}) == [f"PATCH {path}", f"PATCH {path}",
                                                        f"POST {path}/stop"]  # fmt: skip
    assert end_after_adoption != freeze["end"]
    assert ours(bigpanda, "FREEZE-1") == []  # never marked: a running plan cannot take the tag
    assert writes_to(bigpanda, foreign) == []
    history = store_of(redis_conn).history(ChangeRef("servicenow", "FREEZE-1"))
    assert [entry["event"] for entry in history].count("adopted") == 1  # since the flush


# --- blast radius: hostile CI names ------------------------------------------------------------


def with_cis(payload: dict, *names: str) -> dict:
    cis = [{"name": name, "sys_class_name": "cmdb_ci_linux_server"} for name in names]
    return {**payload, "affected_cis": cis, "cmdb_ci": ""}


@pytest.mark.parametrize("name", ["*", "?", "**", " * ", "*?*"])
def test_a_ci_named_only_by_wildcards_is_a_422_naming_it(web, redis_conn, name):
    payload = with_cis(servicenow_payload("servicenow_change_scheduled.json"), "web-01", name)

    answer = send(web, payload)

    assert answer.status_code == 422
    [error] = answer.json["errors"]
    assert error["field"] in ("cis", "affected_cis[1]")
    assert repr(name.strip()) in error["message"] or "CI name" in error["message"]
    assert queued_jobs(redis_conn) == 0


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_or_blank_ci_name_is_a_422(web, redis_conn, name):
    payload = with_cis(servicenow_payload("servicenow_change_scheduled.json"), name)

    answer = send(web, payload)

    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "affected_cis[0]"
    assert queued_jobs(redis_conn) == 0


def test_a_star_inside_a_ci_name_is_a_literal_under_exact_match(web, work, bigpanda):
    send(web, with_cis(servicenow_payload("servicenow_change_scheduled.json"), "web-*"))
    work()

    [plan] = ours(bigpanda)
    assert plan["condition"] == {"IN": ["host", ["web-*"]]}  # no regex object: no wildcard


def test_a_change_listing_20000_cis_is_refused_over_max_cis(tmp_path, settings, redis_conn):
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, folder)
    path = folder / "servicenow.yaml"
    path.write_text(
        path.read_text().replace("  pad_before: 0m", "  max_cis: 500\n  pad_before: 0m")
    )
    strict = replace(settings, mappings_dir=folder, max_body_bytes=8 * 1024 * 1024)
    web = create_app(strict, redis=redis_conn).test_client()
    names = [f"lnx-{n:05d}" for n in range(20_000)]

    answer = send(web, with_cis(servicenow_payload("servicenow_change_scheduled.json"), *names))

    assert answer.status_code == 422
    assert "20,000 CIs" in answer.json["detail"]
    assert "max_cis of 500" in answer.json["detail"]
    assert queued_jobs(redis_conn) == 0


# --- two sources with equal keys; sane versions ---------------------------------------------------


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={digest}"}


def send_jira(web, payload: dict):
    body = json.dumps(payload).encode()
    return web.post("/webhooks/jira", data=body, headers=signed(body))


def test_a_jira_delete_leaves_the_servicenow_change_of_the_same_key_alone(
    web, work, bigpanda, redis_conn
):
    scheduled = {**servicenow_payload("servicenow_change_scheduled.json"), "number": "ITSM-1042"}
    updated = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    deleted = sample_payload("jira", "jira_webhook_issue_deleted_change.json", timedelta(hours=2))
    deleted["issue"] = {**deleted["issue"], "key": "ITSM-1042", "id": updated["issue"]["id"]}
    send(web, scheduled)
    send_jira(web, updated)
    work()
    assert len([p for p in bigpanda.plans() if p["maintenance_key"] == "ITSM-1042"]) == 2

    gone = send_jira(web, deleted)
    assert gone.status_code == 202, gone.json
    work()
    later = send(web, newer(scheduled, short_description="Still on"))
    work()

    assert later.status_code == 202  # not stale: the Jira delete's version is Jira's alone
    [plan] = [p for p in bigpanda.plans() if p["maintenance_key"] == "ITSM-1042"]
    assert plan["name"] == "ITSM-1042: Still on"
    assert "maintenance-bridge/default/servicenow" in json.dumps(plan["custom_tags"])


@pytest.mark.parametrize("count", ["1000000001", "-1", "9007199254740991"])
def test_a_sys_mod_count_outside_the_sane_range_is_a_422(web, redis_conn, count):
    payload = {**servicenow_payload("servicenow_change_scheduled.json"), "sys_mod_count": count}

    answer = send(web, payload)

    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "sys_mod_count"
    assert queued_jobs(redis_conn) == 0


def test_a_version_dated_two_days_ahead_is_a_422_and_does_not_make_the_key_deaf(web, redis_conn):
    payload = servicenow_payload("servicenow_change_scheduled.json")
    ahead = (datetime.now(UTC) + timedelta(days=2)).strftime(STAMP)

    refused = send(web, newer(payload, sys_updated_on=ahead))
    accepted = send(web, payload)

    assert refused.status_code == 422
    assert refused.json["errors"][0]["field"] == "sys_updated_on"
    assert "ahead of the bridge's clock" in refused.json["errors"][0]["message"]
    assert accepted.status_code == 202


def test_a_jira_timestamp_two_days_ahead_is_a_422(web, redis_conn):
    updated = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    updated["timestamp"] = int((time.time() + 2 * 86400) * 1000)

    answer = send_jira(web, updated)

    assert answer.status_code == 422
    assert answer.json["errors"][0]["field"] == "timestamp"


# --- the property: whatever happens, a foreign plan sees no write --------------------------------

FOREIGN_MARKS = (
    None,  # by hand, or another integration
    "maintenance-bridge/staging/servicenow",  # another instance
    "maintenance-bridge/default/jira",  # this instance, another source
    "another-tool/default/servicenow",
)
STORY_KEYS = ("CHG0070001", "CHG0070002", "HAND-1")
STATES = {"Scheduled": "-2", "Implement": "-1", "Canceled": "4", "Closed": "3"}


@st.composite
def foreign_sets(draw) -> list[tuple[str, int, str | None]]:
    """(maintenance_key, start offset, mark) of plans others made: planned or running."""
    spec = st.tuples(
        st.sampled_from(STORY_KEYS),
        st.sampled_from((-600, 1800, 7200)),
        st.sampled_from(FOREIGN_MARKS),
    )
    return draw(st.lists(spec, min_size=1, max_size=4))


@st.composite
def steps(draw) -> list[tuple]:
    """Events of the story's changes, interleaved with work, retries, sweeps and flushes."""
    kinds = st.sampled_from(("event", "event", "event", "work", "retries", "sweep", "flush"))
    found = []
    for count in range(draw(st.integers(1, 10))):
        kind = draw(kinds)
        if kind == "event":
            key = draw(st.sampled_from(STORY_KEYS))
            state = draw(st.sampled_from(tuple(STATES)))
            found.append(("event", key, count, state, draw(st.integers(-1, 6))))
        else:
            found.append((kind,))
    return found


def story_event(key: str, count: int, state: str, slot: int) -> dict:
    now = int(time.time()) // 60 * 60
    start = now + 600 * slot  # slot -1: started ten minutes ago
    return {
        "number": key,
        "sys_mod_count": str(count),
        "state": STATES[state],
        "short_description": "story",
        "start_date": datetime.fromtimestamp(start, UTC).strftime(STAMP),
        "end_date": datetime.fromtimestamp(start + 3600, UTC).strftime(STAMP),
        "affected_cis": [{"name": f"{key.lower()}-host", "sys_class_name": "cmdb_ci_server"}],
    }


@pytest.fixture
def faulty(redis_url, redis_conn):
    with serve_faulty_bigpanda(redis_conn) as bigpanda:
        story_settings = replace(
            bridge_settings(redis_url, bigpanda.url),
            read_timeout=0.5,
            connect_timeout=2.0,
            rate_limit=50.0,  # the pace is not what this property is about
        )
        yield bigpanda, story_settings, create_app(story_settings, redis=redis_conn).test_client()


@hypothesis_settings(
    max_examples=15,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    foreign_specs=foreign_sets(),
    story=steps(),
    rate=st.sampled_from((0.0, 0.2, 0.4)),
    seed=st.integers(0, 2**32 - 1),
)
def test_for_any_story_faults_and_flushes_foreign_plans_see_no_write(
    faulty, redis_conn, foreign_specs, story, rate, seed
):
    bigpanda, settings, web = faulty
    redis_conn.flushdb()
    bigpanda.reset(FaultPlan())
    foreign = {
        f"f{n}": foreign_plan(
            bigpanda, key, start_in, [{"name": "bridge_owner", "value": mark}] if mark else []
        )
        for n, (key, start_in, mark) in enumerate(foreign_specs)
    }
    bigpanda.reset(FaultPlan(rate=rate, seed=seed, late_delay=0.8))

    for step in story:
        if step[0] == "event":
            send(web, story_event(*step[1:]))
        elif step[0] == "flush":
            flush_bridge(redis_conn)
        elif step[0] == "sweep":
            with contextlib.suppress(TransientError):  # a faulted listing: no sweep this time
                sweep_now(redis_conn, settings)
        else:
            if step[0] == "retries":
                move_scheduled_jobs(redis_conn)
            run_worker(redis_conn, settings)
    drain(redis_conn, settings, rounds=4)

    ids = {plan["id"] for plan in foreign.values()}
    writes = [
        f"{a.method} {a.path}"
        for a in bigpanda.arrivals
        if a.method in WRITES and any(plan_id in a.path for plan_id in ids)
    ]
    assert writes == []
    bigpanda.reset(FaultPlan())
    unchanged(bigpanda, foreign)

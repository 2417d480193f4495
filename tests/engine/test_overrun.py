"""Overrun: a running plan follows a change still being worked on, step by step up to its cap,
and ends when the change moves on."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bridge_harness import SERVICENOW_TOKEN, run_worker, servicenow_payload

from bridge.app import create_app
from bridge.engine.overrun import next_end
from bridge.jobs.overrun_pass import extend_overruns, run_pass_once
from bridge.jobs.queue import queue_of, store_of
from bridge.mapping.loader import load_mappings
from bridge.model import ChangeRef

MAPPINGS = Path(__file__).parent.parent.parent / "mappings"
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
STAMP = "%Y-%m-%d %H:%M:%S"
KEY = "CHG0030412"
CHANGE = ChangeRef("servicenow", KEY)
POLICY = (600, 1800, 3600)  # near 10 min, step 30 min, cap 1 h


@pytest.mark.parametrize(
    ("current", "now", "expected"),
    [
        (10_000, 9_500, 11_800),  # 500 s left: within 10 min, one step
        (10_000, 9_000, None),  # 1,000 s left: not near yet
        (13_000, 12_500, 13_600),  # a step would pass the cap: up to the cap
        (13_600, 13_500, None),  # at the cap
        (10_000, 10_000, None),  # over: not running
        (10_000, 500, None),  # not started
    ],
)
def test_next_end_steps_when_near_and_stops_at_the_cap(current, now, expected):
    assert next_end(10_000, current, 1_000, now, POLICY) == expected


@pytest.fixture
def following(tmp_path, settings, redis_conn):
    """The shipped servicenow.yaml with overrun on while the change is in Implement."""
    folder = tmp_path / "mappings"
    shutil.copytree(MAPPINGS, folder)
    path = folder / "servicenow.yaml"
    text = path.read_text().replace(
        "  - name: scheduled-or-implementing\n    states: [Scheduled, Implement]  # labels or "
        "numbers (-2, -1)\n    plan: {}",
        "  - name: scheduled-or-implementing\n    states: [Scheduled, Implement]\n    plan:\n"
        "      overrun: {states: [Implement], near: 10m, step: 30m, cap: 1h}",
    )
    assert "overrun:" in text
    path.write_text(text)
    overrunning = replace(settings, mappings_dir=folder)
    return overrunning, create_app(overrunning, redis=redis_conn).test_client()


def implementing(ends_in: timedelta) -> dict:
    """The sample change, started 20 minutes ago, in Implement, planned to end in `ends_in`."""
    payload = servicenow_payload("servicenow_change_scheduled.json", timedelta(minutes=-20))
    end = (datetime.now(UTC) + ends_in).strftime(STAMP)
    return {**payload, "state": "-1", "end_date": end, "work_start": ""}


def newer(payload: dict, **fields) -> dict:
    return {**payload, **fields, "sys_mod_count": str(int(payload["sys_mod_count"]) + 1)}


def test_an_overrunning_change_is_extended_step_by_step_to_the_cap_then_ended_by_its_close(
    following, bigpanda, redis_conn
):
    settings, web = following
    store, queue = store_of(redis_conn), queue_of(redis_conn)
    payload = implementing(timedelta(minutes=5))
    assert web.post("/webhooks/servicenow", json=payload, headers=AUTH).status_code == 202
    run_worker(redis_conn, settings)
    [plan] = bigpanda.plans()
    planned_end = plan["end"]
    assert plan["status"] == "running"

    ends = []
    for _ in range(4):  # as the overrun pass would, each time the end comes near
        now = bigpanda.plans()[0]["end"] - 300
        extend_overruns(store, queue, now)
        run_worker(redis_conn, settings)
        ends.append(bigpanda.plans()[0]["end"])

    assert ends == [planned_end + 1800, planned_end + 3600, planned_end + 3600, planned_end + 3600]
    history = [entry for entry in store.history(CHANGE) if entry["event"] == "extended"]
    assert [(e["end_was"], e["end"]) for e in reversed(history)] == [
        (planned_end, planned_end + 1800),
        (planned_end + 1800, planned_end + 3600),
    ]
    patches = [path for method, path in bigpanda.requests if method == "PATCH"]
    assert len(patches) == 2  # one `end` update per extension, nothing else

    closed = newer(payload, state="3", work_end=datetime.now(UTC).strftime(STAMP))
    web.post("/webhooks/servicenow", json=closed, headers=AUTH)
    run_worker(redis_conn, settings)

    assert bigpanda.plans()[0]["status"] == "done"  # stopped: the work is over
    assert store.ending_before(time.time() + 86400) == []  # nothing to follow any more


def test_a_new_planned_end_from_the_sender_replaces_the_extension(following, bigpanda, redis_conn):
    settings, web = following
    store, queue = store_of(redis_conn), queue_of(redis_conn)
    payload = implementing(timedelta(minutes=5))
    web.post("/webhooks/servicenow", json=payload, headers=AUTH)
    run_worker(redis_conn, settings)
    planned_end = bigpanda.plans()[0]["end"]
    extend_overruns(store, queue, planned_end - 300)
    run_worker(redis_conn, settings)
    assert bigpanda.plans()[0]["end"] == planned_end + 1800

    moved = (datetime.now(UTC) + timedelta(hours=3)).strftime(STAMP)
    web.post("/webhooks/servicenow", json=newer(payload, end_date=moved), headers=AUTH)
    run_worker(redis_conn, settings)

    new_end = int(datetime.strptime(moved, STAMP).replace(tzinfo=UTC).timestamp())
    assert bigpanda.plans()[0]["end"] == new_end


def test_a_change_outside_the_overrun_states_is_never_extended(following, bigpanda, redis_conn):
    settings, web = following
    payload = {**implementing(timedelta(minutes=5)), "state": "-2"}  # Scheduled, though started
    web.post("/webhooks/servicenow", json=payload, headers=AUTH)
    run_worker(redis_conn, settings)
    planned_end = bigpanda.plans()[0]["end"]

    assert extend_overruns(store_of(redis_conn), queue_of(redis_conn), planned_end - 300) == 0
    assert bigpanda.plans()[0]["end"] == planned_end


def test_one_worker_at_a_time_runs_the_pass(redis_conn):
    queue = queue_of(redis_conn)
    assert run_pass_once(redis_conn, queue, time.time()) == 0
    assert run_pass_once(redis_conn, queue, time.time()) is None  # another ran it just now


@pytest.mark.parametrize(
    ("overrun", "problem"),
    [
        ("{states: [Implement], step: 30m}", "cap"),
        ("{step: 30m, cap: 4h}", "states"),
        ("{states: [Implement], step: 0m, cap: 4h}", "step"),
        ("{states: [], step: 30m, cap: 4h}", "states"),
    ],
)
def test_an_incomplete_overrun_setting_is_refused_at_load(tmp_path, overrun, problem):
    shutil.copy(MAPPINGS / "servicenow.yaml", tmp_path)
    path = tmp_path / "servicenow.yaml"
    path.write_text(
        path.read_text().replace("  pad_after: 0m\n", f"  pad_after: 0m\n  overrun: {overrun}\n")
    )
    with pytest.raises(Exception, match=problem):
        load_mappings(tmp_path, {"SERVICENOW_WEBHOOK_TOKEN": "x" * 16})

"""The worker process with real processes: a slow ServiceNow holds up no plan, since notes run
in a worker of their own (a child of `bridge worker`), which stops with it."""

from __future__ import annotations

import shutil
import signal
import time
from dataclasses import replace
from pathlib import Path

import pytest
from bridge_harness import (
    SERVICENOW_TOKEN,
    bridge_settings,
    descendants,
    kill_tree,
    serve_sandbox,
    servicenow_payload,
    start_worker_process,
    wait_for,
    worker_env,
)
from scripted_bigpanda import Reply, ScriptedBigPanda

from bridge.app import create_app

pytestmark = pytest.mark.slow

REPO = Path(__file__).parent.parent.parent
API_PASSWORD = "servicenow-api-password-for-tests"
NOTE_STALL_SECONDS = 12.0  # ServiceNow answering a note this slowly (the measurement)
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}


@pytest.fixture
def slow_itsm():
    with ScriptedBigPanda(default=Reply(200, {"result": {}}, delay=NOTE_STALL_SECONDS)) as server:
        yield server


@pytest.fixture
def noting(tmp_path, redis_url, redis_conn, slow_itsm):
    """Settings and a web app whose ServiceNow mapping writes notes to the slow ServiceNow."""
    folder = tmp_path / "mappings"
    shutil.copytree(REPO / "mappings", folder)
    path = folder / "servicenow.yaml"
    path.write_text(
        path.read_text() + f"\nwrite_back:\n  api: servicenow\n  url: {slow_itsm.url}\n"
        "  record: '{{ sys_id }}'\n"
        "  auth: {type: basic, username: bridge, secret_env: SERVICENOW_API_PASSWORD}\n"
    )
    with serve_sandbox(redis_conn) as bigpanda:
        settings = bridge_settings(redis_url, bigpanda.url)
        settings = replace(
            settings,
            mappings_dir=folder,
            secrets={**settings.secrets, "SERVICENOW_API_PASSWORD": API_PASSWORD},
        )
        yield settings, bigpanda, create_app(settings, redis=redis_conn).test_client()


@pytest.fixture
def worker(noting, redis_url):
    settings, bigpanda, _ = noting
    env = worker_env(redis_url, bigpanda.url, BRIDGE_MAPPINGS=str(settings.mappings_dir),
                     SERVICENOW_API_PASSWORD=API_PASSWORD)  # fmt: skip
    process = start_worker_process(env)
    yield process
    kill_tree(process)


def change(number: str, sys_id: str) -> dict:
    return {**servicenow_payload("servicenow_change_scheduled.json"), "number": number,
            "sys_id": sys_id}  # fmt: skip


def test_a_plan_is_created_on_time_while_another_changes_note_hangs(noting, worker, slow_itsm):
    _, bigpanda, web = noting
    first = web.post("/webhooks/servicenow", json=change("CHG0040001", "a" * 32), headers=AUTH)
    assert first.status_code == 202
    # The first plan's note is in flight:
    wait_for(lambda: len(slow_itsm.received) >= 1, 30, step=0.05)
    note_sent = time.monotonic()

    second = web.post("/webhooks/servicenow", json=change("CHG0040002", "b" * 32), headers=AUTH)
    assert second.status_code == 202
    wait_for(
        lambda: {p["maintenance_key"] for p in bigpanda.plans()} >= {"CHG0040002"}, 10, step=0.05
    )

    # The second plan was made while ServiceNow still held the first note unanswered.
    assert time.monotonic() - note_sent < NOTE_STALL_SECONDS


def test_the_notes_worker_stops_with_the_worker(worker):
    wait_for(lambda: len(descendants(worker.pid)) >= 1, 30, step=0.05)  # the notes worker is up
    children = descendants(worker.pid)

    worker.send_signal(signal.SIGTERM)
    worker.wait(30)

    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 20, step=0.05)

"""Write-back: one note on the change per plan event, exactly once, never a loop; against fakes
of ServiceNow's Table API and Jira's comment API over real HTTP, with faults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from bridge_harness import (
    JIRA_SECRET,
    SERVICENOW_TOKEN,
    move_scheduled_jobs,
    run_worker,
    sample_payload,
    servicenow_payload,
)
from scripted_bigpanda import Reply, ScriptedBigPanda

from bridge.app import create_app
from bridge.jobs.queue import notes_queue_of, store_of
from bridge.model import ChangeRef

MAPPINGS = Path(__file__).parent.parent.parent / "mappings"
AUTH = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
SYS_ID = "5df12d5c5fb7cc7501846bb5e2e08da3"  # the sample change's
NOTE_PATH = f"/api/now/table/change_request/{SYS_ID}"
API_PASSWORD = "servicenow-api-password-for-tests"


@pytest.fixture
def itsm():
    with ScriptedBigPanda(default=Reply(200, {"result": {}})) as server:
        yield server


def with_write_back(tmp_path, name: str, block: str) -> Path:
    folder = tmp_path / "mappings"
    if not folder.exists():
        shutil.copytree(MAPPINGS, folder)
    path = folder / name
    path.write_text(path.read_text() + "\n" + block)
    return folder


@pytest.fixture
def noting(tmp_path, settings, redis_conn, itsm):
    block = (
        f"write_back:\n  api: servicenow\n  url: {itsm.url}\n  record: '{{{{ sys_id }}}}'\n"
        "  auth: {type: basic, username: bridge, secret_env: SERVICENOW_API_PASSWORD}\n"
    )
    folder = with_write_back(tmp_path, "servicenow.yaml", block)
    secrets = {**settings.secrets, "SERVICENOW_API_PASSWORD": API_PASSWORD}
    noted = replace(settings, mappings_dir=folder, secrets=secrets)
    return noted, create_app(noted, redis=redis_conn).test_client()


def notes(itsm, path: str = NOTE_PATH) -> list[str]:
    return [
        r.json.get("work_notes") or r.json.get("body")
        for r in itsm.received
        if r.path == path and r.json is not None
    ]


def newer(payload: dict, **fields) -> dict:
    return {**payload, **fields, "sys_mod_count": str(int(payload["sys_mod_count"]) + 1)}


def test_each_plan_event_writes_one_note_on_the_record(noting, itsm, redis_conn):
    settings, web = noting
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    rescheduled = servicenow_payload("servicenow_change_rescheduled.json")
    for payload in (scheduled, rescheduled, newer(rescheduled, state="4")):
        assert web.post("/webhooks/servicenow", json=payload, headers=AUTH).status_code == 202
        run_worker(redis_conn, settings)

    written = notes(itsm)
    assert [text.split(":")[0] for text in written] == [
        "BigPanda maintenance plan created",
        "BigPanda maintenance plan moved",
        "BigPanda maintenance plan deleted",
    ]
    assert "lnx-db-prod-01" in written[0]  # the CIs it silences
    [first] = [r for r in itsm.received if r.path == NOTE_PATH][:1]
    expected = base64.b64encode(f"bridge:{API_PASSWORD}".encode()).decode()
    assert (first.method, first.headers["Authorization"]) == ("PATCH", f"Basic {expected}")
    history = store_of(redis_conn).history(ChangeRef("servicenow", "CHG0030412"))
    assert [e["event"] for e in history].count("note") == 3


def test_the_webhook_a_note_triggers_makes_no_second_note(noting, itsm, redis_conn):
    settings, web = noting
    scheduled = servicenow_payload("servicenow_change_scheduled.json")
    web.post("/webhooks/servicenow", json=scheduled, headers=AUTH)
    run_worker(redis_conn, settings)
    # The Business Rule fires on the work_notes update: same change, one more update.
    echo = newer(scheduled, work_notes="BigPanda maintenance plan created: ...")
    web.post("/webhooks/servicenow", json=echo, headers=AUTH)
    web.post("/webhooks/servicenow", json=echo, headers=AUTH)  # and a duplicate of it
    run_worker(redis_conn, settings)

    assert len(notes(itsm)) == 1


def test_a_note_that_fails_is_retried_until_written_and_recorded_once(noting, itsm, redis_conn):
    settings, web = noting
    itsm.reply(503, {"error": "busy"}).drop()  # a 5xx, then an answer lost
    web.post(
        "/webhooks/servicenow",
        json=servicenow_payload("servicenow_change_scheduled.json"),
        headers=AUTH,
    )
    run_worker(redis_conn, settings)  # the reconcile is done; the note waits for its retry
    for _ in range(3):
        move_scheduled_jobs(redis_conn)
        run_worker(redis_conn, settings)

    writes = [r.method for r in itsm.received if r.path == NOTE_PATH]
    lookups = [r.method for r in itsm.received if "sys_journal_field" in r.path]
    # A 503; then a retry looks for the note first (that answer is lost); then it looks again,
    # finds none, and writes.
    assert (writes, lookups) == (["PATCH", "PATCH"], ["GET", "GET"])
    history = store_of(redis_conn).history(ChangeRef("servicenow", "CHG0030412"))
    assert [e["event"] for e in history].count("note") == 1
    assert [e["event"] for e in history].count("created") == 1  # the reconcile never waited


def test_a_note_job_run_again_after_it_was_written_sends_nothing(noting, itsm, redis_conn):
    settings, web = noting
    web.post(
        "/webhooks/servicenow",
        json=servicenow_payload("servicenow_change_scheduled.json"),
        headers=AUTH,
    )
    run_worker(redis_conn, settings)
    queue = notes_queue_of(redis_conn)
    [job_id] = [j for j in queue.finished_job_registry.get_job_ids()]
    queue.enqueue_job(queue.fetch_job(job_id))  # as a retry after a lost answer would
    run_worker(redis_conn, settings)

    assert len(notes(itsm)) == 1


def test_a_plan_bigpanda_refuses_is_noted_with_its_message(noting, itsm, redis_conn):
    settings, web = noting
    with ScriptedBigPanda(
        default=Reply(400, {"status": 400, "errors": ["condition: bad tag"]})
    ) as bp:
        refused = replace(settings, bigpanda_api_url=bp.url)
        redis_conn.set("bridge:ledger-marker", 1)
        web.post(
            "/webhooks/servicenow",
            json=servicenow_payload("servicenow_change_scheduled.json"),
            headers=AUTH,
        )
        run_worker(redis_conn, refused)

    [text] = notes(itsm)
    assert text.startswith("BigPanda refused the maintenance plan, so alerts are NOT silenced")
    assert "condition: bad tag" in text


def test_jira_notes_are_comments_on_the_issue(tmp_path, settings, redis_conn, itsm):
    block = (
        f"write_back:\n  api: jira\n  url: {itsm.url}\n  record: '{{{{ key }}}}'\n"
        "  auth: {type: bearer, secret_env: JIRA_API_TOKEN}\n"
    )
    folder = with_write_back(tmp_path, "jira.yaml", block)
    secrets = {**settings.secrets, "JIRA_API_TOKEN": "jira-data-center-token-1"}
    noted = replace(settings, mappings_dir=folder, secrets=secrets)
    web = create_app(noted, redis=redis_conn).test_client()
    payload = sample_payload("jira", "jira_webhook_issue_updated_change.json", timedelta(hours=2))
    body = json.dumps(payload).encode()
    digest = hmac.new(JIRA_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={digest}"}

    assert web.post("/webhooks/jira", data=body, headers=headers).status_code == 202
    run_worker(redis_conn, noted)

    [comment] = [r for r in itsm.received if r.path == "/rest/api/2/issue/ITSM-1042/comment"]
    assert comment.method == "POST"
    assert comment.headers["Authorization"] == "Bearer jira-data-center-token-1"
    assert comment.json["body"].startswith("BigPanda maintenance plan created")


def test_the_built_in_itsm_stand_in_keeps_the_notes_for_bridge_dev(tmp_path, settings, redis_conn):
    from bridge_harness import serve_in_thread
    from flask import Flask

    from bridge.itsm.sandbox import create_itsm_sandbox

    stand_in = Flask("itsm-under-test")
    stand_in.register_blueprint(create_itsm_sandbox(redis_conn))
    with serve_in_thread(stand_in) as port:
        url = f"http://127.0.0.1:{port}/sandbox/itsm"
        block = (
            f"write_back:\n  api: servicenow\n  url: {url}\n  record: '{{{{ sys_id }}}}'\n"
            "  auth: {type: basic, username: bridge, secret_env: SERVICENOW_API_PASSWORD}\n"
        )
        folder = with_write_back(tmp_path, "servicenow.yaml", block)
        secrets = {**settings.secrets, "SERVICENOW_API_PASSWORD": API_PASSWORD}
        noted = replace(settings, mappings_dir=folder, secrets=secrets)
        web = create_app(noted, redis=redis_conn).test_client()
        payload = servicenow_payload("servicenow_change_scheduled.json")
        web.post("/webhooks/servicenow", json=payload, headers=AUTH)
        run_worker(redis_conn, noted)
        listed = stand_in.test_client().get("/sandbox/itsm/notes").json["notes"]

    [note] = listed
    assert (note["api"], note["record"]) == ("servicenow", f"change_request/{SYS_ID}")
    assert note["text"].startswith("BigPanda maintenance plan created")


def test_bridge_show_lists_the_notes_with_the_other_events(noting, itsm, redis_conn):
    from bridge.ops.story import story

    settings, web = noting
    web.post(
        "/webhooks/servicenow",
        json=servicenow_payload("servicenow_change_scheduled.json"),
        headers=AUTH,
    )
    run_worker(redis_conn, settings)

    told = story(store_of(redis_conn), None, ChangeRef("servicenow", "CHG0030412"))
    events = [event["event"] for event in told.to_json()["events"]]
    assert events.index("received") < events.index("created") < events.index("note")
    assert any("note" in line and SYS_ID in line for line in told.lines())


def test_a_missing_write_back_credential_stops_the_start_naming_it(tmp_path, settings):
    from bridge.errors import ConfigError
    from bridge.mapping.loader import load_mappings

    block = (
        "write_back:\n  api: jira\n  url: https://acme.atlassian.net\n  record: '{{ key }}'\n"
        "  auth: {type: bearer, secret_env: JIRA_API_TOKEN}\n"
    )
    folder = with_write_back(tmp_path, "jira.yaml", block)
    with pytest.raises(ConfigError, match=r"write_back\.auth\.secret_env: environment variable "):
        load_mappings(folder, settings.secrets)
    assert load_mappings(folder, None)  # a check or preview without secrets still loads it


def test_a_note_refused_for_good_is_listed_and_requeued_with_the_failed_jobs(
    noting, itsm, redis_conn
):
    from bridge.jobs import failed as failed_jobs

    settings, web = noting
    itsm.reply(403, {"error": {"message": "not allowed to write work notes"}})
    web.post(
        "/webhooks/servicenow",
        json=servicenow_payload("servicenow_change_scheduled.json"),
        headers=AUTH,
    )
    run_worker(redis_conn, settings)

    [failed] = failed_jobs.list_failed(redis_conn)
    assert failed.id.startswith("note-")
    assert "not allowed to write work notes" in failed.error
    assert failed_jobs.requeue(redis_conn, failed.id) == ChangeRef("servicenow", "CHG0030412")
    run_worker(redis_conn, settings)  # the stand-in now answers 200
    assert failed_jobs.list_failed(redis_conn) == []
    assert len([r for r in itsm.received if r.path == NOTE_PATH]) == 2


def test_a_note_whose_worker_died_after_writing_it_is_not_written_again(noting, itsm, redis_conn):
    """The worker wrote the note, then died before it could mark it sent: the retry finds the
    note's tag on the record (ServiceNow's journal) and writes nothing."""
    settings, web = noting
    web.post(
        "/webhooks/servicenow",
        json=servicenow_payload("servicenow_change_scheduled.json"),
        headers=AUTH,
    )
    run_worker(redis_conn, settings)
    [note] = notes(itsm)
    for marker in redis_conn.keys("bridge:note-sent:*"):
        redis_conn.delete(marker)  # as if the worker had died between the write and the mark
    queue = notes_queue_of(redis_conn)
    [job_id] = queue.finished_job_registry.get_job_ids()
    itsm.reply(200, {"result": [{"sys_id": "journal-entry-1"}]})  # the journal holds the tag
    queue.enqueue_job(queue.fetch_job(job_id))  # what RQ does with an abandoned job
    run_worker(redis_conn, settings)

    lookup = [r for r in itsm.received if r.method == "GET"]
    assert len(lookup) == 1
    assert "sys_journal_field" in lookup[0].path and "bridge+event" in lookup[0].path
    assert notes(itsm) == [note]  # written once
    assert note.endswith("]") and "[bridge event " in note


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://acme.service-now.com", True),
        ("http://10.0.0.5:8080", True),
        ("https://acme.service-now.com", False),
        ("http://127.0.0.1:8080", False),  # the sandbox and the tests
    ],
)
def test_a_write_back_url_must_be_https_off_this_machine(tmp_path, url, refused):
    """The note API gets the integration's credential: the mapping check refuses plain http."""
    from bridge.errors import ConfigError
    from bridge.mapping.loader import load_mappings

    block = (
        f"write_back:\n  api: servicenow\n  url: {url}\n  record: '{{{{ sys_id }}}}'\n"
        "  auth: {type: basic, username: bridge, secret_env: SN_API_PASSWORD}\n"
    )
    folder = with_write_back(tmp_path, "servicenow.yaml", block)
    if refused:
        with pytest.raises(ConfigError, match=r"write_back\.url: must use https"):
            load_mappings(folder, None)
    else:
        assert load_mappings(folder, None)["servicenow"].write_back.url == url

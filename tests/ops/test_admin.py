"""The admin API and `bridge jobs`: a change as remembered, failed jobs and their replay."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from bridge_harness import SERVICENOW_TOKEN, bridge_settings, servicenow_payload
from click.testing import CliRunner
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer
from scripted_bigpanda import ScriptedBigPanda

from bridge.app import create_app
from bridge.jobs.queue import RETRY_INTERVALS, new_job_id, queue_of, store_of
from bridge.model import ChangeRef, NoPlan
from bridge.ops.cli import main
from bridge.state.store import LEDGER_MARKER

ADMIN_TOKEN = "admin-test-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
KEY = "CHG0030412"
REFUSED = {"status": 400, "errors": ["condition: invalid tag"]}
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def bigpanda():
    with ScriptedBigPanda() as server:
        yield server


@pytest.fixture
def settings(redis_url, redis_conn, bigpanda):
    redis_conn.set(LEDGER_MARKER, 1)  # the ledger is known: a create needs no listing
    return replace(bridge_settings(redis_url, bigpanda.url), admin_token=ADMIN_TOKEN)


@pytest.fixture
def queue(redis_conn):
    return queue_of(redis_conn)


@pytest.fixture
def cli(redis_url):
    return lambda *args: CliRunner().invoke(main, ["jobs", *args], env={"REDIS_URL": redis_url})


def deliver(web, number: str = KEY) -> str:
    """A scheduled ServiceNow change through the webhook; returns the reconcile job's id."""
    payload = {**servicenow_payload("servicenow_change_scheduled.json"), "number": number}
    answer = web.post(
        "/webhooks/servicenow",
        json=payload,
        headers={"Authorization": f"Bearer {SERVICENOW_TOKEN}"},
    )
    assert answer.status_code == 202, answer.json
    return answer.json["job_id"]


def created(plan_id: str) -> dict:
    return {"id": plan_id, "status": "planned"}


def failed_ids(queue) -> list[str]:
    return FailedJobRegistry(queue=queue).get_job_ids()


def test_admin_routes_do_not_exist_without_an_admin_token(settings, redis_conn):
    web = create_app(replace(settings, admin_token=None), redis=redis_conn).test_client()

    assert web.get(f"/api/changes/{KEY}", headers=ADMIN).status_code == 404
    assert web.get("/api/jobs/failed", headers=ADMIN).status_code == 404
    assert web.post("/api/jobs/reconcile-x/requeue", headers=ADMIN).status_code == 404


REFUSED_HEADERS = [
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Basic {ADMIN_TOKEN}"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer adm\u00efn"},  # not ASCII: compared as bytes, no TypeError
]


@pytest.mark.parametrize("headers", REFUSED_HEADERS)
def test_a_missing_or_wrong_token_is_refused_with_401_problem_json(web, headers):
    for answer in (
        web.get(f"/api/changes/{KEY}", headers=headers),
        web.get("/api/jobs/failed", headers=headers),
        web.post("/api/jobs/reconcile-x/requeue", headers=headers),
    ):
        assert answer.status_code == 401
        assert answer.content_type == "application/problem+json"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "admin" in answer.json["detail"]


def test_the_change_view_after_a_created_plan(web, work, bigpanda):
    bigpanda.reply(201, created("p-1"))
    deliver(web)
    work()

    answer = web.get(f"/api/changes/{KEY}", headers=ADMIN)

    assert answer.status_code == 200
    view = answer.json
    assert view["maintenance_key"] == KEY
    assert view["plans"] == {KEY: {"id": "p-1", "target": None}}
    plan = view["desired"]["plans"][KEY]
    assert plan["maintenance_key"] == KEY
    assert plan["target"] is None
    assert plan["start"] < plan["end"]
    assert plan["condition"]
    assert view["version"] and all(isinstance(part, int | float) for part in view["version"])
    assert view["pending_job"] is None  # the worker took it over
    assert view["create_uncertain"] is False
    events = [entry["event"] for entry in view["history"]]
    assert events.index("created") < events.index("received")  # newest first
    assert view["history"][events.index("created")]["plan_id"] == "p-1"


def ingest_no_plan(
    redis_conn, key: str, version: tuple[int, ...], reason: str, source: str = "servicenow"
) -> None:
    queue_of(redis_conn)
    change = ChangeRef(source, key)
    store_of(redis_conn).ingest(change, NoPlan(key, reason), version, new_job_id(change), {})


def test_a_change_key_with_slash_hash_and_space_is_found_and_its_no_plan_shown(web, redis_conn):
    key = "ops/CHG 7#b"
    ingest_no_plan(redis_conn, key, (3,), "not_selected")

    answer = web.get(f"/api/changes/{quote(key, safe='/')}", headers=ADMIN)

    assert answer.status_code == 200
    assert answer.json["maintenance_key"] == key
    assert answer.json["desired"] == {"no_plan": "not_selected"}
    assert answer.json["plans"] == {}
    assert answer.json["version"] == [3]
    assert [entry["event"] for entry in answer.json["history"]] == ["received"]


def test_an_unknown_change_is_404_problem_json_naming_the_key(web):
    answer = web.get("/api/changes/CHG-NEVER-SEEN", headers=ADMIN)

    assert answer.status_code == 404
    assert answer.content_type == "application/problem+json"
    assert "CHG-NEVER-SEEN" in answer.json["detail"]


def test_a_job_refused_by_bigpanda_is_listed_with_its_message_and_tries(web, work, bigpanda):
    bigpanda.reply(400, REFUSED)
    job_id = deliver(web)
    work()

    answer = web.get("/api/jobs/failed", headers=ADMIN)

    assert answer.status_code == 200
    assert answer.json["count"] == 1
    [job] = answer.json["jobs"]
    assert job["id"] == job_id
    assert job["maintenance_key"] == KEY
    assert job["error"].startswith("BigPanda 400")  # the exception's class is not repeated
    assert job["error"].endswith("condition: invalid tag")
    assert job["tries"] == 1
    assert ISO_UTC.match(job["failed_at"])
    failed_at = datetime.strptime(job["failed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - failed_at).total_seconds()) < 60


def test_tries_count_the_transient_failures_before_the_last(web, work, bigpanda, queue):
    bigpanda.reply(503, {"status": 503, "errors": ["try later"]})
    job_id = deliver(web)
    work()
    queue.enqueue_job(queue.fetch_job(job_id))  # what RQ's scheduler does when the interval ends
    bigpanda.reply(400, REFUSED)
    work()

    [job] = web.get("/api/jobs/failed", headers=ADMIN).json["jobs"]

    assert job["tries"] == 2
    assert job["error"].endswith("condition: invalid tag")


def test_requeue_runs_the_job_again_and_the_plan_is_remembered(
    web, work, bigpanda, queue, redis_conn
):
    bigpanda.reply(400, REFUSED)
    job_id = deliver(web)
    work()

    answer = web.post(f"/api/jobs/{job_id}/requeue", headers=ADMIN)
    assert answer.status_code == 202
    assert answer.json == {"requeued": job_id, "source": "servicenow", "maintenance_key": KEY}
    assert failed_ids(queue) == []
    bigpanda.reply(201, created("p-9"))
    work()

    assert store_of(redis_conn).state(ChangeRef("servicenow", KEY)).plans[KEY].id == "p-9"
    assert queue.fetch_job(job_id).get_status() == JobStatus.FINISHED
    assert web.get("/api/jobs/failed", headers=ADMIN).json == {"count": 0, "jobs": []}


def test_a_requeued_job_gets_its_retries_again(web, work, bigpanda, queue, redis_conn):
    bigpanda.reply(400, REFUSED)
    job_id = deliver(web)
    work()
    assert queue.fetch_job(job_id).retries_left == 0

    web.post(f"/api/jobs/{job_id}/requeue", headers=ADMIN)
    job = Job.fetch(job_id, connection=redis_conn, serializer=JSONSerializer)
    assert job.retries_left == len(RETRY_INTERVALS)
    bigpanda.reply(503, {"status": 503, "errors": ["try later"]})
    work()

    assert job_id in ScheduledJobRegistry(queue=queue).get_job_ids()  # retried, not failed
    assert failed_ids(queue) == []


@pytest.mark.parametrize("job_id", ["reconcile-unknown-0123", "not%20an%20rq%20id"])
def test_requeue_of_an_unknown_id_is_404_problem_json(web, job_id):
    answer = web.post(f"/api/jobs/{job_id}/requeue", headers=ADMIN)

    assert answer.status_code == 404
    assert answer.content_type == "application/problem+json"


def test_requeue_of_a_job_that_did_not_fail_is_404(web, work, bigpanda):
    bigpanda.reply(201, created("p-1"))
    job_id = deliver(web)
    work()

    answer = web.post(f"/api/jobs/{job_id}/requeue", headers=ADMIN)

    assert answer.status_code == 404
    assert job_id in answer.json["detail"]


def test_cli_lists_failed_jobs_as_a_table_with_a_count(web, work, bigpanda, cli):
    bigpanda.reply(400, REFUSED)
    job_id = deliver(web)
    work()

    result = cli("failed")

    assert result.exit_code == 0, result.output
    header, row, count = result.stdout.splitlines()
    assert header.split()[:2] == ["JOB", "ID"]
    assert row.split()[:4] == [job_id, "servicenow", KEY, "1"]
    assert ISO_UTC.match(row.split()[4])
    assert row.split("  ")[-1].startswith("BigPanda 400")
    assert row.endswith("condition: invalid tag")
    assert count == "1 failed job"


def test_cli_with_no_failed_job_prints_only_the_count(cli):
    result = cli("failed")

    assert result.exit_code == 0
    assert result.stdout == "0 failed jobs\n"


def test_cli_requeues_one_job_by_id(web, work, bigpanda, queue, cli):
    bigpanda.reply(400, REFUSED)
    job_id = deliver(web)
    work()

    result = cli("requeue", job_id)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"requeued {job_id} (servicenow {KEY})",
        "1 job requeued",
    ]
    assert failed_ids(queue) == []
    assert job_id in queue.get_job_ids()


def test_cli_requeues_all_failed_jobs(web, work, bigpanda, queue, cli):
    bigpanda.reply(400, REFUSED).reply(400, REFUSED)
    first, second = deliver(web, "CHG0000001"), deliver(web, "CHG0000002")
    work()
    assert sorted(failed_ids(queue)) == sorted([first, second])

    result = cli("requeue", "--all")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert sorted(lines[:2]) == sorted(
        [
            f"requeued {first} (servicenow CHG0000001)",
            f"requeued {second} (servicenow CHG0000002)",
        ]
    )
    assert lines[2] == "2 jobs requeued"
    assert failed_ids(queue) == []


def test_cli_requeue_of_an_unknown_id_exits_2_with_one_line(cli):
    result = cli("requeue", "reconcile-unknown-0123")

    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "reconcile-unknown-0123" in line


def test_cli_requeue_wants_an_id_or_all(cli):
    assert cli("requeue").exit_code == 2
    assert cli("requeue", "reconcile-x", "--all").exit_code == 2


def test_a_failed_job_that_is_not_a_reconcile_is_neither_listed_nor_requeued(
    web, work, bigpanda, queue, redis_conn
):
    bigpanda.reply(400, REFUSED)
    ours = deliver(web)
    work()
    queue.enqueue("builtins.len", "x", job_id="other-job")
    redis_conn.hset("rq:job:unreadable", mapping={"data": b"not json", "status": "failed"})
    kept = time.time() + 3600
    redis_conn.zadd(FailedJobRegistry(queue=queue).key, {"other-job": kept, "unreadable": kept})

    listed = web.get("/api/jobs/failed", headers=ADMIN).json

    assert [job["id"] for job in listed["jobs"]] == [ours]
    assert web.post("/api/jobs/other-job/requeue", headers=ADMIN).status_code == 404


def test_a_key_with_an_encoded_slash_is_the_same_change(web, redis_conn):
    ingest_no_plan(redis_conn, "a/b", (1,), "no_ci")

    answer = web.get("/api/changes/a%2Fb", headers=ADMIN)

    assert answer.status_code == 200
    assert answer.json["maintenance_key"] == "a/b"


# --- one key, two sources; forgetting a change --------------------------------------------------


def test_a_key_known_from_two_sources_needs_the_source_named(web, redis_conn):
    ingest_no_plan(redis_conn, "CHG-1", (1,), "no_ci", source="servicenow")
    ingest_no_plan(redis_conn, "CHG-1", (2,), "not_selected", source="jira")

    both = web.get("/api/changes/CHG-1", headers=ADMIN)
    jira = web.get("/api/changes/CHG-1?source=jira", headers=ADMIN)

    assert both.status_code == 400
    assert "jira, servicenow" in both.json["detail"]
    assert (jira.status_code, jira.json["source"], jira.json["version"]) == (200, "jira", [2])
    assert jira.json["desired"] == {"no_plan": "not_selected"}


def test_forget_drops_one_sources_memory_of_a_key_and_says_what_it_dropped(web, redis_conn):
    ingest_no_plan(redis_conn, "CHG-1", (1,), "no_ci", source="servicenow")
    ingest_no_plan(redis_conn, "CHG-1", (2,), "not_selected", source="jira")

    answer = web.delete("/api/changes/CHG-1?source=jira", headers=ADMIN)

    assert answer.status_code == 200
    dropped = answer.json["forgotten"]
    assert (dropped["source"], dropped["maintenance_key"], dropped["version"]) == (
        "jira",
        "CHG-1",
        [2],
    )
    assert dropped["history_entries"] == 1
    assert web.get("/api/changes/CHG-1?source=jira", headers=ADMIN).status_code == 404
    assert web.get("/api/changes/CHG-1", headers=ADMIN).json["source"] == "servicenow"


def test_forget_without_a_source_is_400_and_drops_nothing(web, redis_conn):
    ingest_no_plan(redis_conn, "CHG-1", (1,), "no_ci")

    answer = web.delete("/api/changes/CHG-1", headers=ADMIN)

    assert answer.status_code == 400
    assert "source" in answer.json["detail"]
    assert web.get("/api/changes/CHG-1", headers=ADMIN).status_code == 200


def test_cli_forget_says_what_it_drops_and_asks_first(redis_url, redis_conn):
    ingest_no_plan(redis_conn, "CHG-1", (7,), "no_ci")
    env = {"REDIS_URL": redis_url}
    change = ChangeRef("servicenow", "CHG-1")

    refused = CliRunner().invoke(main, ["forget", "servicenow", "CHG-1"], input="n\n", env=env)
    assert refused.exit_code == 1
    assert "version seen: [7]" in refused.stdout
    assert store_of(redis_conn).is_known(change)

    done = CliRunner().invoke(main, ["forget", "servicenow", "CHG-1", "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert done.stdout.splitlines()[-1] == "forgot servicenow CHG-1"
    assert not store_of(redis_conn).is_known(change)
    assert redis_conn.keys("bridge:*change*CHG-1*") == []


def test_cli_forget_of_an_unknown_change_exits_2(redis_url):
    env = {"REDIS_URL": redis_url}
    result = CliRunner().invoke(main, ["forget", "jira", "NOPE-1", "--yes"], env=env)

    assert result.exit_code == 2
    assert "NOPE-1" in result.stderr

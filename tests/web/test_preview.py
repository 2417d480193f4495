"""Preview: what a mapping makes of a payload, and why; `bridge preview` and `bridge mappings
check` as an operator runs them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.errors import InvalidChange
from bridge.jobs.queue import new_job_id, queue_marked, queue_of, store_of
from bridge.mapping.extract import read_change
from bridge.mapping.loader import SourceMapping, load_mappings
from bridge.mapping.rules import decide
from bridge.model import ChangeRef
from bridge.ops.cli import main
from bridge.state.store import LEDGER_MARKER, Store
from bridge.web.preview import preview

ROOT = Path(__file__).parent.parent.parent
PAYLOADS = Path(__file__).parent.parent / "payloads"
NOW = 1717200000  # 2024-06-01 00:00:00 UTC: every sample window lies ahead
SECRETS = {"SERVICENOW_WEBHOOK_TOKEN": "x" * 16, "JIRA_WEBHOOK_SECRET": "y" * 16}
SN_RULES = [
    "planned-outage",
    "not-a-change-request",
    "closed-early",
    "implementing",
    "scheduled-or-implementing",
]
SCHEDULED_PLAN = {
    "name": "CHG0030412: Upgrade PostgreSQL on lnx-db-prod-01 from 15.5 to 15.7",
    "condition": {
        "OR": [
            {"IN": ["host", ["lnx-db-prod-01", "lb-edge-02"]]},
            {"IN": ["application", ["payments-api-prod"]]},
        ]
    },
    "start": 1718413200,
    "end": 1718420400,
    "description": "ServiceNow change_request CHG0030412",
    "custom_tags": [
        {"name": "maintenance_key", "value": "CHG0030412"},
        {"name": "source", "value": "servicenow"},
    ],
    "time_zone": "UTC",
    "frequency": "Once",
    "post_maintenance_action": "None",
    "maintenance_key": "CHG0030412",
    "target": "default",
    "running_policy": "end_only",
}


@pytest.fixture(scope="module")
def mappings() -> dict[str, SourceMapping]:
    """As `bridge preview` loads them: without secrets."""
    return load_mappings(ROOT / "mappings", None)


def sample(source: str, name: str) -> dict:
    return json.loads((PAYLOADS / source / f"{name}.json").read_text(encoding="utf-8"))


def preview_of(mappings, source: str, name: str, store: Store | None = None) -> dict:
    return preview(mappings[source], sample(source, name), NOW, store)


# --- preview() ------------------------------------------------------------------------------------


def test_a_scheduled_change_previews_its_plan_as_it_would_be_sent(mappings):
    result = preview_of(mappings, "servicenow", "servicenow_change_scheduled")
    assert set(result) == {
        "source",
        "change",
        "rules",
        "rule",
        "maintenance_key",
        "desired",
        "action",
    }
    assert result["source"] == "servicenow"
    assert result["change"]["version"] == [9, 1718028151]  # sys_mod_count, sys_updated_on
    assert result["change"]["cis"] == [
        {"name": "lnx-db-prod-01", "class": "cmdb_ci_linux_server"},
        {"name": "payments-api-prod", "class": "cmdb_ci_appl"},
        {"name": "lb-edge-02", "class": "cmdb_ci_lb"},
    ]
    fields = result["change"]["fields"]
    assert (fields["number"], fields["state"], fields["state_label"]) == (
        "CHG0030412",
        "-2",
        "Scheduled",
    )
    assert result["rules"] == [
        {
            "rule": "planned-outage",
            "selected": False,
            "reason": "table is 'change_request', not 'cmdb_ci_outage'",
        },
        {
            "rule": "not-a-change-request",
            "selected": False,
            "reason": "table is 'change_request', which matches the excluded 'change_request'",
        },
        {
            "rule": "closed-early",
            "selected": False,
            "reason": "state is -2, scheduled, not one of closed, review",
        },
        {
            "rule": "implementing",
            "selected": False,
            "reason": "state is -2, scheduled, not one of implement",
        },
        {"rule": "scheduled-or-implementing", "selected": True, "reason": None},
    ]
    assert result["rule"] == "scheduled-or-implementing"
    assert result["maintenance_key"] == "CHG0030412"
    assert result["desired"] == [SCHEDULED_PLAN]
    assert result["action"] == "upsert"
    json.dumps(result)  # the web preview sends it as it is


def test_a_canceled_change_previews_why_no_rule_selected_it(mappings):
    result = preview_of(mappings, "servicenow", "servicenow_change_canceled")
    assert [(r["rule"], r["selected"]) for r in result["rules"]] == [
        (name, False) for name in SN_RULES
    ]
    assert [r["reason"] for r in result["rules"]] == [
        "table is 'change_request', not 'cmdb_ci_outage'",
        "table is 'change_request', which matches the excluded 'change_request'",
        "state is 4, canceled, not one of closed, review",
        "state is 4, canceled, not one of implement",
        "state is 4, canceled, not one of implement, scheduled",
    ]
    assert (result["rule"], result["maintenance_key"]) == (None, "CHG0030415")
    assert result["desired"] == {"no_plan": "not_selected"}
    assert result["action"] == "remove"


def test_a_change_task_previews_the_rule_that_took_it(mappings):
    result = preview_of(mappings, "servicenow", "servicenow_change_task")
    assert [r["rule"] for r in result["rules"]] == ["planned-outage", "not-a-change-request"]
    assert result["rules"][1] == {
        "rule": "not-a-change-request",
        "selected": True,
        "reason": None,
    }
    assert (result["rule"], result["desired"], result["action"]) == (
        "not-a-change-request",
        {"no_plan": "not_selected"},
        "remove",
    )


def test_a_jira_change_previews_the_cis_the_file_reads(mappings):
    result = preview_of(mappings, "jira", "jira_webhook_issue_updated_change")
    assert result["change"]["version"] == [1718093709301]
    assert result["change"]["cis"] == [{"name": "Payments database", "class": "service"}]
    assert result["rule"] == "approved"
    (plan,) = result["desired"]
    assert (plan["start"], plan["end"], plan["target"]) == (1718499600, 1718510400, "default")
    assert plan["condition"] == {"IN": ["service", ["Payments database"]]}


def test_a_deleted_jira_issue_previews_as_a_removal(mappings):
    result = preview_of(mappings, "jira", "jira_webhook_issue_deleted_change")
    assert result["change"]["version"] == [1718271002588]
    assert result["rules"] == [{"rule": "deleted", "selected": True, "reason": None}]
    assert (result["desired"], result["action"]) == ({"no_plan": "not_selected"}, "remove")


def without_ci(name: str) -> dict:
    """A Table API record whose change names no CI at all (cmdb_ci empty)."""
    raw = sample("servicenow", name)
    raw["result"]["cmdb_ci"] = ""
    return raw


def test_a_no_ci_decision_previews_its_reason(mappings):
    raw = without_ci("servicenow_table_api_change_request")
    result = preview(mappings["servicenow"], raw, NOW)
    assert result["change"]["cis"] == []
    assert (result["desired"], result["action"]) == ({"no_plan": "no_ci"}, "remove")


def test_a_ci_reference_without_a_name_previews_as_the_webhook_refuses_it(mappings):
    with pytest.raises(InvalidChange) as caught:
        preview_of(mappings, "servicenow", "servicenow_table_api_change_request")
    assert caught.value.field == "cmdb_ci"


def test_split_plans_preview_every_part_with_its_target(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "source: inventory\nparser: generic\nauth: none\nmaintenance_key: '{{ id }}'\n"
        "cis: [{field: hosts}]\ntargets: {eu: {api_url: 'https://eu.example', api_key_env: K}}\n"
        "rules:\n  - name: r\n    plan:\n      start: start\n      end: end\n"
        "      name: '{{ id }}'\n      target: eu\n      condition: {split: true}\n",
        encoding="utf-8",
    )
    raw = {
        "id": "CHG1",
        "start": "2024-06-15T01:00:00Z",
        "end": "2024-06-15T03:00:00Z",
        "hosts": [f"host-{i:05d}.example.com" for i in range(1500)],
    }
    result = preview(load_mappings(tmp_path, None)["inventory"], raw, NOW)
    assert [(p["maintenance_key"], p["name"], p["target"]) for p in result["desired"]] == [
        ("CHG1#1", "CHG1 (part 1/2)", "eu"),
        ("CHG1#2", "CHG1 (part 2/2)", "eu"),
    ]
    assert (result["maintenance_key"], result["action"]) == ("CHG1", "upsert")


# --- preview() with the store: how the webhook would answer now -----------------------------------


def ingest_like_the_webhook(redis_conn, mapping: SourceMapping, raw: dict) -> str:
    """What POST /webhooks/<source> does after mapping: ingest, queueing a job when none waits."""
    change = read_change(mapping, raw)
    decision = decide(mapping, change, NOW)
    queue = queue_of(redis_conn)
    ref = ChangeRef(mapping.source, decision.maintenance_key)
    result = store_of(redis_conn).ingest(ref, decision, change.version, new_job_id(ref), {})
    queue_marked(queue, ref, result)
    return result.verdict


def test_on_an_empty_store_a_new_plan_would_be_accepted(mappings, redis_conn):
    result = preview_of(mappings, "servicenow", "servicenow_change_scheduled", store_of(redis_conn))
    assert result["answer"] == "accepted"
    assert redis_conn.keys("bridge:*") == []  # a preview stores nothing


def test_the_same_event_again_would_be_a_duplicate(mappings, redis_conn):
    raw = sample("servicenow", "servicenow_change_scheduled")
    assert ingest_like_the_webhook(redis_conn, mappings["servicenow"], raw) == "enqueue"
    result = preview_of(mappings, "servicenow", "servicenow_change_scheduled", store_of(redis_conn))
    assert result["answer"] == "ignored: duplicate"
    # and the webhook agrees when the event does come again
    assert ingest_like_the_webhook(redis_conn, mappings["servicenow"], raw) == "duplicate"


def test_an_older_event_than_the_newest_seen_would_be_stale(mappings, redis_conn):
    newer = sample("servicenow", "servicenow_change_rescheduled")  # sys_mod_count 12
    ingest_like_the_webhook(redis_conn, mappings["servicenow"], newer)
    result = preview_of(mappings, "servicenow", "servicenow_change_scheduled", store_of(redis_conn))
    assert result["answer"] == "ignored: stale"  # 9 < 12


def test_the_same_version_with_another_plan_would_be_accepted(mappings, redis_conn):
    raw = sample("servicenow", "servicenow_change_scheduled")
    ingest_like_the_webhook(redis_conn, mappings["servicenow"], raw)
    raw["short_description"] = "Renamed without touching the system fields"
    result = preview(mappings["servicenow"], raw, NOW, store_of(redis_conn))
    assert result["answer"] == "accepted"


def test_no_plan_for_a_key_with_no_plan_would_be_ignored_with_its_reason(mappings, redis_conn):
    store = store_of(redis_conn)
    # Without the ledger marker the bridge cannot know it has no plan: it must look.
    result = preview_of(mappings, "servicenow", "servicenow_change_canceled", store)
    assert result["answer"] == "accepted"
    redis_conn.set(LEDGER_MARKER, 1)
    result = preview_of(mappings, "servicenow", "servicenow_change_canceled", store)
    assert result["answer"] == "ignored: not_selected"
    raw = without_ci("servicenow_table_api_change_request")
    result = preview(mappings["servicenow"], raw, NOW, store)
    assert result["answer"] == "ignored: no_ci"


# --- the CLI --------------------------------------------------------------------------------------


def bridge(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`bridge ...` as an operator runs it from the checkout, with only the environment given."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=ROOT,
        env={"PATH": os.environ.get("PATH", ""), "BRIDGE_MAPPINGS": "mappings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def bridge_in_process(*args: str, **env: str) -> tuple[int, str, str]:
    """The same command through click's runner (faster); the secrets unset unless given."""
    unset = dict.fromkeys(SECRETS)
    environment = {**unset, "BRIDGE_MAPPINGS": str(ROOT / "mappings"), **env}
    result = CliRunner().invoke(main, list(args), env=environment)
    return result.exit_code, result.stdout, result.stderr


def test_mappings_check_passes_the_shipped_folder_with_its_secrets():
    done = bridge("mappings", "check", **SECRETS)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "OK: 2 mapping file(s): mappings/jira.yaml, mappings/servicenow.yaml\n"


def test_mappings_check_names_every_missing_secret():
    done = bridge("mappings", "check")
    assert (done.returncode, done.stdout) == (1, "")

    def expected(name: str, variable: str, entries: list[int]) -> list[str]:
        lines = (ROOT / "mappings" / name).read_text().splitlines()
        found = [n for n, line in enumerate(lines, 1) if line.strip() == f"secret_env: {variable}"]
        return [
            f"error: mappings/{name}:{line}: auth[{entry}].secret_env: environment variable "
            f"{variable} is not set"
            for line, entry in zip(found, entries, strict=True)
        ]

    # The Automation token of jira.yaml is optional: unset, that method is off.
    assert done.stderr.splitlines() == [
        *expected("jira.yaml", "JIRA_WEBHOOK_SECRET", [0]),
        *expected("servicenow.yaml", "SERVICENOW_WEBHOOK_TOKEN", [0, 1]),
    ]


def test_mappings_check_prints_every_error_of_a_broken_folder(tmp_path):
    shutil.copy(ROOT / "mappings" / "jira.yaml", tmp_path / "jira.yaml")
    text = (ROOT / "mappings" / "servicenow.yaml").read_text(encoding="utf-8")
    text = text.replace("parser: servicenow ", "parser: remedy ").replace(
        "      end: work_end\n", "      end: work_end\n      colour: red\n"
    )
    text += "retries: 3\n"
    (tmp_path / "servicenow.yaml").write_text(text, encoding="utf-8")
    done = bridge("mappings", "check", BRIDGE_MAPPINGS=str(tmp_path), **SECRETS)
    assert (done.returncode, done.stdout) == (1, "")
    path = tmp_path / "servicenow.yaml"
    lines = text.splitlines()
    parser, colour = (
        next(number for number, line in enumerate(lines, 1) if line.startswith(start))
        for start in ("parser: remedy", "      colour: red")
    )
    assert sorted(done.stderr.splitlines()) == sorted(
        [
            f"error: {path}:{parser}: parser: Must be one of: generic, jira, servicenow.",
            f"error: {path}:{colour}: rules[2] (closed-early).plan.colour: Unknown field.",
            f"error: {path}:{len(lines)}: retries: Unknown field.",
        ]
    )


def test_mappings_check_takes_the_folder_as_an_argument(tmp_path):
    (tmp_path / "notes.txt").write_text("not a mapping")
    code, out, err = bridge_in_process("mappings", "check", str(tmp_path), **SECRETS)
    assert (code, out) == (1, "")
    assert err == f"error: {tmp_path}: no mapping files (*.yaml) found\n"


def test_preview_prints_the_rule_and_the_decision_as_json():
    payload = PAYLOADS / "servicenow" / "servicenow_change_scheduled.json"
    done = bridge("preview", "servicenow", str(payload))
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert result["rule"] == "scheduled-or-implementing"
    assert result["maintenance_key"] == "CHG0030412"
    # The CLI decides at the real time: the June 2024 sample's window is over by now.
    assert (result["desired"], result["action"]) == ({"no_plan": "window_over"}, "remove")


def test_preview_at_a_given_time_shows_the_plan_an_old_sample_had():
    payload = PAYLOADS / "servicenow" / "servicenow_change_scheduled.json"
    code, out, err = bridge_in_process("preview", "servicenow", str(payload), "--at", "2024-06-01")
    assert (code, err) == (0, "")
    [plan] = json.loads(out)["desired"]
    assert (plan["start"], plan["end"]) == (1718413200, 1718420400)  # 15 Jun 01:00-03:00 UTC


@pytest.mark.parametrize(
    ("args", "content", "message"),
    [
        (
            ["remedy"],
            "{}",
            "bridge: no mapping file defines the source 'remedy' (known: jira, servicenow)",
        ),
        (
            ["servicenow"],
            "[1",
            "bridge: {path}: the body is not valid JSON: Expecting ',' delimiter: line 1 column 3 "
            "(char 2)",
        ),
        (["servicenow"], "[1, 2]", "bridge: {path} must hold a JSON object"),
        (
            ["servicenow"],
            json.dumps({"state": "-2", "sys_mod_count": "1"}),
            "bridge: invalid change: number: is missing or empty",
        ),
    ],
)
def test_preview_refuses_bad_input_in_one_line(tmp_path, args, content, message):
    payload = tmp_path / "change.json"
    payload.write_text(content, encoding="utf-8")
    code, out, err = bridge_in_process("preview", *args, str(payload))
    assert (code, out) == (2, "")
    assert err == message.format(path=payload) + "\n"


def test_preview_names_the_field_of_an_invalid_window(tmp_path):
    raw = sample("servicenow", "servicenow_change_scheduled") | {"end_date": "2024-06-14 23:00:00"}
    payload = tmp_path / "change.json"
    payload.write_text(json.dumps(raw), encoding="utf-8")
    done = bridge("preview", "servicenow", str(payload))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "bridge: invalid change: end_date: is not after start_date\n"


def test_preview_with_a_broken_folder_says_so_in_one_line(tmp_path):
    (tmp_path / "f.yaml").write_text("- a list\n", encoding="utf-8")
    payload = PAYLOADS / "servicenow" / "servicenow_change_scheduled.json"
    code, out, err = bridge_in_process(
        "preview", "servicenow", str(payload), BRIDGE_MAPPINGS=str(tmp_path)
    )
    assert (code, out) == (2, "")
    assert err == (
        f"bridge: cannot start: {tmp_path}/f.yaml: must be a mapping of settings, not list\n"
    )


def test_preview_and_webhook_agree_when_a_job_is_pending(mappings, redis_conn):
    """One verdict, one place: the preview runs the ingest script itself, writing nothing."""
    store = store_of(redis_conn)
    redis_conn.set(LEDGER_MARKER, 1)
    scheduled = sample("servicenow", "servicenow_change_scheduled")
    assert ingest_like_the_webhook(redis_conn, mappings["servicenow"], scheduled) == "enqueue"
    canceled = {**scheduled, "state": "4", "sys_mod_count": "99"}  # no plan, while a job waits
    before = snapshot(redis_conn)

    predicted = preview(mappings["servicenow"], canceled, NOW, store)["answer"]
    assert snapshot(redis_conn) == before  # nothing written
    answered = ingest_like_the_webhook(redis_conn, mappings["servicenow"], canceled)

    assert (predicted, answered) == ("accepted", "joined")


def snapshot(redis_conn) -> dict:
    """Every key's value (hashes, lists, sets and strings), to compare before and after."""
    read = {
        b"hash": redis_conn.hgetall,
        b"list": lambda key: redis_conn.lrange(key, 0, -1),
        b"set": redis_conn.smembers,
        b"string": redis_conn.get,
        b"zset": lambda key: redis_conn.zrange(key, 0, -1, withscores=True),
    }
    return {key: read[redis_conn.type(key)](key) for key in redis_conn.keys("*")}

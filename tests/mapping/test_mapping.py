"""The mapping language as a whole: shipped files decide the samples, small files written here
exercise each setting, and the loader names file, line, rule and field of every mistake."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bridge.errors import ConfigError, InvalidChange
from bridge.mapping.condition import MAX_CONDITION_CHARS, condition_length, matches_everything
from bridge.mapping.extract import read_change
from bridge.mapping.loader import (
    SourceMapping,
    Target,
    VersionField,
    check_mappings,
    load_mappings,
)
from bridge.mapping.rules import Evaluation, evaluate
from bridge.model import CI, Change, DesiredPlan, NoPlan, SplitPlan
from bridge.web.auth import authenticate

ROOT = Path(__file__).parent.parent.parent
PAYLOADS = Path(__file__).parent.parent / "payloads"
SECRETS = {
    "SERVICENOW_WEBHOOK_TOKEN": "x" * 16,
    "JIRA_WEBHOOK_SECRET": "y" * 16,
    "JIRA_AUTOMATION_TOKEN": "z" * 16,
}
NOW = 1717200000  # 2024-06-01 00:00:00 UTC: every sample window lies ahead
JUNE_15_0100 = 1718413200  # 2024-06-15 01:00:00 UTC
JUNE_15_0300 = 1718420400  # 2024-06-15 03:00:00 UTC
JUNE_16_0100 = 1718499600  # 2024-06-16 01:00:00 UTC
JUNE_16_0400 = 1718510400  # 2024-06-16 04:00:00 UTC
SN_TAGS = ("maintenance_key", "CHG0030412"), ("source", "servicenow")
# The three CIs of most ServiceNow samples through the shipped class map: the Linux server and
# the load balancer (no class of its own: `default`) on `host`, the application on `application`.
SN_CONDITION = {
    "OR": [
        {"IN": ["host", ["lnx-db-prod-01", "lb-edge-02"]]},
        {"IN": ["application", ["payments-api-prod"]]},
    ]
}


@pytest.fixture(scope="module")
def shipped() -> dict[str, SourceMapping]:
    return load_mappings(ROOT / "mappings", SECRETS)


def sample(source: str, name: str) -> dict:
    return json.loads((PAYLOADS / source / f"{name}.json").read_text(encoding="utf-8"))


def received(mapping: SourceMapping, raw: dict) -> Change:
    """The payload read as the door reads it when it arrives as sent: a Jira body's `timestamp`
    is its send time (older than a day is a replay, and the samples are of 2024)."""
    sent = raw.get("timestamp") if isinstance(raw, dict) else None
    return read_change(mapping, raw, sent / 1000 if isinstance(sent, int) else None)


def run(mapping: SourceMapping, raw: dict, now: float = NOW) -> Evaluation:
    """What the webhook does with a payload: parse, apply the file's cis/version, evaluate."""
    return evaluate(mapping, received(mapping, raw), now)


def refused(mapping: SourceMapping, raw: dict, now: float = NOW) -> InvalidChange:
    with pytest.raises(InvalidChange) as caught:
        run(mapping, raw, now)
    return caught.value


# --- the shipped files ----------------------------------------------------------------------------


def test_the_shipped_folder_loads_both_sources_with_their_secrets(shipped):
    assert sorted(shipped) == ["jira", "servicenow"]
    assert [v.kind for v in shipped["servicenow"].verifiers] == ["bearer", "basic"]
    assert [v.kind for v in shipped["jira"].verifiers] == ["hmac-sha256", "bearer"]
    without_automation = {k: v for k, v in SECRETS.items() if k != "JIRA_AUTOMATION_TOKEN"}
    jira = load_mappings(ROOT / "mappings", without_automation)["jira"]
    assert [v.kind for v in jira.verifiers] == ["hmac-sha256"]  # optional, and off when unset
    assert [rule.name for rule in shipped["servicenow"].rules] == [
        "planned-outage",
        "not-a-change-request",
        "closed-early",
        "implementing",
        "scheduled-or-implementing",
    ]
    assert [rule.name for rule in shipped["jira"].rules] == [
        "deleted",
        "finished-or-canceled",
        "approved",
    ]


def test_the_example_file_loads_without_secrets():
    mapping = load_mappings(ROOT / "mappings" / "examples", None)["jira-automation"]
    assert mapping.version_fields == (VersionField("sentAt"),)
    # Checked without its secret, so it accepts no webhook, not even with its header.
    assert not authenticate(mapping.verifiers, {"X-Bridge-Token": "guess"}, b"{}")


def test_a_scheduled_change_gets_its_plan(shipped):
    evaluation = run(shipped["servicenow"], sample("servicenow", "servicenow_change_scheduled"))
    assert evaluation.rule == "scheduled-or-implementing"
    assert evaluation.decision == DesiredPlan(
        maintenance_key="CHG0030412",
        name="CHG0030412: Upgrade PostgreSQL on lnx-db-prod-01 from 15.5 to 15.7",
        condition=SN_CONDITION,
        start=JUNE_15_0100,
        end=JUNE_15_0300,
        description="ServiceNow change_request CHG0030412",
        custom_tags=SN_TAGS,
    )


@pytest.mark.parametrize(
    "name", ["servicenow_change_rescheduled", "servicenow_change_api_display_value_all"]
)
def test_a_rescheduled_change_moves_the_window_read_from_the_utc_values(shipped, name):
    decision = run(shipped["servicenow"], sample("servicenow", name)).decision
    assert (decision.start, decision.end) == (JUNE_16_0100, JUNE_16_0400)


def test_a_change_on_hold_keeps_its_plan(shipped):
    evaluation = run(shipped["servicenow"], sample("servicenow", "servicenow_change_on_hold"))
    assert evaluation.rule == "scheduled-or-implementing"
    assert (evaluation.decision.start, evaluation.decision.end) == (JUNE_15_0100, JUNE_15_0300)


def test_an_emergency_change_in_implement_runs_from_its_actual_start(shipped):
    raw = sample("servicenow", "servicenow_change_emergency_implement")
    evaluation = run(shipped["servicenow"], raw)
    assert evaluation.rule == "implementing"
    decision = evaluation.decision
    assert decision.maintenance_key == "CHG0030421"
    assert (decision.start, decision.end) == (1718418003, 1718422200)  # work_start..end_date
    assert decision.condition == SN_CONDITION


def test_a_change_closed_early_ends_when_the_work_ended(shipped):
    raw = sample("servicenow", "servicenow_change_closed_early")
    evaluation = run(shipped["servicenow"], raw)
    assert evaluation.rule == "closed-early"
    assert (evaluation.decision.start, evaluation.decision.end) == (JUNE_16_0100, 1718504507)


def test_a_change_closed_early_after_its_work_ended_is_window_over(shipped):
    raw = sample("servicenow", "servicenow_change_closed_early")
    evaluation = run(shipped["servicenow"], raw, now=1718505612)  # closed_at 02:40:12
    assert (evaluation.rule, evaluation.decision) == (
        "closed-early",
        NoPlan("CHG0030412", "window_over"),
    )


def test_a_canceled_change_is_not_selected_by_any_rule(shipped):
    evaluation = run(shipped["servicenow"], sample("servicenow", "servicenow_change_canceled"))
    assert (evaluation.rule, evaluation.decision) == (None, NoPlan("CHG0030415", "not_selected"))
    assert [v.selected for v in evaluation.verdicts] == [False] * 5


def test_a_change_task_is_taken_by_the_not_a_change_request_rule(shipped):
    evaluation = run(shipped["servicenow"], sample("servicenow", "servicenow_change_task"))
    assert evaluation.rule == "not-a-change-request"
    assert evaluation.decision == NoPlan("CTASK0010733", "not_selected")


def test_a_planned_outage_silences_its_ci_from_begin_to_end(shipped):
    evaluation = run(shipped["servicenow"], sample("servicenow", "servicenow_outage"))
    assert evaluation.rule == "planned-outage"
    assert evaluation.decision == DesiredPlan(
        maintenance_key="OUT0010088",
        name="OUT0010088: Payments API read-only during PostgreSQL upgrade",
        condition={"IN": ["host", ["payments-api-prod"]]},  # cmdb_ci carries no class
        start=JUNE_15_0100,
        end=JUNE_15_0300,
        description="ServiceNow cmdb_ci_outage OUT0010088",
        custom_tags=(("maintenance_key", "OUT0010088"), ("source", "servicenow")),
    )


def test_a_table_api_record_whose_ci_has_no_name_is_refused_naming_cmdb_ci(shipped):
    raw = sample("servicenow", "servicenow_table_api_change_request")
    error = refused(shipped["servicenow"], raw)
    assert error.field == "cmdb_ci"
    assert "dot-walking `cmdb_ci.name`" in str(error) and "sysparm_display_value" in str(error)


def test_an_approved_jira_change_gets_a_plan_for_its_components(shipped):
    raw = sample("jira", "jira_webhook_issue_updated_change")
    evaluation = run(shipped["jira"], raw)
    assert evaluation.rule == "approved"
    assert evaluation.decision == DesiredPlan(
        maintenance_key="ITSM-1042",
        name="ITSM-1042: Upgrade PostgreSQL on payments database cluster to 15.7",
        condition={"IN": ["service", ["Payments database"]]},
        start=JUNE_16_0100,
        end=JUNE_16_0400,
        description="Jira change ITSM-1042 (Normal)",
        custom_tags=(("maintenance_key", "ITSM-1042"), ("source", "jira")),
    )


@pytest.mark.parametrize(
    "name",
    ["jira_automation_issue_data_jira_format", "jira_automation_issue_data_automation_format"],
)
def test_automation_issue_data_is_approved_and_its_components_are_the_cis(shipped, name):
    raw = sample("jira", name)
    # As sent, the issue has no component (Affected services carry only ids): no CI, no plan.
    evaluation = run(shipped["jira"], raw)
    assert (evaluation.rule, evaluation.decision) == ("approved", NoPlan("ITSM-1042", "no_ci"))
    issue = raw.get("issue", raw)
    issue["fields"]["components"] = [{"id": "10031", "name": "Payments database"}]
    decision = run(shipped["jira"], raw).decision
    assert (decision.start, decision.end) == (JUNE_15_0100, JUNE_15_0300)  # 10008 .. 10009
    assert decision.condition == {"IN": ["service", ["Payments database"]]}


def test_a_jsm_change_in_planning_is_not_selected(shipped):
    evaluation = run(shipped["jira"], sample("jira", "jsm_change_request_created"))
    assert (evaluation.rule, evaluation.decision) == (None, NoPlan("ITSM-1042", "not_selected"))
    assert evaluation.verdicts[-1].reason == (
        "state is planning, not one of awaiting implementation, implementing, scheduled"
    )


def test_a_deleted_issue_wants_no_plan_ordered_by_its_timestamp(shipped):
    raw = sample("jira", "jira_webhook_issue_deleted_change")
    change = received(shipped["jira"], raw)
    evaluation = evaluate(shipped["jira"], change, NOW)
    assert (evaluation.rule, evaluation.decision) == (
        "deleted",
        NoPlan("ITSM-1051", "not_selected"),
    )
    assert change.version == (1718271002588,)


@pytest.mark.parametrize(
    "name", ["jira_datacenter_postfunction_transition", "jira_webhook_transition_canceled"]
)
def test_a_done_jira_change_is_finished_or_canceled(shipped, name):
    evaluation = run(shipped["jira"], sample("jira", name))
    assert evaluation.rule == "finished-or-canceled"
    assert isinstance(evaluation.decision, NoPlan)
    assert evaluation.decision.reason == "not_selected"


def test_a_site_with_other_custom_field_ids_is_told_which_field_is_missing(shipped):
    # The Data Center sample's window is in customfield_12104/12105: the shipped ids are a
    # Cloud site's, and the error says which field to look up.
    error = refused(shipped["jira"], sample("jira", "jira_datacenter_webhook"))
    assert str(error) == "customfield_10008: is required for a maintenance plan"


def test_the_example_automation_file_decides_the_custom_body():
    mapping = load_mappings(ROOT / "mappings" / "examples", None)["jira-automation"]
    change = received(mapping, sample("jira", "jira_automation_custom_body"))
    assert change.version == (1718028153900.0,)  # sentAt 2024-06-10T14:02:33.9+0000
    evaluation = evaluate(mapping, change, NOW)
    assert evaluation.rule == "approved"
    assert evaluation.decision.condition == {
        "IN": ["service", ["Payments API", "Checkout Web", "Payments database"]]
    }
    assert (evaluation.decision.start, evaluation.decision.end) == (JUNE_15_0100, JUNE_15_0300)


# --- the language, with small files ---------------------------------------------------------------

GENERIC = """\
source: inventory
parser: generic
auth: none
maintenance_key: "{{ id }}"
cis: [{field: hosts}]
"""
SERVICENOW = """\
source: servicenow
parser: servicenow
auth: none
maintenance_key: "{{ number }}"
"""
CHANGE = {
    "id": "CHG1",
    "status": "Scheduled",
    "summary": "Patch",
    "start": "2024-06-15T01:00:00Z",
    "end": "2024-06-15T03:00:00Z",
    "hosts": ["web-01", "db-01"],
}
PLAN = """\
    plan:
      start: start
      end: end
      name: "{{ id }}"
"""
SN_PLAN = """\
rules:
  - name: r
    plan:
      start: start_date
      end: end_date
      name: "{{ number }}"
"""


def load(tmp_path: Path, body: str, header: str = GENERIC) -> SourceMapping:
    """A folder holding one file: `header` then `body` (dedented); its only source."""
    (tmp_path / "f.yaml").write_text(header + textwrap.dedent(body), encoding="utf-8")
    (mapping,) = load_mappings(tmp_path, {}).values()
    return mapping


def decide_change(tmp_path: Path, body: str, change: dict | None = None, now: float = NOW):
    return run(load(tmp_path, body), CHANGE if change is None else change, now).decision


def scheduled() -> dict:
    return sample("servicenow", "servicenow_change_scheduled")


def test_a_minimal_rule_gets_the_documented_plan_defaults(tmp_path):
    decision = decide_change(tmp_path, "rules:\n  - name: all\n" + PLAN)
    assert decision == DesiredPlan(
        maintenance_key="CHG1",
        name="CHG1",
        condition={"IN": ["host", ["web-01", "db-01"]]},  # no tags: every CI is a host
        start=JUNE_15_0100,
        end=JUNE_15_0300,
        description="",
        custom_tags=(),
        time_zone="UTC",
        frequency="Once",
        post_maintenance_action="None",
        frequency_data=None,
        running_policy="end_only",
        target=None,
    )


def test_defaults_are_merged_key_by_key_into_each_rules_plan(tmp_path):
    mapping = load(
        tmp_path,
        """\
        defaults:
          start: start
          end: end
          pad_after: 30m
          name: "{{ id }}"
          description: "from defaults"
          custom_tags: {team: ops}
        rules:
          - name: own-name
            states: [Scheduled]
            plan:
              name: "{{ id }}: {{ summary }}"
              pad_after: 0m
          - name: defaults-only
            plan: {}
        """,
    )
    first = run(mapping, CHANGE).decision
    assert (first.name, first.description, first.end) == (
        "CHG1: Patch",
        "from defaults",
        JUNE_15_0300,
    )
    assert first.custom_tags == (("team", "ops"),)
    second = run(mapping, {**CHANGE, "status": "New"}).decision
    assert (second.name, second.description) == ("CHG1", "from defaults")
    assert second.end == JUNE_15_0300 + 1800


@pytest.mark.parametrize(
    ("states", "record"),
    [
        ("[Scheduled]", {}),  # the label ServiceNow's state number stands for
        ("[scheduled]", {}),
        ("[SCHEDULED]", {}),
        ("[-2]", {}),  # the number, as a YAML integer
        ('["-2"]', {}),
        ("[-2]", {"state": -2.0}),  # a number sent as a float
        ("[Implement, Scheduled]", {"state": "Scheduled"}),
        ("[scheduled]", {"state": "scheduled"}),  # a label sent in another case
    ],
)
def test_states_match_state_or_its_label_in_any_case(tmp_path, states, record):
    body = SN_PLAN.replace("  - name: r\n", f"  - name: r\n    states: {states}\n")
    # A state sent as its label is a display-mode record: its dates are the user's (here UTC).
    mapping = load(tmp_path, body, SERVICENOW + "display_values: {time_zone: UTC}\n")
    evaluation = run(mapping, scheduled() | record)
    assert evaluation.rule == "r"
    assert isinstance(evaluation.decision, DesiredPlan)


@pytest.mark.parametrize("status", ["Awaiting Implementation", "awaiting implementation"])
def test_states_match_a_status_field_in_any_case(tmp_path, status):
    body = "rules:\n  - name: r\n    states: [AWAITING implementation]\n" + PLAN
    assert run(load(tmp_path, body), {**CHANGE, "status": status}).rule == "r"


def test_states_that_do_not_match_say_what_the_state_is(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: r\n    states: [Review, Closed]\n" + PLAN)
    verdict = run(mapping, CHANGE).verdicts[0]
    assert (verdict.selected, verdict.reason) == (
        False,
        "state is scheduled, not one of closed, review",
    )
    verdict = run(mapping, {k: v for k, v in CHANGE.items() if k != "status"}).verdicts[0]
    assert verdict.reason == "state is absent, not one of closed, review"


def test_a_rule_needs_both_its_states_and_its_filter(tmp_path):
    mapping = load(
        tmp_path,
        "rules:\n  - name: prod\n    states: [Scheduled]\n    filter: {field: env, equals: prod}\n"
        + PLAN,
    )
    assert run(mapping, {**CHANGE, "env": "prod"}).rule == "prod"
    for change, reason in [
        ({**CHANGE, "env": "dev"}, "env is 'dev', not 'prod'"),
        ({**CHANGE, "env": "prod", "status": "New"}, "state is new, not one of scheduled"),
    ]:
        evaluation = run(mapping, change)
        assert evaluation.decision == NoPlan("CHG1", "not_selected")
        assert [(v.rule, v.selected, v.reason) for v in evaluation.verdicts] == [
            ("prod", False, reason)
        ]


def test_the_first_rule_that_matches_wins(tmp_path):
    second = PLAN.replace('name: "{{ id }}"', "name: second")
    mapping = load(
        tmp_path,
        "rules:\n  - name: one\n    filter: {field: env, equals: prod}\n    plan: none\n"
        "  - name: two\n" + PLAN + "  - name: three\n" + second,
    )
    evaluation = run(mapping, CHANGE)  # `one` passes it on, `two` takes it, `three` is never tried
    assert (evaluation.rule, evaluation.decision.name) == ("two", "CHG1")
    assert [(v.rule, v.selected) for v in evaluation.verdicts] == [("one", False), ("two", True)]
    assert run(mapping, {**CHANGE, "env": "prod"}).rule == "one"


def test_a_rule_can_have_its_own_maintenance_key(tmp_path):
    mapping = load(
        tmp_path,
        """\
        rules:
          - name: task
            filter: {field: kind, equals: task}
            maintenance_key: "task-{{ id }}"
            plan:
              start: start
              end: end
              name: "{{ maintenance_key }}"
              custom_tags: {maintenance_key: "{{ maintenance_key }}"}
        """,
    )
    decision = run(mapping, {**CHANGE, "kind": "task"}).decision
    assert (decision.maintenance_key, decision.name) == ("task-CHG1", "task-CHG1")
    assert decision.custom_tags == (("maintenance_key", "task-CHG1"),)
    assert run(mapping, CHANGE).decision == NoPlan("CHG1", "not_selected")  # the file's key


def test_plan_none_selects_the_change_for_no_plan_without_reading_its_dates(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: hold\n    plan: none\n  - name: all\n" + PLAN)
    change = {**CHANGE, "start": None, "end": "not a date"}
    evaluation = run(mapping, change)
    assert (evaluation.rule, evaluation.decision) == ("hold", NoPlan("CHG1", "not_selected"))


def test_padding_shifts_the_window(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN + "      pad_before: 15m\n      pad_after: 1h30m\n"
    decision = decide_change(tmp_path, body)
    assert (decision.start, decision.end) == (JUNE_15_0100 - 900, JUNE_15_0300 + 5400)


def test_dates_are_read_with_their_format_and_time_zone(tmp_path):
    body = """\
        rules:
          - name: r
            plan:
              start: {field: local_start, format: "%d/%m/%Y %H:%M", time_zone: Europe/Berlin}
              end: {field: window.end, format: epoch_ms}
              name: x
        """
    change = {**CHANGE, "local_start": "15/06/2024 03:00", "window": {"end": 1718420400000}}
    decision = decide_change(tmp_path, body, change)
    assert (decision.start, decision.end) == (JUNE_15_0100, JUNE_15_0300)  # 03:00 CEST = 01:00Z


@pytest.mark.parametrize("end", ["2024-06-15T00:59:59Z", "2024-06-15T01:00:00Z"])
def test_an_end_not_after_the_start_is_refused_naming_the_end_field(tmp_path, end):
    error = refused(load(tmp_path, "rules:\n  - name: r\n" + PLAN), {**CHANGE, "end": end})
    assert (error.field, str(error)) == ("end", "end: is not after start")


def test_a_servicenow_end_before_start_names_end_date(shipped):
    error = refused(shipped["servicenow"], scheduled() | {"end_date": "2024-06-15 00:59:59"})
    assert str(error) == "end_date: is not after start_date"


def test_padding_does_not_hide_an_end_before_the_start(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN + "      pad_after: 1h\n"
    error = refused(load(tmp_path, body), {**CHANGE, "end": "2024-06-15T00:50:00Z"})
    assert error.field == "end"


@pytest.mark.parametrize("field", ["start", "end"])
def test_a_missing_date_is_refused_naming_it(tmp_path, field):
    error = refused(load(tmp_path, "rules:\n  - name: r\n" + PLAN), {**CHANGE, field: ""})
    assert str(error) == f"{field}: is required for a maintenance plan"


def test_a_window_that_is_over_is_no_plan(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: r\n" + PLAN)
    assert run(mapping, CHANGE, now=JUNE_15_0300).decision == NoPlan("CHG1", "window_over")
    assert isinstance(run(mapping, CHANGE, now=JUNE_15_0300 - 1).decision, DesiredPlan)
    running = run(mapping, CHANGE, now=JUNE_15_0100 + 600).decision  # started: keeps its start
    assert (running.start, running.end) == (JUNE_15_0100, JUNE_15_0300)


def test_a_window_that_is_over_wins_over_no_ci(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: r\n" + PLAN)
    change = {**CHANGE, "hosts": []}
    assert run(mapping, change).decision == NoPlan("CHG1", "no_ci")
    assert run(mapping, change, now=JUNE_15_0300).decision == NoPlan("CHG1", "window_over")


def test_cis_of_classes_the_map_leaves_out_make_no_ci(tmp_path):
    body = SN_PLAN + "      condition: {tags: {cmdb_ci_service: service}}\n"
    mapping = load(tmp_path, body, SERVICENOW)
    assert run(mapping, scheduled()).decision == NoPlan("CHG0030412", "no_ci")


def test_a_class_can_map_to_several_tags(tmp_path):
    body = (
        SN_PLAN
        + "      condition:\n        tags: {cmdb_ci_appl: [application, service], default: host}\n"
    )
    decision = run(load(tmp_path, body, SERVICENOW), scheduled()).decision
    assert decision.condition == {
        "OR": [
            {"IN": ["host", ["lnx-db-prod-01", "lb-edge-02"]]},
            {"IN": ["application", ["payments-api-prod"]]},
            {"IN": ["service", ["payments-api-prod"]]},
        ]
    }


def test_a_class_mapped_to_no_tag_is_left_out_or_refused(tmp_path):
    body = SN_PLAN + "      condition:\n        tags: {cmdb_ci_lb: [], default: host}\n"
    try:
        mapping = load(tmp_path, body, SERVICENOW)
    except ConfigError:
        return  # refusing the empty list at load is as good as honouring it
    condition = run(mapping, scheduled()).decision.condition
    assert "lb-edge-02" not in json.dumps(condition)


def test_prefix_match_makes_wildcards_and_exact_names_stay_literal_in_one_in(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN + "      condition: {match: prefix}\n"
    decision = decide_change(tmp_path, body, {**CHANGE, "hosts": ["db-01", "web-01"]})
    assert decision.condition == {
        "OR": [
            {"=": ["host", {"type": "regex", "value": "db-01*"}]},
            {"=": ["host", {"type": "regex", "value": "web-01*"}]},
        ]
    }
    exact = decide_change(
        tmp_path, "rules:\n  - name: r\n" + PLAN, {**CHANGE, "hosts": ["a", "web-*", "b"]}
    )
    # Under `exact` a `*` in a CI name is a character of the name, never a wildcard.
    assert exact.condition == {"IN": ["host", ["a", "web-*", "b"]]}


def test_lowercase_values_lowercases_and_deduplicates_ci_names(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN + "      condition: {lowercase_values: true}\n"
    decision = decide_change(tmp_path, body, {**CHANGE, "hosts": ["Web-01", "WEB-01", "db-01"]})
    assert decision.condition == {"IN": ["host", ["web-01", "db-01"]]}


def test_also_clauses_are_anded_to_the_cis(tmp_path):
    body = (
        "rules:\n  - name: r\n"
        + PLAN
        + ('      condition: {also: [{"=": [env, prod]}, {"NOT IN": [team, [qa, dev]]}]}\n')
    )
    assert decide_change(tmp_path, body).condition == {
        "AND": [
            {"IN": ["host", ["web-01", "db-01"]]},
            {"=": ["env", "prod"]},
            {"NOT IN": ["team", ["qa", "dev"]]},
        ]
    }


def test_an_also_clause_tag_name_is_lowercase_or_refused(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN + '      condition: {also: [{"=": [Env, prod]}]}\n'
    try:
        decision = decide_change(tmp_path, body)
    except ConfigError:
        return  # refused at load, as an uppercase class-map tag is
    assert decision.condition["AND"][1] == {"=": ["env", "prod"]}


MANY_HOSTS = [f"host-{i:05d}.example.com" for i in range(2500)]  # 24 characters quoted


def test_a_condition_over_the_limit_without_split_is_refused_naming_condition(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: r\n" + PLAN)
    error = refused(mapping, {**CHANGE, "hosts": MANY_HOSTS})
    assert error.field == "condition"
    assert str(error) == (
        "condition: is 62517 characters, over BigPanda's limit of 25000; say `split: true` in "
        "the rule's condition to spread the 2500 CIs over several plans"
    )


def test_split_spreads_the_cis_over_plans_keyed_by_part(tmp_path):
    tags = '      custom_tags: {maintenance_key: "{{ maintenance_key }}"}\n'
    body = "rules:\n  - name: r\n" + PLAN + tags + "      condition: {split: true}\n"
    decision = decide_change(tmp_path, body, {**CHANGE, "hosts": MANY_HOSTS})
    assert isinstance(decision, SplitPlan)
    assert decision.maintenance_key == "CHG1"
    assert [p.maintenance_key for p in decision.parts] == ["CHG1#1", "CHG1#2", "CHG1#3"]
    assert [p.name for p in decision.parts] == [
        "CHG1 (part 1/3)",
        "CHG1 (part 2/3)",
        "CHG1 (part 3/3)",
    ]
    assert [p.custom_tags for p in decision.parts] == [
        (("maintenance_key", f"CHG1#{n}"),) for n in (1, 2, 3)
    ]
    assert all(condition_length(p.condition) <= MAX_CONDITION_CHARS for p in decision.parts)
    names = [name for p in decision.parts for name in p.condition["IN"][1]]
    assert sorted(names) == sorted(MANY_HOSTS)  # every CI exactly once
    assert [len(p.condition["IN"][1]) for p in decision.parts] == [999, 999, 502]  # as full as fits
    assert {(p.start, p.end) for p in decision.parts} == {(JUNE_15_0100, JUNE_15_0300)}


def test_split_keeps_the_also_clauses_in_every_part(tmp_path):
    body = (
        "rules:\n  - name: r\n"
        + PLAN
        + ('      condition: {split: true, also: [{"=": [env, prod]}]}\n')
    )
    decision = decide_change(tmp_path, body, {**CHANGE, "hosts": MANY_HOSTS})
    assert len(decision.parts) == 3
    for part in decision.parts:
        assert condition_length(part.condition) <= MAX_CONDITION_CHARS
        assert part.condition["AND"][1:] == [{"=": ["env", "prod"]}]
    names = [name for p in decision.parts for name in p.condition["AND"][0]["IN"][1]]
    assert sorted(names) == sorted(MANY_HOSTS)


def test_a_condition_that_fits_is_one_plan_even_with_split(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN + "      condition: {split: true}\n"
    decision = decide_change(tmp_path, body)
    assert isinstance(decision, DesiredPlan)
    assert decision.maintenance_key == "CHG1"


@pytest.mark.parametrize(
    ("unit", "duration"), [("", 10800000), ("      duration_unit: s\n", 10800)]
)
def test_frequency_data_durations_are_sent_in_the_configured_unit(tmp_path, unit, duration):
    body = (
        "rules:\n  - name: r\n"
        + PLAN
        + (
            "      frequency: Daily\n      frequency_data: {relativity: First, duration: 3h}\n"
            + unit
        )
    )
    decision = decide_change(tmp_path, body)
    assert decision.frequency == "Daily"
    assert decision.body()["frequency_data"] == {"relativity": "First", "duration": duration}


def test_plan_settings_reach_the_desired_plan(tmp_path):
    body = (
        "rules:\n  - name: r\n"
        + PLAN
        + textwrap.indent(
            textwrap.dedent(
                """\
            description: "{{ summary }} on {{ cis | join(', ') }}"
            custom_tags: {team: "{{ team }}", source: inventory}
            time_zone: Europe/Berlin
            post_maintenance_action: Resolve
            running_policy: restart
            """
            ),
            "      ",
        )
    )
    decision = decide_change(tmp_path, body, {**CHANGE, "team": "dba"})
    assert decision.description == "Patch on web-01, db-01"
    assert decision.custom_tags == (("team", "dba"), ("source", "inventory"))
    assert (decision.time_zone, decision.post_maintenance_action) == ("Europe/Berlin", "Resolve")
    assert decision.running_policy == "restart"


def test_a_rule_sends_its_plan_to_a_named_target(tmp_path):
    mapping = load(
        tmp_path,
        "targets:\n  eu:\n    api_url: https://eu-api.bigpanda.io\n"
        "    api_key_env: BIGPANDA_API_KEY_EU\n"
        "rules:\n  - name: eu\n    filter: {field: region, equals: eu}\n"
        + PLAN
        + "      target: eu\n  - name: rest\n"
        + PLAN,
    )
    assert mapping.targets == {"eu": Target("https://eu-api.bigpanda.io", "BIGPANDA_API_KEY_EU")}
    assert run(mapping, {**CHANGE, "region": "eu"}).decision.target == "eu"
    assert run(mapping, CHANGE).decision.target is None


# --- where the CIs are (cis:) ---------------------------------------------------------------------


def cis_of(tmp_path: Path, cis: str, raw: dict, header: str = GENERIC) -> list[tuple[str, str]]:
    text = header.replace("cis: [{field: hosts}]\n", f"cis: {cis}\n")
    mapping = load(tmp_path, "rules:\n  - name: r\n" + PLAN, text)
    return [(ci.name, ci.ci_class) for ci in received(mapping, raw).cis]


@pytest.mark.parametrize(
    ("cis", "raw", "expected"),
    [
        (  # objects: name, value or displayName
            "[{field: items, class: service}]",
            {"items": [{"name": "a"}, {"value": "b"}, {"displayName": "c"}, {"id": 4}]},
            [("a", "service"), ("b", "service"), ("c", "service")],
        ),
        (  # objects, by a key the file names
            "[{field: items, name: fqdn}]",
            {"items": [{"fqdn": "a.example.com", "name": "a"}]},
            [("a.example.com", "")],
        ),
        ("[{field: items}]", {"items": ["a", " b ", ""]}, [("a", ""), ("b", "")]),
        (  # a comma-separated string, as Jira Automation smart values join them
            "[{field: services, separator: ',', class: service}]",
            {"services": "Payments API, Checkout Web,"},
            [("Payments API", "service"), ("Checkout Web", "service")],
        ),
        (  # dotted paths into objects, and through a list of objects
            "[{field: change.ci.name}, {field: change.hosts.fqdn}]",
            {"change": {"ci": {"name": "a"}, "hosts": [{"fqdn": "b"}, {"fqdn": "c"}]}},
            [("a", ""), ("b", ""), ("c", "")],
        ),
        (  # one CI named by two fields is one CI
            "[{field: primary}, {field: items}]",
            {"primary": "a", "items": ["b", "a"]},
            [("a", ""), ("b", "")],
        ),
        ("[{field: items}]", {"items": None}, []),
    ],
)
def test_cis_are_read_from_the_fields_the_file_names(tmp_path, cis, raw, expected):
    assert cis_of(tmp_path, cis, {**CHANGE, **raw}) == expected


def test_cis_from_the_file_come_after_the_parsers_own(tmp_path):
    header = SERVICENOW + "cis: [{field: extra_cis, separator: ';', class: cmdb_ci_service}]\n"
    body = SN_PLAN + "      condition: {tags: {cmdb_ci_service: service, default: host}}\n"
    mapping = load(tmp_path, body, header)
    raw = scheduled() | {"extra_cis": "checkout-web; lb-edge-02"}
    change = received(mapping, raw)
    assert change.cis[-1] == CI("checkout-web", "cmdb_ci_service")
    assert [ci.name for ci in change.cis].count("lb-edge-02") == 1  # known: not added again
    assert run(mapping, raw).decision.condition == {
        "OR": [
            {"IN": ["host", ["lnx-db-prod-01", "payments-api-prod", "lb-edge-02"]]},
            {"IN": ["service", ["checkout-web"]]},
        ]
    }


# --- version: (generic parser) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "version"),
    [
        ({"revision": "12", "sent_at": "2024-06-10T14:02:33.9+00:00"}, (12.0, 1718028153900.0)),
        ({"revision": 9, "sent_at": 1718028153900}, (9.0, 1718028153900.0)),
        ({"revision": "12.0", "sent_at": "2024-06-10 14:02:33"}, (12.0, 1718028153000.0)),
        ({"revision": 3, "sent_at": "2024-06-10T16:02:33+02:00"}, (3.0, 1718028153000.0)),
    ],
)
def test_version_fields_are_numbers_and_dates_as_epoch_ms(tmp_path, values, version):
    mapping = load(tmp_path, "version: [revision, sent_at]\nrules:\n  - name: r\n" + PLAN)
    assert received(mapping, {**CHANGE, **values}).version == version


def test_without_version_fields_a_generic_change_is_unversioned(tmp_path):
    assert received(load(tmp_path, "rules:\n  - name: r\n" + PLAN), CHANGE).version == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "sent_at: is missing: it orders the updates of a change"),
        ("", "sent_at: is missing: it orders the updates of a change"),
        ("soon", "sent_at: is not a whole number or an ISO 8601 date: 'soon'"),
        (True, "sent_at: is not a number or date: True"),
        ("nan", "sent_at: is not a whole number or an ISO 8601 date: 'nan'"),
        ("1e300", "sent_at: is not a whole number or an ISO 8601 date: '1e300'"),
        (1e300, "sent_at: is not a whole number: a huge number"),
        (12.5, "sent_at: is not a whole number: 12.5"),
    ],
)
def test_a_version_field_that_is_missing_or_not_a_number_is_named(tmp_path, value, message):
    mapping = load(tmp_path, "version: [sent_at]\nrules:\n  - name: r\n" + PLAN)
    with pytest.raises(InvalidChange) as caught:
        received(mapping, {**CHANGE, "sent_at": value})
    assert (caught.value.field, str(caught.value)) == ("sent_at", message)


# --- templates ------------------------------------------------------------------------------------


def test_a_template_over_a_missing_field_names_the_field(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN.replace('"{{ id }}"', '"{{ id }}: {{ title }}"')
    error = refused(load(tmp_path, body), CHANGE)
    assert str(error) == "title: is missing (the plan name template needs it)"
    tag = "rules:\n  - name: r\n" + PLAN + '      custom_tags: {team: "{{ team }}"}\n'
    error = refused(load(tmp_path, tag), CHANGE)
    assert str(error) == "team: is missing (the custom tag team template needs it)"


def test_a_template_over_a_missing_nested_field_names_the_field(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN.replace('"{{ id }}"', '"{{ change.title }}"')
    error = refused(load(tmp_path, body), {**CHANGE, "change": {"owner": "dba"}})
    assert error.field in ("change.title", "title")


def test_a_missing_field_in_the_key_template_is_named(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: r\n" + PLAN)
    error = refused(mapping, {k: v for k, v in CHANGE.items() if k != "id"})
    assert str(error) == "id: is missing (the maintenance_key template needs it)"


def test_an_empty_key_is_refused(tmp_path):
    error = refused(load(tmp_path, "rules:\n  - name: r\n" + PLAN), {**CHANGE, "id": None})
    assert str(error) == "maintenance_key: is empty"


def test_a_null_field_renders_as_nothing(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN.replace('"{{ id }}"', '"{{ id }}: {{ summary }}"')
    assert decide_change(tmp_path, body, {**CHANGE, "summary": None}).name == "CHG1:"


def test_a_plan_name_that_renders_empty_is_refused_at_the_door(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN.replace('"{{ id }}"', '"{{ summary }}"')
    refused(load(tmp_path, body), {**CHANGE, "summary": None})


def test_templates_see_the_cis_and_the_key(tmp_path):
    body = "rules:\n  - name: r\n" + PLAN.replace(
        '"{{ id }}"', "\"{{ maintenance_key }} on {{ cis | join(', ') }} ({{ cis | length }})\""
    )
    assert decide_change(tmp_path, body).name == "CHG1 on web-01, db-01 (2)"


# --- load errors: file, line, rule and field ------------------------------------------------------

BASE = """\
source: inventory
parser: generic
auth: [{type: bearer, secret_env: TOKEN}]
maintenance_key: "{{ id }}"
rules:
  - name: scheduled
    states: [Scheduled]
    plan:
      start: start
      end: end
      name: "{{ id }}"
  - name: closed
    states: [Closed]
    plan:
      start: start
      end: work_end
      name: "{{ id }}"
"""


def edited(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def problems(folder: Path, text: str | None = None, secrets=None) -> list[str]:
    """check_mappings' errors for a folder (holding `text` as f.yaml), the folder as DIR."""
    if text is not None:
        (folder / "f.yaml").write_text(text, encoding="utf-8")
    errors, _ = check_mappings(folder, {"TOKEN": "t" * 16} if secrets is None else secrets)
    return [error.replace(str(folder), "DIR") for error in errors]


def test_the_base_file_of_these_tests_loads(tmp_path):
    assert problems(tmp_path, BASE) == []


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (BASE + "retries: 3\n", "DIR/f.yaml:18: retries: Unknown field."),
        (
            edited("      end: work_end\n", "      end: work_end\n      colour: red\n"),
            "DIR/f.yaml:17: rules[1] (closed).plan.colour: Unknown field.",
        ),
        (
            edited("source: inventory\n", ""),
            "DIR/f.yaml:1: source: Missing data for required field.",
        ),
        (
            BASE.split("    plan:\n      start: start\n      end: work_end")[0],
            "DIR/f.yaml:12: rules[1] (closed).plan: Missing data for required field.",
        ),
        (
            edited("      end: work_end\n", ""),
            "DIR/f.yaml:14: rules[1] (closed).plan.end: Missing data for required field.",
        ),
        (
            edited("  - name: closed\n    states", "  - states"),
            "DIR/f.yaml:12: rules[1].name: Missing data for required field.",
        ),
        (
            edited('end: work_end\n      name: "{{ id }}"', 'end: work_end\n      name: "{{ id }"'),
            "DIR/f.yaml:17: rules[1] (closed).plan.name: template syntax error on line 1: "
            "unexpected '}'",
        ),
        (
            edited('maintenance_key: "{{ id }}"', 'maintenance_key: "{% if id %}"'),
            "DIR/f.yaml:4: maintenance_key: template syntax error on line 1: Unexpected end of "
            "template. Jinja was looking for the following tags: 'elif' or 'else' or 'endif'. "
            "The innermost block that needs to be closed is 'if'.",
        ),
        (
            edited("    states: [Closed]\n", "    filter: {field: work_end, like: x}\n"),
            "DIR/f.yaml:13: rules[1] (closed).filter: filter leaf for 'work_end' has unknown "
            "keys: like (operators: equals, not_equals, in, not_in, contains, not_contains, "
            "starts_with, ends_with, regex, exists, gt, gte, lt, lte)",
        ),
        (
            edited("    states: [Closed]\n", '    filter: "state~~x"\n'),
            "DIR/f.yaml:13: rules[1] (closed).filter: encoded query term 'state~~x' is not "
            "<field><operator><value>",
        ),
        (
            edited(
                "      start: start\n      end: work_end",
                "      start: {field: start, time_zone: Mars/Olympus}\n      end: work_end",
            ),
            "DIR/f.yaml:15: rules[1] (closed).plan.start: time_zone: 'Mars/Olympus' is not an "
            "IANA time zone name such as 'Europe/Berlin'",
        ),
        (
            edited(
                "      start: start\n      end: work_end",
                "      start: start\n      end: {field: work_end, format: dd.mm.yyyy}",
            ),
            "DIR/f.yaml:16: rules[1] (closed).plan.end: format: 'dd.mm.yyyy' is unknown; use "
            "auto, iso8601, epoch_s, epoch_ms or a strptime pattern such as '%d/%m/%Y %H:%M'",
        ),
        (
            BASE + "      pad_after: 15 minutes\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.pad_after: '15 minutes' is not a duration: "
            "use e.g. 90s, 15m, 2h, 1d, 1h30m or PT15M",
        ),
        (
            BASE + "      frequency: Daily\n      frequency_data: {duration: soon}\n",
            "DIR/f.yaml:19: rules[1] (closed).plan.frequency_data.duration: 'soon' is not a "
            "duration: use e.g. 90s, 15m, 2h, 1d, 1h30m or PT15M",
        ),
        (
            BASE + "      custom_tags: {Team: dba}\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.custom_tags.Team.key: BigPanda tag names "
            "start with a lowercase letter and hold only a-z, 0-9, _ and -",
        ),
        (
            BASE + "      condition: {tags: {default: Host}}\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.condition.tags.default.value: BigPanda tag "
            "names start with a lowercase letter and hold only a-z, 0-9, _ and -",
        ),
        (
            BASE + "      condition: {also: [{LIKE: [env, prod]}]}\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.condition.also[0]: clause has unknown operator "
            "'LIKE'; use one of =, !=, ===, IN, NOT IN, AND, OR",
        ),
        (
            BASE + "      condition: {also: [{'=': [env]}]}\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.condition.also[0]: clause.= must be [tag, "
            "value] with the tag name as a string",
        ),
        (
            BASE + "      condition: {match: fuzzy}\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.condition.match: Must be one of: exact, prefix.",
        ),
        (
            BASE + "      running_policy: never\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.running_policy: Must be one of: end_only, "
            "restart.",
        ),
        (
            BASE + "      time_zone: CEST\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.time_zone: unknown time zone 'CEST' (use an "
            "IANA name)",
        ),
        (
            BASE + "      target: eu\n",
            "DIR/f.yaml:18: rules[1] (closed).plan.target: unknown target 'eu'; define it under "
            "`targets:`",
        ),
        (
            edited("    states: [Closed]\n", "    states: []\n"),
            "DIR/f.yaml:13: rules[1] (closed).states: Shorter than minimum length 1.",
        ),
        (
            BASE.split("rules:")[0] + "rules: []\n",
            "DIR/f.yaml:5: rules: Shorter than minimum length 1.",
        ),
        (
            edited("parser: generic", "parser: remedy"),
            "DIR/f.yaml:2: parser: Must be one of: generic, jira, servicenow.",
        ),
        (
            edited("source: inventory", "source: Inventory"),
            "DIR/f.yaml:1: source: use lowercase letters, digits, - and _",
        ),
        (BASE + "version: []\n", "DIR/f.yaml:18: version: Shorter than minimum length 1."),
        (
            BASE + "cis: [{class: service}]\n",
            "DIR/f.yaml:18: cis[0].field: Missing data for required field.",
        ),
    ],
)
def test_a_mistake_is_named_by_file_line_rule_and_field(tmp_path, text, error):
    assert problems(tmp_path, text) == [error]


@pytest.mark.parametrize(
    ("auth", "error"),
    [
        ("", "DIR/f.yaml:1: auth: missing: list the methods senders use, or say `auth: none`"),
        ("auth: []\n", "DIR/f.yaml:3: auth: list at least one method, or say `auth: none`"),
        (
            "auth: [{type: digest, secret_env: TOKEN}]\n",
            "DIR/f.yaml:3: auth[0].type: Must be one of: bearer, basic, header, hmac-sha256.",
        ),
        (
            "auth: [{type: bearer}]\n",
            "DIR/f.yaml:3: auth[0].secret_env: Missing data for required field.",
        ),
        (
            "auth: [{type: header, secret_env: TOKEN}]\n",
            "DIR/f.yaml:3: auth[0].header: name the header that carries the token",
        ),
        (
            "auth: [{type: hmac-sha256, secret_env: TOKEN, encoding: base32}]\n",
            "DIR/f.yaml:3: auth[0].encoding: Must be one of: hex, base64.",
        ),
        (
            "auth: [{type: bearer, secret_env: TOKEN, token: inline}]\n",
            "DIR/f.yaml:3: auth[0].token: Unknown field.",
        ),
        (
            "auth: [{type: bearer, secret_env: NOPE}]\n",
            "DIR/f.yaml:3: auth[0].secret_env: environment variable NOPE is not set",
        ),
        (
            "auth:\n  - {type: bearer, secret_env: TOKEN}\n  - {type: basic, secret_env: NOPE}\n",
            "DIR/f.yaml:5: auth[1].secret_env: environment variable NOPE is not set",
        ),
    ],
)
def test_auth_mistakes_are_named(tmp_path, auth, error):
    assert problems(tmp_path, edited("auth: [{type: bearer, secret_env: TOKEN}]\n", auth)) == [
        error
    ]


def test_an_empty_secret_counts_as_missing(tmp_path):
    assert problems(tmp_path, BASE, secrets={"TOKEN": ""}) == [
        "DIR/f.yaml:3: auth[0].secret_env: environment variable TOKEN is not set"
    ]


def test_auth_none_said_explicitly_needs_no_secret(tmp_path):
    (tmp_path / "f.yaml").write_text(edited("[{type: bearer, secret_env: TOKEN}]", "none"))
    assert load_mappings(tmp_path, {})["inventory"].verifiers == ()


def test_one_auth_method_may_be_written_without_a_list(tmp_path):
    auth = "auth: {type: basic, secret_env: TOKEN, username: bridge}\n"
    (tmp_path / "f.yaml").write_text(edited("auth: [{type: bearer, secret_env: TOKEN}]\n", auth))
    (verifier,) = load_mappings(tmp_path, {"TOKEN": "t" * 16})["inventory"].verifiers
    assert (verifier.kind, verifier.username, verifier.secrets) == ("basic", "bridge", (b"t" * 16,))


def test_without_secrets_a_file_is_checked_but_accepts_no_webhook(tmp_path):
    (tmp_path / "f.yaml").write_text(edited("TOKEN", "NOT_SET_ANYWHERE"))
    verifiers = load_mappings(tmp_path, None)["inventory"].verifiers
    assert not authenticate(verifiers, {"Authorization": "Bearer guess"}, b"{}")


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    (error,) = problems(tmp_path, BASE + "retries: [unclosed\n")
    assert error.startswith("DIR/f.yaml: cannot read YAML: ")
    assert "line 19" in error  # where the parser gave up
    assert "\n" not in error


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("- a\n- b\n", "DIR/f.yaml: must be a mapping of settings, not list"),
        ("just words\n", "DIR/f.yaml: must be a mapping of settings, not str"),
    ],
)
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text, error):
    assert problems(tmp_path, text) == [error]


def test_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "README.md").write_text("not a mapping")
    assert problems(tmp_path) == ["DIR: no mapping files (*.yaml) found"]
    with pytest.raises(ConfigError) as caught:
        load_mappings(tmp_path, {})
    assert str(caught.value) == f"{tmp_path}: no mapping files (*.yaml) found"


def test_two_files_with_the_same_source_are_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yml").write_text(BASE)
    assert problems(tmp_path) == ["DIR/b.yml: source: 'inventory' is already defined in DIR/a.yaml"]


def test_several_sources_load_side_by_side(tmp_path):
    (tmp_path / "a.yaml").write_text(BASE)
    (tmp_path / "b.yml").write_text(edited("source: inventory", "source: inventory-eu"))
    assert sorted(load_mappings(tmp_path, {"TOKEN": "t" * 16})) == ["inventory", "inventory-eu"]


SEVERAL = (
    edited(
        "      end: work_end\n",
        "      end: work_end\n      colour: red\n      pad_after: soon\n",
        edited("parser: generic", "parser: remedy"),
    )
    + "retries: 3\n"
)


def test_every_mistake_in_a_file_is_reported_and_loading_stops_on_the_first(tmp_path):
    errors = problems(tmp_path, SEVERAL)
    assert sorted(errors) == sorted(
        [
            "DIR/f.yaml:2: parser: Must be one of: generic, jira, servicenow.",
            "DIR/f.yaml:17: rules[1] (closed).plan.colour: Unknown field.",
            "DIR/f.yaml:18: rules[1] (closed).plan.pad_after: 'soon' is not a duration: use e.g. "
            "90s, 15m, 2h, 1d, 1h30m or PT15M",
            "DIR/f.yaml:20: retries: Unknown field.",
        ]
    )
    with pytest.raises(ConfigError) as caught:
        load_mappings(tmp_path, {"TOKEN": "t" * 16})
    first = errors[0].replace("DIR", str(tmp_path))
    assert str(caught.value) == first + " (and 3 more: run `bridge mappings check`)"


def test_every_broken_file_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text(edited("parser: generic", "parser: x"))
    (tmp_path / "b.yaml").write_text(edited("source: inventory", "source: other") + "retries: 3\n")
    (tmp_path / "c.yaml").write_text(edited("source: inventory", "source: fine"))
    errors, loaded = check_mappings(tmp_path, {"TOKEN": "t" * 16})
    assert [e.replace(str(tmp_path), "DIR") for e in errors] == [
        "DIR/a.yaml:2: parser: Must be one of: generic, jira, servicenow.",
        "DIR/b.yaml:18: retries: Unknown field.",
    ]
    assert loaded == [str(tmp_path / "c.yaml")]


def test_a_missing_secret_is_reported_with_the_other_mistakes(tmp_path):
    errors = problems(tmp_path, edited("TOKEN", "NOPE") + "retries: 3\n")
    assert sorted(errors) == sorted(
        [
            "DIR/f.yaml:3: auth[0].secret_env: environment variable NOPE is not set",
            "DIR/f.yaml:18: retries: Unknown field.",
        ]
    )


def test_every_bad_auth_entry_is_reported(tmp_path):
    auth = "auth:\n  - {type: bearer, secret_env: A}\n  - {type: header, secret_env: B}\n"
    errors = problems(tmp_path, edited("auth: [{type: bearer, secret_env: TOKEN}]\n", auth))
    assert errors == [
        "DIR/f.yaml:4: auth[0].secret_env: environment variable A is not set",
        "DIR/f.yaml:5: auth[1].header: name the header that carries the token",
    ]


def test_every_unknown_target_is_reported_with_the_other_mistakes(tmp_path):
    text = edited(
        'end: end\n      name: "{{ id }}"', 'end: end\n      name: "{{ id }}"\n      target: eu'
    )
    errors = problems(tmp_path, text + "      target: us\nretries: 3\n")
    assert sorted(errors) == sorted(
        [
            "DIR/f.yaml:12: rules[0] (scheduled).plan.target: unknown target 'eu'; define it "
            "under `targets:`",
            "DIR/f.yaml:19: rules[1] (closed).plan.target: unknown target 'us'; define it under "
            "`targets:`",
            "DIR/f.yaml:20: retries: Unknown field.",
        ]
    )


DEFAULTS = """\
source: inventory
parser: generic
auth: none
maintenance_key: "{{ id }}"
defaults:
  start: start
  end: end
  name: "{{ id }}"
  colour: red
rules:
  - name: a
    plan: {}
  - name: b
    plan: {}
"""


def test_a_mistake_in_defaults_is_reported(tmp_path):
    errors = problems(tmp_path, DEFAULTS)
    assert errors  # reported, if at every rule that takes the default (see the next test)
    assert all("colour: Unknown field." in error for error in errors)


def test_a_mistake_in_defaults_is_named_at_its_place_in_defaults(tmp_path):
    assert problems(tmp_path, DEFAULTS) == ["DIR/f.yaml:9: defaults.colour: Unknown field."]


# --- blast radius and ownership in the mapping language -------------------------------------------


@pytest.mark.parametrize(
    "clause",
    [
        '{"=": [host, {type: regex, value: "*"}]}',
        '{"=": [host, {type: regex, value: "?*"}]}',
        '{"=": [host, {type: formal-regex, value: ".*"}]}',
        '{"=": [host, {type: formal-regex, value: "^"}]}',
        '{"IN": [host, [a, {type: regex, value: "**"}]]}',
        '{"OR": [{"=": [env, prod]}, {"=": [host, {type: formal-regex, value: "(.+)"}]}]}',
    ],
)
def test_a_fixed_clause_that_matches_every_alert_is_refused_at_load(tmp_path, clause):
    text = edited("      name: \"{{ id }}\"\n  - name: closed", (
        f"      name: \"{{{{ id }}}}\"\n      condition: {{also: [{clause}]}}\n  - name: closed"
    ))  # fmt: skip
    [error] = problems(tmp_path, text)
    assert "rules[0].plan.condition.also[0]" in error or "also" in error
    assert "would match every alert" in error


@pytest.mark.parametrize(
    "clause",
    [
        '{"=": [host, {type: regex, value: "web-*"}]}',
        '{"=": [host, {type: formal-regex, value: "^db-[0-9]+$"}]}',
        '{"!=": [env, dev]}',
        '{"=": [host, "*"]}',  # a plain value is a literal
    ],
)
def test_a_narrowing_fixed_clause_loads(tmp_path, clause):
    text = edited("      name: \"{{ id }}\"\n  - name: closed", (
        f"      name: \"{{{{ id }}}}\"\n      condition: {{also: [{clause}]}}\n  - name: closed"
    ))  # fmt: skip
    assert problems(tmp_path, text) == []


def test_the_ownership_tag_cannot_be_set_by_a_mapping_file(tmp_path):
    text = edited("      name: \"{{ id }}\"\n  - name: closed", (
        "      name: \"{{ id }}\"\n      custom_tags: {bridge_owner: me}\n  - name: closed"
    ))  # fmt: skip
    [error] = problems(tmp_path, text)
    assert "bridge_owner is the bridge's ownership mark" in error


@pytest.mark.parametrize("value", ["0", "-3", "many", "1.5"])
def test_max_cis_must_be_a_positive_whole_number(tmp_path, value):
    text = edited("      name: \"{{ id }}\"\n  - name: closed", (
        f"      name: \"{{{{ id }}}}\"\n      max_cis: {value}\n  - name: closed"
    ))  # fmt: skip
    [error] = problems(tmp_path, text)
    assert "max_cis" in error


def test_max_cis_allows_up_to_its_count(tmp_path):
    mapping = load(tmp_path, "rules:\n  - name: r\n" + PLAN + "      max_cis: 2\n")
    assert isinstance(run(mapping, {**CHANGE, "hosts": ["a", "b"]}).decision, DesiredPlan)
    error = refused(mapping, {**CHANGE, "hosts": ["a", "b", "c"]})
    assert (error.field, "lists 3 CIs, over the rule's max_cis of 2" in str(error)) == ("cis", True)


def test_adoption_is_off_unless_a_file_says_so(tmp_path, shipped):
    assert not shipped["servicenow"].adopt_unmarked_plans
    assert load(
        tmp_path, "adopt_unmarked_plans: true\nrules:\n  - name: r\n" + PLAN
    ).adopt_unmarked_plans


@pytest.mark.parametrize(
    ("names", "match"),
    [
        (["*"], "exact"),
        (["?"], "exact"),
        ([" * "], "exact"),
        (["web-*"], "prefix"),
        (["a?"], "prefix"),
    ],
)
def test_ci_names_that_would_widen_the_condition_are_refused_naming_the_ci(tmp_path, names, match):
    mapping = load(
        tmp_path, "rules:\n  - name: r\n" + PLAN + f"      condition: {{match: {match}}}\n"
    )
    error = refused(mapping, {**CHANGE, "hosts": ["db-01", *names]})
    assert error.field == "cis"
    assert f"CI 2 ({names[0].strip()!r}" in str(error)


@pytest.mark.parametrize(
    ("condition", "everything"),
    [
        ({"IN": ["host", ["a", "b"]]}, False),
        ({"=": ["host", {"type": "regex", "value": "*"}]}, True),
        ({"OR": [{"IN": ["host", ["a"]]}, {"=": ["host", {"type": "regex", "value": "*"}]}]}, True),
        (
            {"AND": [{"IN": ["host", ["a"]]}, {"=": ["host", {"type": "regex", "value": "*"}]}]},
            False,
        ),
        (
            {
                "AND": [
                    {"=": ["x", {"type": "regex", "value": "*"}]},
                    {"=": ["y", {"type": "formal-regex", "value": ".*"}]},
                ]
            },
            True,
        ),
        ({"NOT IN": ["host", ["a"]]}, False),
        ({"=": ["host", {"type": "formal-regex", "value": "[a-z]"}]}, False),
    ],
)
def test_matches_everything_judges_whole_conditions(condition, everything):
    assert (matches_everything(condition) is not None) == everything

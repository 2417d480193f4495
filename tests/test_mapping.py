"""Mapping files: the shipped servicenow.yaml decides plans; the loader names what is wrong."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from bridge.errors import ConfigError, InvalidChange
from bridge.mapping.condition import MAX_CONDITION_CHARS, check_condition, condition_length
from bridge.mapping.loader import load_mappings
from bridge.mapping.rules import decide
from bridge.model import CI, Change, DesiredPlan, NoPlan
from bridge.sources.servicenow import parse

ROOT = Path(__file__).parent.parent
PAYLOADS = Path(__file__).parent / "payloads" / "servicenow"
SECRETS = {"SERVICENOW_WEBHOOK_TOKEN": "x"}
JUNE_1 = 1717200000  # 2024-06-01 00:00:00 UTC: every sample window lies ahead
JUNE_15_0100 = 1718413200  # 2024-06-15 01:00:00 UTC
JUNE_15_0300 = 1718420400  # 2024-06-15 03:00:00 UTC
THREE_CIS = ["lnx-db-prod-01", "payments-api-prod", "lb-edge-02"]


@pytest.fixture(scope="module")
def mapping():
    return load_mappings(ROOT / "mappings", SECRETS)["servicenow"]


def sample(name: str) -> dict:
    return json.loads((PAYLOADS / f"servicenow_{name}.json").read_text(encoding="utf-8"))


def change_from(name: str, **overrides) -> Change:
    """A sample parsed after setting fields; a field set to None is removed from the record."""
    raw = sample(name)
    for field, value in overrides.items():
        if value is None:
            raw.pop(field, None)
        else:
            raw[field] = value
    return parse(raw)


def invalid_field(mapping, change: Change, now: float = JUNE_1) -> str:
    with pytest.raises(InvalidChange) as caught:
        decide(mapping, change, now)
    return caught.value.field


# --- the shipped mapping --------------------------------------------------------------------------


def test_shipped_mapping_loads(mapping):
    assert mapping.source == "servicenow"
    assert len(mapping.verifiers) == 2
    assert {verifier.kind for verifier in mapping.verifiers} == {"bearer", "basic"}


def test_scheduled_change_gets_its_plan(mapping):
    plan = decide(mapping, change_from("change_scheduled"), JUNE_1)
    assert plan == DesiredPlan(
        maintenance_key="CHG0030412",
        name="CHG0030412: Upgrade PostgreSQL on lnx-db-prod-01 from 15.5 to 15.7",
        condition={"IN": ["host", THREE_CIS]},
        start=JUNE_15_0100,
        end=JUNE_15_0300,
        description="ServiceNow change CHG0030412 (normal)",
        custom_tags=(("maintenance_key", "CHG0030412"),),
        time_zone="UTC",
        frequency="Once",
        post_maintenance_action="None",
        running_policy="end_only",
    )


def test_rescheduled_change_moves_the_window(mapping):
    plan = decide(mapping, change_from("change_rescheduled"), JUNE_1)
    assert (plan.start, plan.end) == (1718499600, 1718510400)  # 16 Jun 01:00-04:00 UTC


def test_display_value_all_window_uses_the_utc_values(mapping):
    plan = decide(mapping, change_from("change_api_display_value_all"), JUNE_1)
    assert (plan.start, plan.end) == (1718499600, 1718510400)  # not 15 Jun 18:00-21:00
    assert plan.condition == {"IN": ["host", ["lnx-db-prod-01"]]}


def test_implement_change_gets_a_plan(mapping):
    plan = decide(mapping, change_from("change_emergency_implement"), JUNE_1)
    assert isinstance(plan, DesiredPlan)
    assert plan.maintenance_key == "CHG0030421"
    assert (plan.start, plan.end) == (1718417700, 1718422200)  # 02:15-03:30 UTC
    assert plan.name == "CHG0030421: Emergency failover of payments DB primary to lnx-db-prod-02"


@pytest.mark.parametrize("state", ["Scheduled", "implement", "-2", -1, -2.0])
def test_rule_states_match_labels_and_numbers(mapping, state):
    assert isinstance(
        decide(mapping, change_from("change_scheduled", state=state), JUNE_1), DesiredPlan
    )


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("change_canceled", {}),
        ("change_closed_early", {}),
        ("change_scheduled", {"state": "-5"}),  # New
        ("change_scheduled", {"state": "New"}),
        ("change_scheduled", {"state": "0"}),  # Review
        ("change_task", {}),  # a change_task's own state model (1 Open)
    ],
)
def test_unselected_states_get_no_plan(mapping, name, overrides):
    decision = decide(mapping, change_from(name, **overrides), JUNE_1)
    assert decision == NoPlan(parse(sample(name)).fields["number"], "not_selected")


def test_canceled_change_without_dates_is_no_plan_not_an_error(mapping):
    change = change_from("change_canceled", start_date=None, end_date=None)
    assert decide(mapping, change, JUNE_1) == NoPlan("CHG0030415", "not_selected")


def test_canceled_change_with_broken_dates_is_no_plan_not_an_error(mapping):
    change = change_from("change_canceled", start_date="soon", end_date="2024-06-01 00:00:00")
    assert decide(mapping, change, JUNE_1) == NoPlan("CHG0030415", "not_selected")


def test_window_over_is_no_plan(mapping):
    july = 1719792000
    assert decide(mapping, change_from("change_scheduled"), july) == NoPlan(
        "CHG0030412", "window_over"
    )


def test_window_ending_exactly_now_is_over(mapping):
    change = change_from("change_scheduled")
    assert decide(mapping, change, JUNE_15_0300) == NoPlan("CHG0030412", "window_over")
    assert isinstance(decide(mapping, change, JUNE_15_0300 - 1), DesiredPlan)


def test_window_already_started_keeps_its_start(mapping):
    plan = decide(mapping, change_from("change_scheduled"), JUNE_15_0100 + 600)
    assert (plan.start, plan.end) == (JUNE_15_0100, JUNE_15_0300)


def test_no_ci_is_no_plan(mapping):
    change = change_from("table_api_change_request")  # cmdb_ci is a bare {link, value}
    assert decide(mapping, change, JUNE_1) == NoPlan("CHG0030412", "no_ci")


def test_no_ci_on_an_over_window_reports_the_window(mapping):
    change = change_from("table_api_change_request")
    assert decide(mapping, change, 1719792000) == NoPlan("CHG0030412", "window_over")


def test_condition_deduplicates_ci_names_in_order(mapping):
    cis = [{"name": "b"}, {"name": "a"}, {"name": "b"}]
    change = change_from("change_scheduled", affected_cis=cis, cmdb_ci=None)
    assert decide(mapping, change, JUNE_1).condition == {"IN": ["host", ["b", "a"]]}


def test_end_before_start_names_end_date(mapping):
    change = change_from("change_scheduled", end_date="2024-06-15 00:59:59")
    assert invalid_field(mapping, change) == "end_date"


def test_end_equal_to_start_names_end_date(mapping):
    change = change_from("change_scheduled", end_date="2024-06-15 01:00:00")
    assert invalid_field(mapping, change) == "end_date"


@pytest.mark.parametrize("field", ["start_date", "end_date"])
@pytest.mark.parametrize("value", [None, ""])
def test_missing_date_on_a_scheduled_change_is_named(mapping, field, value):
    change = change_from("change_scheduled", **{field: value})
    assert invalid_field(mapping, change) == field


@pytest.mark.parametrize(
    "value",
    ["06/15/2024 01:00", "2024-06-15T01:00:00Z", {"display_value": "2024-06-14 18:00:00"}],
)
def test_date_not_in_utc_internal_format_is_named(mapping, value):
    change = change_from("change_scheduled", start_date=value)
    assert invalid_field(mapping, change) == "start_date"


def test_name_template_over_a_missing_field_names_it(mapping):
    change = change_from("change_scheduled", short_description=None)
    with pytest.raises(InvalidChange) as caught:
        decide(mapping, change, JUNE_1)
    assert caught.value.field == "short_description"
    assert "plan name" in str(caught.value)


def test_null_field_renders_as_empty_text_not_none(mapping):
    change = parse(sample("change_scheduled") | {"short_description": None})
    assert decide(mapping, change, JUNE_1).name == "CHG0030412:"


def test_empty_maintenance_key_is_refused(tmp_path):
    write(tmp_path, "s.yaml", SOURCE.replace('"{{ number }}"', '"{{ number[:0] }}"'))
    mapping = load_mappings(tmp_path, SECRETS)["servicenow"]
    assert invalid_field(mapping, change_from("change_scheduled")) == "maintenance_key"


def test_condition_over_the_limit_is_refused(mapping):
    cis = [{"name": f"host-{i:04d}-" + "x" * 90} for i in range(250)]
    change = change_from("change_scheduled", affected_cis=cis)
    with pytest.raises(InvalidChange) as caught:
        decide(mapping, change, JUNE_1)
    assert caught.value.field == "condition"
    assert "25000" in str(caught.value)


def test_condition_length_boundary_counts_compact_json():
    # {"IN":["host",["…"]]} is 20 characters around the name.
    assert condition_length({"IN": ["host", ["a"]]}) == 21
    check_condition({"IN": ["host", ["a" * (MAX_CONDITION_CHARS - 20)]]})
    with pytest.raises(InvalidChange):
        check_condition({"IN": ["host", ["a" * (MAX_CONDITION_CHARS - 19)]]})


def test_condition_length_counts_non_ascii_as_one_character():
    check_condition({"IN": ["host", ["é" * (MAX_CONDITION_CHARS - 20)]]})


def test_decide_reads_cis_from_the_change_not_its_fields(mapping):
    change = Change(
        source="servicenow",
        fields=parse(sample("change_scheduled")).fields,
        version=(1, 0),
        cis=(CI("Web-01", "cmdb_ci_win_server"),),
    )
    assert decide(mapping, change, JUNE_1).condition == {"IN": ["host", ["Web-01"]]}


# --- the loader -----------------------------------------------------------------------------------

SOURCE = textwrap.dedent(
    """\
    source: servicenow
    parser: servicenow
    auth:
      - type: bearer
        secret_env: SERVICENOW_WEBHOOK_TOKEN
    maintenance_key: "{{ number }}"
    rules:
      - name: scheduled
        states: [Scheduled]
        plan:
          window: {start: start_date, end: end_date}
          name: "{{ number }}"
          condition: {tag: host}
    """
)
AUTH = "auth:\n  - type: bearer\n    secret_env: SERVICENOW_WEBHOOK_TOKEN\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def with_auth(auth: str) -> str:
    assert AUTH in SOURCE
    return SOURCE.replace(AUTH, auth)


def config_error(folder: Path, secrets=SECRETS) -> str:
    """The ConfigError's message, the folder written as DIR (tmp_path names hold test names)."""
    with pytest.raises(ConfigError) as caught:
        load_mappings(folder, secrets)
    return str(caught.value).replace(str(folder), "DIR")


def test_minimal_file_loads(tmp_path):
    write(tmp_path, "servicenow.yaml", SOURCE)
    mapping = load_mappings(tmp_path, SECRETS)["servicenow"]
    assert mapping.path == tmp_path / "servicenow.yaml"
    plan = decide(mapping, change_from("change_scheduled"), JUNE_1)
    assert (plan.name, plan.description, plan.custom_tags) == ("CHG0030412", "", ())
    assert plan.post_maintenance_action == "None"
    assert plan.running_policy == "end_only"


def test_missing_secret_names_the_variable_and_the_file(tmp_path):
    write(tmp_path, "servicenow.yaml", SOURCE)
    message = config_error(tmp_path, secrets={})
    assert message.startswith("DIR/servicenow.yaml: auth[0]: ")
    assert "SERVICENOW_WEBHOOK_TOKEN" in message


def test_empty_secret_counts_as_missing(tmp_path):
    write(tmp_path, "servicenow.yaml", SOURCE)
    assert "SERVICENOW_WEBHOOK_TOKEN" in config_error(
        tmp_path, secrets={"SERVICENOW_WEBHOOK_TOKEN": ""}
    )


def test_shipped_folder_without_its_secret_is_refused():
    folder = ROOT / "mappings"
    message = config_error(folder, secrets={})
    assert message.startswith("DIR/servicenow.yaml: ")
    assert "SERVICENOW_WEBHOOK_TOKEN" in message


def test_no_auth_section_is_refused(tmp_path):
    write(tmp_path, "s.yaml", with_auth(""))
    assert config_error(tmp_path).startswith("DIR/s.yaml: auth: ")


@pytest.mark.parametrize(
    ("auth", "named"), [("[]", "auth"), ("null", "auth"), ("bearer", "auth[0].type")]
)
def test_empty_or_vague_auth_is_refused(tmp_path, auth, named):
    write(tmp_path, "s.yaml", with_auth(f"auth: {auth}\n"))
    assert config_error(tmp_path).startswith(f"DIR/s.yaml: {named}: ")


def test_auth_none_said_explicitly_is_accepted(tmp_path):
    write(tmp_path, "s.yaml", with_auth("auth: none\n"))
    assert load_mappings(tmp_path, {})["servicenow"].verifiers == ()


def test_auth_as_a_single_method_without_a_list(tmp_path):
    auth = "auth: {type: basic, secret_env: SERVICENOW_WEBHOOK_TOKEN, username: bridge}\n"
    write(tmp_path, "s.yaml", with_auth(auth))
    (verifier,) = load_mappings(tmp_path, SECRETS)["servicenow"].verifiers
    assert (verifier.kind, verifier.username, verifier.secret) == ("basic", "bridge", b"x")


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("{type: digest, secret_env: X}", "auth[0].type"),
        ("{type: bearer}", "auth[0].secret_env"),
        ("{type: header, secret_env: X}", "auth[0].header"),
        ("{type: hmac-sha256, secret_env: X, encoding: base32}", "auth[0].encoding"),
        ("{type: bearer, secret_env: X, token: inline}", "auth[0].token"),
    ],
)
def test_bad_auth_entry_names_its_field(tmp_path, entry, named):
    write(tmp_path, "s.yaml", with_auth(f"auth: [{entry}]\n"))
    assert config_error(tmp_path, secrets={"X": "x"}).startswith(f"DIR/s.yaml: {named}: ")


def test_second_auth_entry_is_named_by_index(tmp_path):
    auth = "auth: [{type: bearer, secret_env: X}, {type: basic, secret_env: Y}]\n"
    write(tmp_path, "s.yaml", with_auth(auth))
    message = config_error(tmp_path, secrets={"X": "x"})
    assert message == "DIR/s.yaml: auth[1]: environment variable Y is not set"


def test_unknown_top_level_key_is_named(tmp_path):
    write(tmp_path, "s.yaml", SOURCE + "retries: 3\n")
    assert config_error(tmp_path).startswith("DIR/s.yaml: retries: ")


def test_unknown_key_inside_a_plan_is_named(tmp_path):
    write(tmp_path, "s.yaml", SOURCE + "      colour: red\n")
    assert config_error(tmp_path).startswith("DIR/s.yaml: rules.0.plan.colour: ")


def test_rule_without_plan_is_refused(tmp_path):
    write(tmp_path, "s.yaml", SOURCE.split("    plan:\n")[0])
    assert config_error(tmp_path).startswith("DIR/s.yaml: rules.0.plan: ")


def test_rule_with_plan_none_selects_without_a_plan(tmp_path):
    text = SOURCE.replace(
        "rules:\n", "rules:\n  - name: hold\n    states: [Scheduled]\n    plan: none\n"
    )
    write(tmp_path, "s.yaml", text)
    mapping = load_mappings(tmp_path, SECRETS)["servicenow"]
    assert decide(mapping, change_from("change_scheduled"), JUNE_1) == NoPlan(
        "CHG0030412", "not_selected"
    )


def test_rule_without_states_matches_every_change(tmp_path):
    write(tmp_path, "s.yaml", SOURCE.replace("    states: [Scheduled]\n", ""))
    mapping = load_mappings(tmp_path, SECRETS)["servicenow"]
    assert isinstance(decide(mapping, change_from("change_canceled"), JUNE_1), DesiredPlan)


def test_numeric_states_in_yaml_match(tmp_path):
    write(tmp_path, "s.yaml", SOURCE.replace("states: [Scheduled]", "states: [-2]"))
    mapping = load_mappings(tmp_path, SECRETS)["servicenow"]
    assert isinstance(decide(mapping, change_from("change_scheduled"), JUNE_1), DesiredPlan)
    implement = decide(mapping, change_from("change_emergency_implement"), JUNE_1)
    assert implement == NoPlan("CHG0030421", "not_selected")


def test_plan_options_reach_the_desired_plan(tmp_path):
    options = textwrap.dedent(
        """\
        description: "{{ type | upper }}"
        custom_tags: {Team: "{{ assignment_group_display }}"}
        post_maintenance_action: Resolve
        running_policy: restart
        """
    )
    text = SOURCE.replace("tag: host", "tag: Host") + textwrap.indent(options, "      ")
    write(tmp_path, "s.yaml", text)
    mapping = load_mappings(tmp_path, SECRETS)["servicenow"]
    plan = decide(mapping, change_from("change_scheduled"), JUNE_1)
    assert plan.description == "NORMAL"
    assert plan.custom_tags == (("team", "Database"),)
    assert plan.condition == {"IN": ["host", THREE_CIS]}
    assert (plan.post_maintenance_action, plan.running_policy) == ("Resolve", "restart")


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ('name: "{{ number }}"', 'name: "{{ number }"', "rules[0] (scheduled) plan name"),
        ('name: "{{ number }}"', 'name: "{% if number %}"', "rules[0] (scheduled) plan name"),
        ('maintenance_key: "{{ number }}"', 'maintenance_key: "{{ }}"', "maintenance_key"),
    ],
)
def test_bad_template_syntax_names_the_field(tmp_path, old, new, named):
    write(tmp_path, "s.yaml", SOURCE.replace(old, new))
    message = config_error(tmp_path)
    assert message.startswith(f"DIR/s.yaml: {named}: template syntax error on line 1")


def test_unknown_parser_is_refused(tmp_path):
    write(tmp_path, "s.yaml", SOURCE.replace("parser: servicenow", "parser: remedy"))
    assert config_error(tmp_path).startswith("DIR/s.yaml: parser: ")


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        ("source: servicenow", "source: Service Now", "source"),
        ("tag: host", "tag: 9host", "rules.0.plan.condition.tag"),
        ("    states: [Scheduled]\n", "    states: []\n", "rules.0.states"),
        ("{start: start_date, end: end_date}", "{start: start_date}", "rules.0.plan.window.end"),
        ("    plan:\n", "    plan:\n      running_policy: never\n", "rules.0.plan.running_policy"),
    ],
)
def test_invalid_settings_are_named(tmp_path, old, new, named):
    text = SOURCE.replace(old, new)
    assert text != SOURCE
    write(tmp_path, "s.yaml", text)
    assert config_error(tmp_path).startswith(f"DIR/s.yaml: {named}: ")


def test_a_file_without_rules_is_refused(tmp_path):
    write(tmp_path, "s.yaml", SOURCE.split("rules:")[0] + "rules: []\n")
    assert config_error(tmp_path).startswith("DIR/s.yaml: rules: ")


@pytest.mark.parametrize("text", ["", "- a list\n", "source: [unclosed\n"])
def test_a_file_that_is_not_a_mapping_is_refused(tmp_path, text):
    write(tmp_path, "s.yaml", text)
    assert config_error(tmp_path).startswith("DIR/s.yaml: ")


def test_empty_folder_is_refused(tmp_path):
    write(tmp_path, "README.md", "not a mapping")
    assert config_error(tmp_path) == "DIR: no mapping files (*.yaml) found"


def test_two_files_with_the_same_source_are_refused(tmp_path):
    write(tmp_path, "a.yaml", SOURCE)
    write(tmp_path, "b.yml", SOURCE)
    message = config_error(tmp_path)
    assert message.startswith("DIR/b.yml: source: ")
    assert "already defined in DIR/a.yaml" in message


def test_two_sources_load_side_by_side(tmp_path):
    write(tmp_path, "a.yaml", SOURCE)
    write(tmp_path, "b.yaml", SOURCE.replace("source: servicenow", "source: servicenow-eu"))
    assert sorted(load_mappings(tmp_path, SECRETS)) == ["servicenow", "servicenow-eu"]


def test_every_broken_file_is_counted(tmp_path):
    write(tmp_path, "a.yaml", SOURCE.replace("parser: servicenow", "parser: x"))
    write(tmp_path, "b.yaml", SOURCE.replace("parser: servicenow", "parser: y"))
    message = config_error(tmp_path)
    assert message.startswith("DIR/a.yaml: parser: ")
    assert "(and 1 more" in message

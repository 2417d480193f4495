"""The pure diff (diff.py): every row of SPEC's desired-state table, and the calls it makes."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.engine.diff import Call, Diff, plan_diff
from bridge.model import DesiredPlan, NoPlan, Plan, normalized_fields

NOW = 1_718_000_000
START = NOW + 3_600
END = NOW + 10_800
PLAN_ID = "64f0b24f340000bbd269595c"


@pytest.fixture
def desired() -> DesiredPlan:
    return DesiredPlan(
        maintenance_key="CHG0030412",
        name="CHG0030412: Upgrade PostgreSQL",
        condition={"IN": ["host", ["lnx-db-prod-01", "payments-api-prod"]]},
        start=START,
        end=END,
        description="ServiceNow change CHG0030412 (normal)",
        custom_tags=(("maintenance_key", "CHG0030412"), ("team", "Database")),
    )


def plan(status: str, desired: DesiredPlan, **changes) -> Plan:
    """BigPanda's plan of the key: the desired plan's body with some fields changed."""
    body = {**desired.body(), **changes}
    return Plan(id=PLAN_ID, status=status, fields=normalized_fields(body))


def running(desired: DesiredPlan, **changes) -> Plan:
    """A plan that started before now (its start is in the past)."""
    return plan("running", replace(desired, start=NOW - 600), **changes)


FULL_BODY = {
    "name": "CHG0030412: Upgrade PostgreSQL",
    "condition": {"IN": ["host", ["lnx-db-prod-01", "payments-api-prod"]]},
    "start": START,
    "end": END,
    "description": "ServiceNow change CHG0030412 (normal)",
    "custom_tags": [
        {"name": "maintenance_key", "value": "CHG0030412"},
        {"name": "team", "value": "Database"},
    ],
    "time_zone": "UTC",
    "frequency": "Once",
    "post_maintenance_action": "None",
    "maintenance_key": "CHG0030412",
}


# --- a plan is wanted -----------------------------------------------------------------------------


def test_plan_and_none_creates_with_the_full_body(desired):
    result = plan_diff(desired, None, NOW)
    assert result == Diff((Call("create", body=FULL_BODY),))


def test_plan_and_only_an_ended_plan_creates(desired):
    ended = plan("ended", desired, start=NOW - 90_000, end=NOW - 86_400)
    assert plan_diff(desired, ended, NOW) == Diff((Call("create", body=FULL_BODY),))


def test_plan_and_an_ended_plan_with_the_same_fields_still_creates(desired):
    assert plan_diff(desired, plan("ended", desired), NOW).calls == (
        Call("create", body=FULL_BODY),
    )


def test_plan_and_planned_with_the_same_fields_makes_no_call(desired):
    assert plan_diff(desired, plan("planned", desired), NOW) == Diff()


@pytest.mark.parametrize(
    "change",
    [
        {"name": "CHG0030412: old title"},
        {"condition": {"IN": ["host", ["lnx-db-prod-01"]]}},
        {"start": START - 3_600},
        {"end": END + 3_600},
        {"description": "old"},
        {"custom_tags": [{"name": "maintenance_key", "value": "CHG0030412"}]},
        {"post_maintenance_action": "Resolve"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_plan_and_planned_differing_sends_one_update_with_every_owned_field(desired, change):
    result = plan_diff(desired, plan("planned", desired, **change), NOW)
    assert result == Diff((Call("update", plan_id=PLAN_ID, body=FULL_BODY),))


def test_plan_and_running_with_a_new_end_updates_only_end(desired):
    actual = running(desired, end=END - 1_800)
    result = plan_diff(desired, actual, NOW)
    assert result == Diff((Call("update", plan_id=PLAN_ID, body={"end": END}),))


def test_plan_and_running_with_the_same_fields_makes_no_call(desired):
    assert plan_diff(desired, plan("running", desired), NOW) == Diff()


def test_plan_and_running_with_only_another_start_makes_no_call(desired):
    # A running plan's start cannot change; the change's moved start is not worth a call.
    assert plan_diff(desired, running(desired), NOW) == Diff()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "CHG0030412: old title"}, "name"),
        ({"condition": {"IN": ["host", ["lnx-db-prod-01"]]}}, "condition"),
    ],
)
def test_running_end_only_policy_updates_end_and_warns_naming_the_field(desired, change, field):
    actual = running(desired, end=END - 1_800, **change)
    result = plan_diff(desired, actual, NOW)
    assert result.calls == (Call("update", plan_id=PLAN_ID, body={"end": END}),)
    assert result.warning is not None
    assert field in result.warning
    assert "end_only" in result.warning


def test_running_end_only_policy_with_the_same_end_only_warns(desired):
    result = plan_diff(desired, running(desired, name="CHG0030412: old title"), NOW)
    assert result.calls == ()
    assert result.warning is not None
    assert "name" in result.warning
    assert "condition" not in result.warning


def test_running_warning_lists_every_field_kept(desired):
    actual = running(desired, name="old", condition={"=": ["host", "x"]})
    warning = plan_diff(desired, actual, NOW).warning
    assert "name" in warning
    assert "condition" in warning


def test_no_warning_when_nothing_is_kept(desired):
    assert plan_diff(desired, running(desired, end=END - 1), NOW).warning is None


@pytest.mark.parametrize(
    "change",
    [{"name": "CHG0030412: old title"}, {"condition": {"IN": ["host", ["lnx-db-prod-01"]]}}],
    ids=["name", "condition"],
)
def test_running_restart_policy_stops_then_creates_from_now(desired, change):
    desired = replace(desired, running_policy="restart", start=NOW - 600)
    result = plan_diff(desired, running(desired, **change), NOW)
    assert result == Diff(
        (Call("stop", plan_id=PLAN_ID), Call("create", body={**FULL_BODY, "start": NOW}))
    )


def test_restart_never_creates_a_plan_that_starts_in_the_past(desired):
    desired = replace(desired, running_policy="restart", start=NOW - 7_200)
    result = plan_diff(desired, running(desired, name="old"), NOW + 0.75)
    (stop, create) = result.calls
    assert stop == Call("stop", plan_id=PLAN_ID)
    assert create.action == "create"
    assert create.body["start"] == NOW
    assert isinstance(create.body["start"], int)
    assert create.body["end"] == END
    assert create.body["name"] == desired.name


def test_restart_policy_with_only_a_new_end_updates_end(desired):
    desired = replace(desired, running_policy="restart")
    result = plan_diff(desired, running(desired, end=END + 600), NOW)
    assert result == Diff((Call("update", plan_id=PLAN_ID, body={"end": END}),))


def test_restart_policy_does_not_touch_a_planned_plan(desired):
    desired = replace(desired, running_policy="restart")
    result = plan_diff(desired, plan("planned", desired, name="old"), NOW)
    assert result.calls == (Call("update", plan_id=PLAN_ID, body=FULL_BODY),)


# --- no plan is wanted ----------------------------------------------------------------------------

NO_PLAN = [
    NoPlan("CHG0030412", "not_selected"),
    NoPlan("CHG0030412", "window_over"),
    NoPlan("CHG0030412", "no_ci"),
    None,
]


@pytest.mark.parametrize("decision", NO_PLAN)
def test_no_plan_and_planned_deletes(desired, decision):
    result = plan_diff(decision, plan("planned", desired), NOW)
    assert result == Diff((Call("delete", plan_id=PLAN_ID),))


@pytest.mark.parametrize("decision", NO_PLAN)
def test_no_plan_and_running_stops(desired, decision):
    result = plan_diff(decision, running(desired), NOW)
    assert result == Diff((Call("stop", plan_id=PLAN_ID),))


@pytest.mark.parametrize("decision", NO_PLAN)
def test_no_plan_and_no_plan_in_bigpanda_does_nothing(decision):
    assert plan_diff(decision, None, NOW) == Diff()


@pytest.mark.parametrize("decision", NO_PLAN)
def test_no_plan_and_an_ended_plan_does_nothing(desired, decision):
    assert plan_diff(decision, plan("ended", desired), NOW) == Diff()


@pytest.mark.parametrize("end", [NOW, NOW - 1, NOW - 86_400])
def test_a_desired_plan_that_has_ended_counts_as_no_plan(desired, end):
    over = replace(desired, start=NOW - 90_000, end=end)
    assert plan_diff(over, None, NOW) == Diff()
    assert plan_diff(over, plan("ended", desired), NOW) == Diff()
    assert plan_diff(over, plan("planned", desired), NOW).calls == (
        Call("delete", plan_id=PLAN_ID),
    )
    assert plan_diff(over, running(desired), NOW).calls == (Call("stop", plan_id=PLAN_ID),)


def test_a_plan_ending_one_second_from_now_is_still_wanted(desired):
    soon = replace(desired, start=NOW - 600, end=NOW + 1)
    assert plan_diff(soon, None, NOW).calls[0].action == "create"


# --- what is not a difference ---------------------------------------------------------------------


def test_bigpanda_defaults_and_tag_order_are_not_differences(desired):
    desired = replace(desired, description="")
    echoed = {
        "id": PLAN_ID,
        "status": "planned",
        "name": desired.name,
        "condition": desired.body()["condition"],
        "start": float(START),
        "end": float(END),
        "custom_tags": [
            {"name": "team", "value": "Database"},
            {"name": "maintenance_key", "value": "CHG0030412"},
        ],
        "maintenance_key": "CHG0030412",
        "created_at": NOW - 86_400,
    }  # no description, time_zone, frequency or post_maintenance_action
    actual = Plan(id=PLAN_ID, status="planned", fields=normalized_fields(echoed))
    assert plan_diff(desired, actual, NOW) == Diff()


def test_a_null_description_equals_an_empty_one(desired):
    desired = replace(desired, description="")
    actual = plan("planned", desired, description=None)
    assert plan_diff(desired, actual, NOW) == Diff()


def test_a_default_the_bridge_asks_for_explicitly_is_still_compared(desired):
    desired = replace(desired, time_zone="Europe/Paris")
    actual = plan("planned", desired)
    actual = Plan(actual.id, actual.status, {**actual.fields, "time_zone": "UTC"})
    assert plan_diff(desired, actual, NOW).calls == (
        Call("update", plan_id=PLAN_ID, body={**FULL_BODY, "time_zone": "Europe/Paris"}),
    )


def test_same_webhook_twice_makes_no_second_call(desired):
    (create,) = plan_diff(desired, None, NOW).calls
    created = Plan(id=PLAN_ID, status="planned", fields=normalized_fields(create.body))
    assert plan_diff(desired, created, NOW) == Diff()

"""The one per-plan decision (engine/decision.py): a reconcile carries it out, the drift sweep
and `bridge reconcile --dry-run` report it, so they agree by construction, an overrun included."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.engine.decision import decide_plan
from bridge.engine.drift import check_change
from bridge.engine.ownership import Owner
from bridge.model import ChangeRef, DesiredPlan, Plan, normalized_fields
from bridge.state.ledger import KeyState, RememberedPlan

NOW = 1_750_000_000
CHANGE = ChangeRef("servicenow", "CHG0000001")
OWNER = Owner("default", "servicenow")
PLANNED_END, EXTENDED_END = NOW + 300, NOW + 300 + 1800
DESIRED = DesiredPlan(
    maintenance_key="CHG0000001",
    name="CHG0000001: patch",
    condition={"IN": ["host", ["web-01"]]},
    start=NOW - 3600,
    end=PLANNED_END,
    overrun=(600, 1800, 4 * 3600),
)


def held(desired: DesiredPlan, status: str = "running", **fields) -> Plan:
    """The plan as BigPanda holds it, written by the bridge from `desired` (marked)."""
    body = {**OWNER.marked(desired).body(), **fields}
    return Plan(id="plan-1", status=status, fields=normalized_fields(body))  # type: ignore[arg-type]


def drift_actions(actual: Plan, extension: tuple[int, int] | None) -> list[str]:
    """What the drift sweep (and the dry run) would do, given a listing holding `actual`."""
    remembered = RememberedPlan(actual.id, written=dict(actual.fields))
    state = KeyState(
        desired=DESIRED,
        plans={DESIRED.maintenance_key: remembered},
        create_uncertain=False,
        version=(3,),
        extension=extension,
    )
    drift = check_change(CHANGE, state, {None: {actual.id: actual}}, "default", NOW)
    return [repair.action for repair in drift.repairs]


def decided_actions(actual: Plan, extension: tuple[int, int] | None) -> list[str]:
    """What a reconcile would do: the same decision."""
    decision = decide_plan(DESIRED, extension, OWNER, actual, NOW)
    return [call.action for call in decision.diff.calls]


def test_a_plan_the_bridge_extended_is_in_sync_for_the_sweep():
    """An overrunning change's plan, extended on purpose, is no drift: the sweep queues nothing
    and the dry run does not claim it would move the end back."""
    extended = held(DESIRED, end=EXTENDED_END)
    extension = (PLANNED_END, EXTENDED_END)
    assert decide_plan(DESIRED, extension, OWNER, extended, NOW).overrunning
    assert drift_actions(extended, extension) == decided_actions(extended, extension) == []


@pytest.mark.parametrize(
    ("actual", "extension", "actions"),
    [
        # the extension forgotten: the end is moved back to the planned one (and it can fail)
        (held(DESIRED, end=EXTENDED_END), None, ["update"]),
        # edited by hand while planned: put back
        (held(replace(DESIRED, start=NOW + 60), status="planned", name="edited"), None, ["update"]),
        # the sender moved the planned end past the extension: the sender's end wins
        (held(DESIRED, end=EXTENDED_END), (PLANNED_END - 60, PLANNED_END + 60), ["update"]),
        (held(DESIRED), None, []),
    ],
    ids=["no-extension", "edited-by-hand", "new-planned-end", "in-sync"],
)
def test_the_sweep_and_a_reconcile_decide_alike(actual, extension, actions):
    assert drift_actions(actual, extension) == decided_actions(actual, extension) == actions

"""The pure diff: the desired plan of a change and BigPanda's plan -> the calls to make."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..model import Decision, DesiredPlan, Plan, normalized_fields

Action = Literal["create", "update", "stop", "delete"]


@dataclass(frozen=True)
class Call:
    """One BigPanda call: create and update take a body, stop and delete only an id."""

    action: Action
    plan_id: str | None = None
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Diff:
    """What to do, and a warning when a difference cannot be applied (end_only policy)."""

    calls: tuple[Call, ...] = ()
    warning: str | None = None


def plan_diff(desired: Decision | None, actual: Plan | None, now: float) -> Diff:
    """SPEC's desired-state table. `actual` is the live or ended plan of the key, if any."""
    live = actual is not None and actual.status in ("planned", "running")
    if not isinstance(desired, DesiredPlan) or desired.end <= now:
        return _remove(actual) if live else Diff()
    if not live:
        return Diff((Call("create", body=desired.body()),))
    assert actual is not None
    if actual.status == "planned":
        return _update_planned(desired, actual)
    return _update_running(desired, actual, now)


def differing_fields(desired: DesiredPlan, actual: Plan) -> list[str]:
    """Owned fields whose normalized values differ, in a stable order."""
    wanted = normalized_fields(desired.body())
    return [
        name for name, value in wanted.items() if not _same(name, value, actual.fields.get(name))
    ]


def _same(name: str, wanted: Any, actual: Any) -> bool:
    if name == "frequency_data" and wanted and isinstance(actual, Mapping):
        # BigPanda derives more frequency_data fields from `duration`: compare only what we send.
        return all(actual.get(key) == value for key, value in wanted.items())
    return wanted == actual


def _remove(actual: Plan | None) -> Diff:
    assert actual is not None
    action: Action = "delete" if actual.status == "planned" else "stop"
    return Diff((Call(action, plan_id=actual.id),))


def _update_planned(desired: DesiredPlan, actual: Plan) -> Diff:
    """A planned plan accepts any field: send every field the bridge owns."""
    if not differing_fields(desired, actual):
        return Diff()
    return Diff((Call("update", plan_id=actual.id, body=desired.body()),))


def _update_running(desired: DesiredPlan, actual: Plan, now: float) -> Diff:
    """A running plan accepts only `end`; other differences follow the running policy."""
    differing = differing_fields(desired, actual)
    others = [name for name in differing if name not in ("start", "end")]
    if others and desired.running_policy == "restart":
        body = {**desired.body(), "start": max(int(now), desired.start)}
        return Diff((Call("stop", plan_id=actual.id), Call("create", body=body)))
    calls = (
        (Call("update", plan_id=actual.id, body={"end": desired.end}),)
        if "end" in differing
        else ()
    )
    warning = None
    if others:
        warning = f"running plan keeps its old {', '.join(others)} (running_policy end_only)"
    return Diff(calls, warning)

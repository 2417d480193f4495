"""Rules: a Change and its source's mapping -> the DesiredPlan (or NoPlan) for its key."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidChange
from ..model import Change, Decision, DesiredPlan, NoPlan
from .condition import check_condition, ci_condition
from .loader import PlanRule, Rule, SourceMapping

DATE_FORMAT = "%Y-%m-%d %H:%M:%S"  # ServiceNow's internal value; the mapping language adds more


def decide(mapping: SourceMapping, change: Change, now: float) -> Decision:
    """The newest desired state of the change's plan, by the first rule that selects it."""
    key = mapping.maintenance_key.render(change.fields)
    if not key:
        raise InvalidChange("maintenance_key", "is empty")
    rule = first_matching_rule(mapping.rules, change.fields)
    if rule is None or rule.plan is None:
        return NoPlan(key, "not_selected")
    # Dates are checked only when a plan is wanted: a New or Canceled change often has none.
    start, end = window(rule.plan, change.fields)
    if end <= now:
        return NoPlan(key, "window_over")
    if not change.cis:
        return NoPlan(key, "no_ci")
    return _desired_plan(rule.plan, change, key, start, end)


def first_matching_rule(rules: tuple[Rule, ...], fields: Mapping[str, Any]) -> Rule | None:
    """First match wins; a rule without `states` matches every change."""
    for rule in rules:
        if rule.states is None or _state_names(fields) & rule.states:
            return rule
    return None


def window(plan: PlanRule, fields: Mapping[str, Any]) -> tuple[int, int]:
    """The plan's start and end as epoch seconds; end must come after start."""
    start = _epoch(plan.start_field, fields)
    end = _epoch(plan.end_field, fields)
    if end <= start:
        raise InvalidChange(plan.end_field, f"is not after {plan.start_field}")
    return start, end


def _state_names(fields: Mapping[str, Any]) -> set[str]:
    return {
        str(fields[name]).lower()
        for name in ("state", "state_label")
        if fields.get(name) is not None
    }


def _epoch(field: str, fields: Mapping[str, Any]) -> int:
    raw = fields.get(field)
    if raw is None or raw == "":
        raise InvalidChange(field, "is required for a maintenance plan")
    try:
        moment = datetime.strptime(str(raw), DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidChange(field, f"is not a UTC date as YYYY-MM-DD HH:MM:SS: {raw!r}") from None
    return int(moment.timestamp())


def _desired_plan(plan: PlanRule, change: Change, key: str, start: int, end: int) -> DesiredPlan:
    values = {**change.fields, "maintenance_key": key}
    condition = ci_condition(plan.condition_tag, (ci.name for ci in change.cis))
    check_condition(condition)
    return DesiredPlan(
        maintenance_key=key,
        name=plan.name.render(values),
        condition=condition,
        start=start,
        end=end,
        description=plan.description.render(values),
        custom_tags=tuple((tag, template.render(values)) for tag, template in plan.custom_tags),
        post_maintenance_action=plan.post_maintenance_action,
        running_policy=plan.running_policy,  # type: ignore[arg-type]
    )

"""Rules: a Change and its source's mapping -> the desired plan(s) or NoPlan, and why."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidChange
from ..model import PART_SUFFIX, Change, Decision, DesiredPlan, NoPlan, SplitPlan
from .condition import build_conditions
from .dates import read_date
from .loader import PlanRule, Rule, SourceMapping

STATE_FIELDS = ("state", "state_label", "status")
MAX_KEY_LENGTH = 255  # the key names Redis keys, job ids and log lines
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
WINDOW_PAST_SECONDS = 365 * 86400  # a plan starts at most a year back and ends at most two
WINDOW_AHEAD_SECONDS = 2 * 365 * 86400  # years ahead: anything else is a wrong date
OUT_OF_RANGE = "a plan's window lies within one year back and two years ahead of now"


@dataclass(frozen=True)
class RuleVerdict:
    """Whether one rule selected the change; `reason` says why not."""

    rule: str
    selected: bool
    reason: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """The decision, the rule that made it, and the verdict of every rule tried before it."""

    decision: Decision
    rule: str | None
    verdicts: tuple[RuleVerdict, ...]


def decide(mapping: SourceMapping, change: Change, now: float) -> Decision:
    """The newest desired state of the change's plan."""
    return evaluate(mapping, change, now).decision


def evaluate(mapping: SourceMapping, change: Change, now: float) -> Evaluation:
    """First rule that selects the change wins; no rule selecting it means no plan."""
    verdicts = []
    for rule in mapping.rules:
        reason = rule_rejects(rule, change.fields)
        verdicts.append(RuleVerdict(rule.name, reason is None, reason))
        if reason is None:
            key = _key(rule, mapping, change)
            decision = _plan_decision(rule.plan, change, key, now) if rule.plan else None
            return Evaluation(decision or NoPlan(key, "not_selected"), rule.name, tuple(verdicts))
    key = _key(None, mapping, change)
    return Evaluation(NoPlan(key, "not_selected"), None, tuple(verdicts))


def rule_rejects(rule: Rule, fields: Mapping[str, Any]) -> str | None:
    """None when the rule selects the change, else which test failed on which value."""
    if rule.states is not None:
        found = {str(fields[n]).lower() for n in STATE_FIELDS if fields.get(n) is not None}
        if not found & rule.states:
            shown = ", ".join(sorted(found)) or "absent"
            return f"state is {shown}, not one of {', '.join(sorted(rule.states))}"
    return rule.filter.check(fields) if rule.filter else None


def _key(rule: Rule | None, mapping: SourceMapping, change: Change) -> str:
    template = (rule.maintenance_key if rule else None) or mapping.maintenance_key
    key = template.render(change.fields, "maintenance_key")
    if not key:
        raise InvalidChange("maintenance_key", "is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidChange(
            "maintenance_key", f"is {len(key):,} characters; at most {MAX_KEY_LENGTH} are accepted"
        )
    if CONTROL.search(key):
        raise InvalidChange("maintenance_key", f"holds a control character: {key[:80]!r}")
    if PART_SUFFIX.search(key):
        raise InvalidChange(
            "maintenance_key", f"{key!r} ends in #<number>, which marks split plans"
        )
    return key


def _plan_decision(plan: PlanRule, change: Change, key: str, now: float) -> Decision:
    # Dates are checked only when a plan is wanted: a New or Canceled change often has none.
    try:
        start = read_date(plan.start, change.fields, change.doubts)
    except InvalidChange:
        if _over(plan, change, now):  # a closed change: its start no longer matters
            return NoPlan(key, "window_over")
        raise
    end = read_date(plan.end, change.fields, change.doubts)
    if end <= start:  # checked before padding, which must not hide a wrong window
        raise InvalidChange(plan.end.field, f"is not after {plan.start.field}")
    start, end = start - plan.pad_before, end + plan.pad_after
    if end <= now:
        return NoPlan(key, "window_over")
    _check_window(plan, start, end, now)
    if change.ci_doubts:
        field = change.ci_doubts[0]
        raise InvalidChange(field, change.doubts[field])
    if plan.max_cis is not None and len(change.cis) > plan.max_cis:
        raise InvalidChange(
            "cis",
            f"the change lists {len(change.cis):,} CIs, over the rule's max_cis of "
            f"{plan.max_cis:,}: more likely a mistake than a maintenance",
        )
    conditions = build_conditions(plan.condition, change.cis)
    if not conditions:
        return NoPlan(key, "no_ci")
    values = {**change.fields, "maintenance_key": key, "cis": [ci.name for ci in change.cis]}
    overrun = plan.overrun.policy() if plan.overrun and _in(plan.overrun.states, change) else None
    whole = _desired(plan, values, key, start, end, conditions[0], overrun=overrun)
    if len(conditions) == 1:
        return whole
    parts = tuple(
        _desired(
            plan,
            values,
            f"{key}#{n}",
            start,
            end,
            condition,
            f" (part {n}/{len(conditions)})",
            overrun,
        )
        for n, condition in enumerate(conditions, start=1)
    )
    return SplitPlan(key, parts)


def _over(plan: PlanRule, change: Change, now: float) -> bool:
    """The change's end (padded) is readable and past."""
    try:
        return read_date(plan.end, change.fields, change.doubts) + plan.pad_after <= now
    except InvalidChange:
        return False


def _check_window(plan: PlanRule, start: int, end: int, now: float) -> None:
    """A window BigPanda may hold: within a year back and two years ahead of `now`, and no
    longer than the rule's max_duration (a recurring plan: past the end of its first window)."""
    if start < now - WINDOW_PAST_SECONDS:
        raise InvalidChange(plan.start.field, f"is {_days(now - start)} back: {OUT_OF_RANGE}")
    for field, moment in ((plan.start.field, start), (plan.end.field, end)):
        if moment > now + WINDOW_AHEAD_SECONDS:
            raise InvalidChange(field, f"is {_days(moment - now)} ahead: {OUT_OF_RANGE}")
    first_end = start + _first_window(plan)
    if end - first_end > plan.max_duration:
        raise InvalidChange(
            plan.end.field,
            f"makes a window of {_days(end - start)}, over the rule's max_duration of "
            f"{_days(plan.max_duration)}: more likely a mistake than a maintenance",
        )


def _first_window(plan: PlanRule) -> int:
    """Seconds from a plan's start to the end of its first window: 0 for a one-time plan,
    whose window is start..end; a recurring plan's duration otherwise."""
    if plan.frequency == "Once" or not plan.frequency_data:
        return 0
    return int(plan.frequency_data.get("duration") or 0)


def _days(seconds: float) -> str:
    days = seconds / 86400
    return f"{days:,.1f} days" if days < 10 else f"{days:,.0f} days"


def _desired(
    plan: PlanRule,
    values: dict[str, Any],
    key: str,
    start: int,
    end: int,
    condition: dict[str, Any],
    suffix: str = "",
    overrun: tuple[int, int, int] | None = None,
) -> DesiredPlan:
    values = {**values, "maintenance_key": key}
    name = plan.name.render(values, "plan name")
    if not name:
        raise InvalidChange("name", "the plan name template rendered nothing; BigPanda needs one")
    return DesiredPlan(
        maintenance_key=key,
        name=name + suffix,
        condition=condition,
        start=start,
        end=end,
        description=plan.description.render(values, "plan description"),
        custom_tags=tuple(
            (tag, template.render(values, f"custom tag {tag}"))
            for tag, template in plan.custom_tags
        ),
        time_zone=plan.time_zone,
        frequency=plan.frequency,
        post_maintenance_action=plan.post_maintenance_action,
        frequency_data=_frequency_data(plan),
        running_policy=plan.running_policy,  # type: ignore[arg-type]
        target=plan.target,
        overrun=overrun,
    )


def _in(states: frozenset[str], change: Change) -> bool:
    """The change is in one of `states` (by state, state label or status, any case)."""
    return any(
        str(change.fields[n]).lower() in states for n in STATE_FIELDS if change.fields.get(n)
    )


def _frequency_data(plan: PlanRule) -> dict[str, Any] | None:
    """Durations are written in human units; BigPanda's unit is a setting (default ms)."""
    if plan.frequency_data is None:
        return None
    data = dict(plan.frequency_data)
    if "duration" in data:
        data["duration"] = data["duration"] * (1000 if plan.duration_unit == "ms" else 1)
    return data

"""The shared nouns: Change (what a source sent), DesiredPlan/NoPlan (what should exist), Plan."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

# The fields of a plan the bridge owns and compares; BigPanda adds id, status, created_at, ...
OWNED_FIELDS = (
    "frequency_data",
    "name",
    "condition",
    "start",
    "end",
    "description",
    "custom_tags",
    "time_zone",
    "frequency",
    "post_maintenance_action",
    "maintenance_key",
)
# What BigPanda fills in when a plan is created without them.
BIGPANDA_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "description": "",
        "custom_tags": [],
        "time_zone": "UTC",
        "frequency": "Once",
        "post_maintenance_action": "None",
        "frequency_data": None,
    }
)

OWNER_TAG = "bridge_owner"  # the custom tag of the ownership mark: mapping files may not set it

RunningPolicy = Literal["end_only", "restart"]
NoPlanReason = Literal["not_selected", "window_over", "no_ci"]
PlanStatus = Literal["planned", "running", "ended"]


@dataclass(frozen=True, order=True)
class ChangeRef:
    """A change inside the bridge: its source (mapping file) and maintenance_key. Two sources
    that produce the same key are two changes: their state, versions and plans never mix."""

    source: str
    key: str

    @property
    def id(self) -> str:
        """The change's name in Redis keys and job arguments; source names hold no colon."""
        return f"{self.source}:{self.key}"

    @classmethod
    def from_id(cls, text: str) -> ChangeRef:
        source, _, key = text.partition(":")
        return cls(source, key)

    def __str__(self) -> str:
        return f"{self.source} {self.key}"


@dataclass(frozen=True)
class CI:
    """A configuration item a change affects."""

    name: str
    ci_class: str = ""


@dataclass(frozen=True)
class Change:
    """A change record as a source parsed it: flattened fields, version, affected CIs."""

    source: str
    fields: Mapping[str, Any]
    version: tuple[float, ...]
    cis: tuple[CI, ...] = ()
    # The version's time part, as (field, epoch seconds), when it has one: checked against the
    # clock so that one event dated in the future cannot make every later event stale.
    version_time: tuple[str, float] | None = None
    # When the sender sent this event, as (field, epoch seconds), where the payload says so (a
    # Jira webhook's `timestamp`): a body sent over a day ago is a replay, and refused.
    sent_at: tuple[str, float] | None = None
    # (index in the version, field, largest jump): a version part may not jump further past the
    # newest seen for the change (or past 0 for a new one), so one event cannot make it deaf.
    version_bound: tuple[int, str, int] | None = None
    # Fields the source could not read with certainty, and why (a display date in an unknown
    # zone, a CI reference without a name): a plan that needs one of them is refused, naming it.
    doubts: Mapping[str, str] = field(default_factory=dict)
    ci_doubts: tuple[str, ...] = ()  # the doubts about the change's CIs: any refuses a plan

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(self, "doubts", MappingProxyType(dict(self.doubts)))


@dataclass(frozen=True)
class DesiredPlan:
    """The maintenance plan that should exist for a change right now."""

    maintenance_key: str
    name: str
    condition: Mapping[str, Any]
    start: int
    end: int
    description: str = ""
    custom_tags: tuple[tuple[str, str], ...] = ()
    time_zone: str = "UTC"
    frequency: str = "Once"
    post_maintenance_action: str = "None"
    frequency_data: Mapping[str, Any] | None = None
    running_policy: RunningPolicy = "end_only"
    target: str | None = None  # a BigPanda organization named in the mapping file; None: default
    # (near, step, cap) seconds while the change is in an overrun state of its rule (overrun.py)
    overrun: tuple[int, int, int] | None = None

    def body(self) -> dict[str, Any]:
        """The plan as BigPanda's create call takes it."""
        body = {
            "name": self.name,
            "condition": dict(self.condition),
            "start": self.start,
            "end": self.end,
            "description": self.description,
            "custom_tags": [{"name": n, "value": v} for n, v in self.custom_tags],
            "time_zone": self.time_zone,
            "frequency": self.frequency,
            "post_maintenance_action": self.post_maintenance_action,
            "maintenance_key": self.maintenance_key,
        }
        if self.frequency_data is not None:
            body["frequency_data"] = dict(self.frequency_data)
        return body

    def to_json(self) -> str:
        # Not dataclasses.asdict: it deep-copies the condition, on every webhook.
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DesiredPlan:
        data = json.loads(text)
        data["custom_tags"] = tuple(tuple(tag) for tag in data["custom_tags"])
        if data.get("overrun") is not None:
            data["overrun"] = tuple(data["overrun"])
        return cls(**data)


@dataclass(frozen=True)
class SplitPlan:
    """A change whose condition was too long for one plan: several plans keyed `<key>#1..n`."""

    maintenance_key: str
    parts: tuple[DesiredPlan, ...]


@dataclass(frozen=True)
class NoPlan:
    """The decision that no plan should exist for a change, and why."""

    maintenance_key: str
    reason: NoPlanReason


Decision = DesiredPlan | SplitPlan | NoPlan
PART_SUFFIX = re.compile(r"#\d+$")  # the part of a split plan: CHG0030412#2


def change_key_of(plan_key: str) -> str:
    """The change a plan belongs to: a split part `K#2` belongs to `K`."""
    return PART_SUFFIX.sub("", plan_key)


def plans_of(decision: Decision | None) -> dict[str, DesiredPlan]:
    """The plans a decision wants, by their own maintenance_key."""
    if isinstance(decision, DesiredPlan):
        return {decision.maintenance_key: decision}
    if isinstance(decision, SplitPlan):
        return {part.maintenance_key: part for part in decision.parts}
    return {}


@dataclass(frozen=True)
class Plan:
    """A plan as BigPanda holds it: its id, lifecycle status and the owned fields, normalized."""

    id: str
    status: PlanStatus
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def maintenance_key(self) -> str | None:
        return self.fields.get("maintenance_key")


def normalized_fields(body: Mapping[str, Any]) -> dict[str, Any]:
    """The owned fields of a plan body with BigPanda's defaults filled and tags in a fixed order."""
    # An absent field and an explicit null both mean BigPanda's default.
    fields = {
        name: BIGPANDA_DEFAULTS.get(name) if body.get(name) is None else body[name]
        for name in OWNED_FIELDS
    }
    fields["frequency_data"] = dict(fields["frequency_data"] or {}) or None
    tags = fields["custom_tags"] or []
    fields["custom_tags"] = sorted((str(t.get("name")), str(t.get("value"))) for t in tags)
    for name in ("start", "end"):
        if isinstance(fields[name], float):
            fields[name] = int(fields[name])
    return fields


def body_of(plan: Plan) -> dict[str, Any]:
    """A plan's owned fields in BigPanda's body shape (what a create sends), from a Plan."""
    body = dict(plan.fields)
    body["custom_tags"] = [{"name": n, "value": v} for n, v in body.get("custom_tags") or ()]
    return body


def lookup(fields: Mapping[str, Any], name: str) -> Any:
    """A change's field by its exact name, else by a dotted path into nested objects (lists are
    mapped over: Jira's `components.name` is the names of all components); missing: None."""
    if name in fields:
        return fields[name]
    value: Any = fields
    for key in name.split("."):
        if isinstance(value, list):
            value = [item.get(key) for item in value if isinstance(item, Mapping)]
        else:
            value = value.get(key) if isinstance(value, Mapping) else None
    return value

"""The shared nouns: Change (what a source sent), DesiredPlan/NoPlan (what should exist), Plan."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

# The fields of a plan the bridge owns and compares; BigPanda adds id, status, created_at, ...
OWNED_FIELDS = (
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
    }
)

RunningPolicy = Literal["end_only", "restart"]
NoPlanReason = Literal["not_selected", "window_over", "no_ci"]
PlanStatus = Literal["planned", "running", "ended"]


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))


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
    running_policy: RunningPolicy = "end_only"

    def body(self) -> dict[str, Any]:
        """The plan as BigPanda's create call takes it."""
        return {
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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DesiredPlan:
        data = json.loads(text)
        data["custom_tags"] = tuple(tuple(tag) for tag in data["custom_tags"])
        return cls(**data)


@dataclass(frozen=True)
class NoPlan:
    """The decision that no plan should exist for a change, and why."""

    maintenance_key: str
    reason: NoPlanReason


Decision = DesiredPlan | NoPlan


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
    tags = fields["custom_tags"] or []
    fields["custom_tags"] = sorted((str(t.get("name")), str(t.get("value"))) for t in tags)
    for name in ("start", "end"):
        if isinstance(fields[name], float):
            fields[name] = int(fields[name])
    return fields

"""What the bridge remembers of a change, as the store reads it back: the nouns of the ledger
and their JSON forms in Redis."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..model import Decision, DesiredPlan, NoPlan, SplitPlan

Verdict = Literal["stale", "duplicate", "ignored", "joined", "enqueue"]


@dataclass(frozen=True)
class IngestResult:
    verdict: Verdict
    job_id: str | None


@dataclass(frozen=True)
class KeyState:
    """What the bridge remembers of one key when a reconcile starts."""

    desired: Decision | None
    plans: Mapping[str, RememberedPlan]  # by the plan's own maintenance_key (K, or K#n parts)
    create_uncertain: bool
    version: tuple[float, ...] | None = None  # of the newest event seen; None: no webhook yet
    pending_job: str | None = None
    adoption_checked: bool = False  # unmarked plans of this key were looked for once already
    extension: tuple[int, int] | None = None  # (planned end, extended end): the plan overran


@dataclass(frozen=True)
class RememberedPlan:
    """The BigPanda id of a plan, the organization (target) that holds it, and the plan as the
    bridge last wrote or saw it (`written`, BigPanda's body shape): a reconcile decides from it
    without reading the plan first. `unmarked`: an adopted plan BigPanda would not let the bridge
    mark (it was running): ours by its id."""

    id: str
    target: str | None = None
    unmarked: bool = False
    written: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        found = {"id": self.id, "target": self.target, "unmarked": self.unmarked}
        return {**found, "written": dict(self.written)} if self.written is not None else found


def decision_to_json(decision: Decision) -> str:
    if isinstance(decision, DesiredPlan):
        return decision.to_json()
    if isinstance(decision, SplitPlan):
        parts = [json.loads(part.to_json()) for part in decision.parts]
        return json.dumps({"maintenance_key": decision.maintenance_key, "parts": parts})
    return json.dumps({"no_plan": decision.reason, "maintenance_key": decision.maintenance_key})


def decision_from_json(text: str | bytes) -> Decision:
    data = json.loads(text)
    if "no_plan" in data:
        return NoPlan(data["maintenance_key"], data["no_plan"])
    if "parts" in data:
        parts = tuple(DesiredPlan.from_json(json.dumps(part)) for part in data["parts"])
        return SplitPlan(data["maintenance_key"], parts)
    return DesiredPlan.from_json(text if isinstance(text, str) else text.decode())


def plans_from_json(raw: bytes | None) -> dict[str, RememberedPlan]:
    if not raw:
        return {}
    return {key: RememberedPlan(**value) for key, value in json.loads(raw).items()}

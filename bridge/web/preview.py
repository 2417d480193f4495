"""Preview: what the bridge would do with a payload, and why, without doing it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import jump_refused
from ..mapping.extract import read_change
from ..mapping.loader import SourceMapping
from ..mapping.rules import evaluate
from ..model import ChangeRef, Decision, NoPlan, plans_of
from ..state.store import Store
from .answer import preview_answer


def preview(
    mapping: SourceMapping, raw: Mapping[str, Any], now: float, store: Store | None = None
) -> dict[str, Any]:
    """The normalized change, every rule's verdict, the desired plan(s) as they would be sent,
    and the action; with a store, also how the webhook would answer given what it has seen."""
    # Judged as though received now or at the preview's time, whichever accepts it.
    change = read_change(mapping, raw, also_at=now)
    evaluation = evaluate(mapping, change, now)
    decision = evaluation.decision
    result: dict[str, Any] = {
        "source": mapping.source,
        "change": {
            "fields": dict(change.fields),
            "version": list(change.version),
            "cis": [{"name": ci.name, "class": ci.ci_class} for ci in change.cis],
            "doubts": dict(change.doubts),
        },
        "rules": [
            {"rule": v.rule, "selected": v.selected, "reason": v.reason}
            for v in evaluation.verdicts
        ],
        "rule": evaluation.rule,
        "maintenance_key": decision.maintenance_key,
        "desired": _desired(decision),
        "action": "remove" if isinstance(decision, NoPlan) else "upsert",
    }
    if store is not None:
        ref = ChangeRef(mapping.source, decision.maintenance_key)
        verdict = store.predict(ref, decision, change.version, change.version_bound)
        result["answer"] = preview_answer(verdict, decision)
    elif change.version_bound:  # no memory to ask: judged as the webhook judges a new change
        index, _, jump = change.version_bound
        if change.version[index] > jump:
            raise jump_refused(list(change.version), change.version_bound, 0)
    return result


def _desired(decision: Decision) -> Any:
    if isinstance(decision, NoPlan):
        return {"no_plan": decision.reason}
    return [
        {**plan.body(), "target": plan.target or "default", "running_policy": plan.running_policy}
        for plan in plans_of(decision).values()
    ]

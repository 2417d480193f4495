"""How the door answers a verdict of the ingest script: the webhook's answer, and the words the
preview uses for it. One place, so the two cannot disagree."""

from __future__ import annotations

from typing import Any

from ..model import Decision, NoPlan
from ..state.ledger import IngestResult


def ignored_reason(verdict: str, decision: Decision) -> str | None:
    """Why the event changes nothing (stale, duplicate, or the decision's own reason), or None
    when it was accepted (queued, or joined a reconcile waiting for the change)."""
    if verdict in ("stale", "duplicate"):
        return verdict
    if verdict == "ignored":
        return decision.reason if isinstance(decision, NoPlan) else "not_selected"
    return None


def webhook_answer(result: IngestResult, decision: Decision) -> tuple[dict[str, Any], int]:
    """200 ignored with its reason, or 202 accepted with the action and the job."""
    key = decision.maintenance_key
    reason = ignored_reason(result.verdict, decision)
    if reason is not None:
        return {"status": "ignored", "reason": reason, "maintenance_key": key}, 200
    action = "remove" if isinstance(decision, NoPlan) else "upsert"
    return {"status": "accepted", "maintenance_key": key, "action": action,
            "job_id": result.job_id}, 202  # fmt: skip


def preview_answer(verdict: str, decision: Decision) -> str:
    """The answer as the preview shows it: "accepted" or "ignored: <reason>"."""
    reason = ignored_reason(verdict, decision)
    return "accepted" if reason is None else f"ignored: {reason}"

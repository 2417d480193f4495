"""The operator's API under /api: a change as the bridge remembers it, failed jobs, their replay.

Registered only when BRIDGE_ADMIN_TOKEN is set; every route wants `Authorization: Bearer <it>`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, g, request

from . import failed_jobs
from .auth import Verifier
from .errors import AuthError
from .model import NoPlan, plans_of
from .runtime import Runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("admin", __name__, url_prefix="/api")


@blueprint.before_request
def require_admin_token() -> None:
    """401 unless the request carries the admin token (compared in constant time)."""
    expected = _runtime().settings.admin_token
    bearer = Verifier(kind="bearer", secret=(expected or "").encode())
    if not expected or not bearer.accepts(request.headers, b""):
        raise AuthError(
            "missing or wrong admin token: send Authorization: Bearer <BRIDGE_ADMIN_TOKEN>"
        )


@blueprint.get("/changes/<path:key>")
def change(key: str) -> dict[str, Any]:
    """What the bridge remembers of one change: desired plan, plan ids, version, history."""
    runtime = _runtime()
    if not runtime.store.is_known(key):
        abort(404, f"no change with maintenance_key {key!r} is known")
    state = runtime.store.state(key)
    return {
        "maintenance_key": key,
        "desired": _desired_json(state.desired),
        "plans": {k: {"id": p.id, "target": p.target} for k, p in state.plans.items()},
        "version": list(state.version) if state.version else None,
        "pending_job": state.pending_job,
        "create_uncertain": state.create_uncertain,
        "history": runtime.store.history(key),
    }


@blueprint.get("/jobs/failed")
def failed() -> dict[str, Any]:
    """Failed reconcile jobs, the latest failure first, with BigPanda's message."""
    found = failed_jobs.list_failed(_runtime().redis)
    return {"count": len(found), "jobs": [job.to_json() for job in found]}


@blueprint.post("/jobs/<job_id>/requeue")
def requeue(job_id: str) -> tuple[dict[str, str], int]:
    """Run a failed reconcile job again, with its retries restored."""
    key = failed_jobs.requeue(_runtime().redis, job_id)
    if key is None:
        abort(404, f"no failed reconcile job has the id {job_id!r}")
    log.info("requeued job %s, maintenance_key %s, request %s", job_id, key, g.get("request_id"))
    return {"requeued": job_id, "maintenance_key": key}, 202


def _desired_json(decision) -> dict[str, Any] | None:
    """The stored decision: each wanted plan's body with its target, or why no plan."""
    if decision is None:
        return None
    if isinstance(decision, NoPlan):
        return {"no_plan": decision.reason}
    wanted = plans_of(decision)
    return {"plans": {k: {**plan.body(), "target": plan.target} for k, plan in wanted.items()}}


def _runtime() -> Runtime:
    return current_app.extensions["bridge"]

"""The operator's API under /api: a change as the bridge remembers it (and forgetting it), failed
jobs, their replay.

Registered only when BRIDGE_ADMIN_TOKEN is set; every route wants `Authorization: Bearer <it>`.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, abort, current_app, g, request

from ..errors import AuthError, BadPayload
from ..jobs import failed as failed_jobs
from ..mapping.auth_entries import Verifier
from ..model import ChangeRef, NoPlan, plans_of
from ..web.auth import accepts
from ..web.runtime import Runtime
from .story import story

# The web tier never calls BigPanda (SPEC): its story holds the remembered plan ids only.
WEB_UNREAD = "not read by the web tier: see bridge show"

log = logging.getLogger(__name__)
blueprint = Blueprint("admin", __name__, url_prefix="/api")


@blueprint.before_request
def require_admin_token() -> None:
    """401 unless the request carries the admin token (compared in constant time)."""
    expected = _runtime().settings.admin_token
    bearer = Verifier(kind="bearer", secrets=((expected or "").encode(),))
    if not expected or not accepts(bearer, request.headers, b""):
        raise AuthError(
            "missing or wrong admin token: send Authorization: Bearer <BRIDGE_ADMIN_TOKEN>"
        )


@blueprint.get("/changes/<path:key>")
def change(key: str) -> dict[str, Any]:
    """What the bridge remembers of one change: desired plan, plan ids, version, history.
    `?source=` names the source; it may be left out while only one source knows the key.
    `?story=1`: the change's story instead (as `bridge show --json`, BigPanda not read)."""
    runtime = _runtime()
    wants_story = _story_flag()
    ref = _known_change(key, request.args.get("source"))
    if wants_story:
        told = story(runtime.store, None, ref, unread=WEB_UNREAD)
        return {"story": told.to_json()}
    state = runtime.store.state(ref)
    return {
        "source": ref.source,
        "maintenance_key": key,
        "desired": _desired_json(state.desired),
        "plans": {k: _plan_json(p) for k, p in state.plans.items()},
        "version": list(state.version) if state.version else None,
        "pending_job": state.pending_job,
        "create_uncertain": state.create_uncertain,
        "history": runtime.store.history(ref),
    }


@blueprint.delete("/changes/<path:key>")
def forget(key: str) -> dict[str, Any]:
    """Drop the bridge's memory of one change (`?source=` required); BigPanda is not called."""
    source = request.args.get("source")
    if not source:
        raise BadPayload("name the source: DELETE /api/changes/<key>?source=<source>")
    ref = _known_change(key, source)
    dropped = _runtime().store.summary(ref)
    _runtime().store.forget(ref)
    log.warning("forgot %s on request %s: %s", ref, g.get("request_id"), dropped)
    return {"forgotten": dropped}


def _story_flag() -> bool:
    flag = request.args.get("story", "0")
    if flag not in ("0", "1"):
        raise BadPayload(f"story must be 1 or 0, got {flag[:16]!r}")
    return flag == "1"


def _known_change(key: str, source: str | None) -> ChangeRef:
    """The change a request names; 404 when unknown, 400 when several sources know the key."""
    store = _runtime().store
    sources = [source] if source else sorted(_runtime().mappings)
    known = [ChangeRef(s, key) for s in sources if store.is_known(ChangeRef(s, key))]
    if not known:
        where = f" from source {source!r}" if source else ""
        abort(404, f"no change with maintenance_key {key!r}{where} is known")
    if len(known) > 1:
        names = ", ".join(ref.source for ref in known)
        raise BadPayload(f"the key {key!r} is known from several sources ({names}): add ?source=")
    return known[0]


def _plan_json(plan) -> dict[str, Any]:
    shown = {"id": plan.id, "target": plan.target}
    return {**shown, "adopted_unmarked": True} if plan.unmarked else shown


@blueprint.get("/jobs/failed")
def failed() -> dict[str, Any]:
    """Failed reconcile jobs, the latest failure first, with BigPanda's message."""
    found = failed_jobs.list_failed(_runtime().redis)
    return {"count": len(found), "jobs": [job.to_json() for job in found]}


@blueprint.post("/jobs/<job_id>/requeue")
def requeue(job_id: str) -> tuple[dict[str, str], int]:
    """Run a failed reconcile job again, with its retries restored."""
    ref = failed_jobs.requeue(_runtime().redis, job_id)
    if ref is None:
        abort(404, f"no failed reconcile job has the id {job_id!r}")
    log.info("requeued job %s, change %s, request %s", job_id, ref, g.get("request_id"))
    return {"requeued": job_id, "source": ref.source, "maintenance_key": ref.key}, 202


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

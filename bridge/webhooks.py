"""POST /webhooks/<source>: authenticate, parse, map, store and enqueue. No business logic."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, current_app, g, request
from redis.exceptions import RedisError

from . import jobs
from .auth import authenticate
from .errors import AuthError, BadPayload, QueueUnavailable, UnknownSource, UnsupportedMediaType
from .mapping.loader import SourceMapping
from .mapping.rules import decide
from .model import Change, Decision, DesiredPlan
from .runtime import Runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)


@blueprint.post("/webhooks/<source>")
def receive(source: str) -> tuple[dict[str, Any], int]:
    """Answer in milliseconds: 202 accepted, or 200 ignored with the reason."""
    runtime: Runtime = current_app.extensions["bridge"]
    mapping = _mapping(runtime, source)
    change = _change(mapping)
    decision = decide(mapping, change, time.time())
    g.maintenance_key = decision.maintenance_key
    try:
        answer = _ingest(runtime, change, decision)
    except RedisError:
        log.warning("source=%s key=%s redis unavailable", source, decision.maintenance_key)
        raise QueueUnavailable("Redis cannot take the job right now; retry later") from None
    log.info("source=%s key=%s answer=%s", source, decision.maintenance_key, answer[0])
    return answer


def _mapping(runtime: Runtime, source: str) -> SourceMapping:
    mapping = runtime.mappings.get(source)
    if mapping is None:
        raise UnknownSource(f"no mapping file defines the source {source!r}")
    return mapping


def _change(mapping: SourceMapping) -> Change:
    """Checked in SPEC's order: size (by Flask's limit), credentials, media type, JSON object."""
    body = request.get_data(cache=True)
    if not authenticate(mapping.verifiers, request.headers, body):
        raise AuthError("missing or wrong credentials")
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {request.mimetype!r}"
        )
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadPayload("the body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise BadPayload(f"the body must be a JSON object, not {type(raw).__name__}")
    return mapping.parse(raw)


def _ingest(runtime: Runtime, change: Change, decision: Decision) -> tuple[dict[str, Any], int]:
    key = decision.maintenance_key
    job_id = jobs.new_job_id(key)
    event = {"source": change.source, "decision": _describe(decision)}
    result = runtime.store.ingest(decision, change.version, job_id, event)
    if result.verdict in ("stale", "duplicate"):
        return {"status": "ignored", "reason": result.verdict, "maintenance_key": key}, 200
    if result.verdict == "ignored":
        return {"status": "ignored", "reason": decision.reason, "maintenance_key": key}, 200  # type: ignore[union-attr]
    if result.verdict == "enqueue":
        jobs.enqueue_reconcile(runtime.queue, key, job_id)
    action = "upsert" if isinstance(decision, DesiredPlan) else "remove"
    return {
        "status": "accepted",
        "maintenance_key": key,
        "action": action,
        "job_id": result.job_id,
    }, 202


def _describe(decision: Decision) -> str:
    if isinstance(decision, DesiredPlan):
        return f"plan {decision.start}..{decision.end}"
    return f"no plan ({decision.reason})"

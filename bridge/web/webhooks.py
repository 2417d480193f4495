"""POST /webhooks/<source> and its /preview: authenticate, parse, map, then store and enqueue
in one Redis round trip."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Blueprint, current_app, g, request
from redis.exceptions import RedisError

from ..errors import (
    AuthError,
    BadPayload,
    InvalidChange,
    PayloadTooLarge,
    QueueUnavailable,
    UnknownSource,
    UnsupportedMediaType,
)
from ..jobs.queue import new_job_id, queue_marked
from ..logs import event
from ..mapping.extract import read_change
from ..mapping.loader import SourceMapping
from ..mapping.rules import evaluate
from ..model import Change, ChangeRef, Decision, NoPlan, SplitPlan
from . import strict_json
from .answer import webhook_answer
from .auth import attempted, authenticate
from .preview import preview
from .runtime import Runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("webhooks", __name__)
# A sender's name for one delivery (Jira's X-Atlassian-Webhook-Identifier): kept only when sane.
DELIVERY_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


@blueprint.post("/webhooks/<source>")
def receive(source: str) -> tuple[dict[str, Any], int]:
    """Answer in milliseconds: 202 accepted, or 200 ignored with the reason."""
    started = time.monotonic()
    runtime: Runtime = current_app.extensions["bridge"]
    mapping = _mapping(runtime, source)
    now = time.time()
    change = read_change(mapping, _payload(mapping), now)
    evaluation = evaluate(mapping, change, now)
    decision = evaluation.decision
    g.maintenance_key = decision.maintenance_key
    try:
        answer = _ingest(runtime, mapping, change, decision, started)
    except RedisError:
        log.warning("redis unavailable: source=%s key=%r", source, decision.maintenance_key)
        raise QueueUnavailable("Redis cannot take the job right now; retry later") from None
    body = answer[0]
    event(
        log,
        "webhook answered",
        request_id=g.get("request_id"),
        source=source,
        key=decision.maintenance_key,
        rule=evaluation.rule,
        verdict=body.get("reason", "accepted"),
        action=body.get("action"),
        job_id=body.get("job_id"),
    )
    return answer


@blueprint.post("/webhooks/<source>/preview")
def preview_change(source: str) -> dict[str, Any]:
    """The same input as the webhook, no side effects: what the bridge would do, and why."""
    runtime: Runtime = current_app.extensions["bridge"]
    mapping = _mapping(runtime, source)
    raw = _payload(mapping)
    return preview(mapping, raw, time.time(), runtime.store)


def _mapping(runtime: Runtime, source: str) -> SourceMapping:
    mapping = runtime.mappings.get(source)
    if mapping is None:
        raise UnknownSource(f"no mapping file defines the source {source[:64]!r}")
    return mapping


def _body(limit: int) -> bytes:
    """The raw body. One sent with a Content-Length over the limit Flask refuses itself; a
    chunked one (no length) Werkzeug would silently cut at the limit, so it is read here, one
    byte past the limit, and refused whole (the server has undone the chunking)."""
    if request.environ.get("CONTENT_LENGTH") or not request.environ.get("wsgi.input_terminated"):
        return request.get_data(cache=True)
    body = request.environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"the chunked body is over the limit of {limit:,} bytes")
    return body


def _payload(mapping: SourceMapping) -> dict[str, Any]:
    """Checked in SPEC's order: size (by Flask's limit), credentials, media type, JSON object."""
    body = _body(current_app.config["MAX_CONTENT_LENGTH"])
    if not authenticate(mapping.verifiers, request.headers, body):
        tried = [v.kind for v in mapping.verifiers if attempted(v, request.headers)] or ["none"]
        log.warning("authentication failed: source=%s remote=%s tried=%s", mapping.source,
                    request.remote_addr, ",".join(tried))  # fmt: skip
        raise AuthError("missing or wrong credentials")
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {request.mimetype!r}"
        )
    raw = strict_json.loads(body)
    if not isinstance(raw, dict):
        raise BadPayload(f"the body must be a JSON object, not {type(raw).__name__}")
    return raw


def _ingest(
    runtime: Runtime, mapping: SourceMapping, change: Change, decision: Decision, started: float
) -> tuple[dict[str, Any], int]:
    key = decision.maintenance_key
    ref = ChangeRef(mapping.source, key)
    event = {"source": mapping.source, "decision": describe(decision)}
    record = _note_record(mapping, change)
    if record:
        event["record"] = record  # where write-back notes on this change go
    seconds = time.monotonic() - started  # the handling time up to the store, for /metrics
    result = runtime.store.ingest(
        ref,
        decision,
        change.version,
        new_job_id(ref),
        event,
        _delivery(mapping),
        seconds,
        change.version_bound,
    )
    queue_marked(runtime.queue, ref, result)
    return webhook_answer(result, decision)


def _note_record(mapping: SourceMapping, change: Change) -> str | None:
    """The sender's record a note goes on (write-back); none is no reason to refuse a change."""
    if mapping.note_record is None:
        return None
    try:
        record = mapping.note_record.render(change.fields, "write_back.record")
    except InvalidChange:
        return None
    return record if record and len(record) <= 255 and record.isprintable() else None


def _delivery(mapping: SourceMapping) -> str | None:
    """The sender's id of this delivery, when the mapping names its header and it is sane."""
    if not mapping.delivery_id_header:
        return None
    delivery = request.headers.get(mapping.delivery_id_header, "")
    return delivery if DELIVERY_ID.match(delivery) else None


def describe(decision: Decision) -> str:
    """One line for the history: what the event asks for."""
    if isinstance(decision, NoPlan):
        return f"no plan ({decision.reason})"
    if isinstance(decision, SplitPlan):
        return f"plan in {len(decision.parts)} parts"
    return f"plan {decision.start}..{decision.end}"

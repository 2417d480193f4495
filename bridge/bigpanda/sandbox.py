"""A built-in stand-in for BigPanda's Maintenance Plans V2 API, for local runs and tests.

Mounted under /sandbox, it enforces BigPanda's documented rules: epoch seconds, BPQL object
conditions of at most 25,000 characters, running plans accept only a new `end`, only running
plans can be stopped, at most 3,500 live plans. Plans live in Redis so every gunicorn worker
sees the same ones; a plan's status is computed from the clock on every read.
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import redis
from flask import Blueprint, Response, jsonify, request

from ..mapping.condition import MAX_CONDITION_CHARS, condition_length, validate_bpql
from ..model import BIGPANDA_DEFAULTS

PLANS_KEY = "sandbox:plans"  # hash: id -> compact JSON of the plan (status is not stored)
SEQ_KEY = "sandbox:seq"  # counter prefixed to ids, so that id order is creation order
PLANS = "/resources/v2.0/maintenance-plans"
PAGE_SIZE = 100
MAX_LIVE_PLANS = 3_500
MAX_SECONDS = 10_000_000_000  # year 2286: anything larger is a timestamp in milliseconds
REQUIRED = ("name", "condition", "start", "end")
CHOICES = {
    "frequency": ("Once", "Daily", "Weekly", "Monthly"),
    "post_maintenance_action": ("Resolve", "Reactivate", "None"),
}
OTHERS = ("frequency_data", "time_zone", "description", "custom_tags", "maintenance_key")
WRITABLE = frozenset((*REQUIRED, *CHOICES, *OTHERS))  # every field a create or patch may send
Plan = dict[str, Any]


class ApiError(Exception):
    """A refusal answered in BigPanda's error shape."""

    def __init__(self, status: int, message: str):
        super().__init__(status, message)
        self.status, self.message = status, message


def _bad(message: str) -> ApiError:
    return ApiError(400, message)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- validation: each refusal names its field ----------------------------------------------


def _is_epoch(value: Any) -> bool:
    # bool is an int in Python; BigPanda wants a whole number of seconds, nothing else.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_tag_list(value: Any) -> bool:
    def is_pair(tag: Any) -> bool:
        return (
            isinstance(tag, dict)
            and set(tag) == {"name", "value"}
            and all(isinstance(v, str) for v in tag.values())
        )

    return isinstance(value, list) and all(map(is_pair, value))


def _check_condition(condition: Any) -> None:
    try:
        validate_bpql(condition)
    except ValueError as exc:
        raise _bad(str(exc)) from None
    size = condition_length(condition)
    if size > MAX_CONDITION_CHARS:
        raise _bad(f"condition is {size:,} characters as compact JSON; the limit is 25,000")


def _validate(body: Any, required: tuple[str, ...]) -> Plan:
    """Return a create or patch body, or refuse its first invalid field by name."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")

    def expect(field: str, ok: Callable[[Any], bool], what: str) -> None:
        if field in body and not ok(body[field]):
            raise _bad(f"{field} must be {what}")

    for field in body:
        if field not in WRITABLE:
            raise _bad(f"{field} is not a writable field of a maintenance plan")
    for field in required:
        if field not in body:
            raise _bad(f"{field} is required")
    expect("name", lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string")
    if "condition" in body:
        _check_condition(body["condition"])
    for field in ("start", "end"):
        expect(field, _is_epoch, "an integer of Unix epoch seconds")
        expect(field, lambda v: v <= MAX_SECONDS, "Unix epoch seconds, not milliseconds")
    for field in ("time_zone", "description", "maintenance_key"):
        expect(field, lambda v: isinstance(v, str), "a string")
    for field, choices in CHOICES.items():
        expect(field, choices.__contains__, f"one of {', '.join(choices)}")
    expect("frequency_data", lambda v: isinstance(v, dict), "a JSON object")
    expect("custom_tags", _is_tag_list, "a list of {name, value} string pairs")
    return body


def _check_window(plan: Plan) -> None:
    if plan["end"] <= plan["start"]:
        raise _bad("end must be later than start")


# --- storage ---------------------------------------------------------------------------------


class _Plans:
    """The sandbox's plans in Redis, with status derived from the clock."""

    def __init__(self, redis_conn: redis.Redis, clock: Callable[[], float]):
        self.redis = redis_conn
        self.clock = clock

    def status(self, plan: Plan) -> str:
        now = self.clock()
        return "planned" if now < plan["start"] else "running" if now < plan["end"] else "done"

    def shown(self, plan: Plan) -> Plan:
        return {**plan, "status": self.status(plan)}

    def all(self, pipe: Any = None) -> list[Plan]:
        """Every stored plan in creation order."""
        stored = (pipe or self.redis).hgetall(PLANS_KEY)
        return [json.loads(stored[key]) for key in sorted(stored)]

    def page(self, cursor: str, live: bool | None) -> tuple[list[Plan], str | None]:
        """Up to 100 plans created after `cursor`, and the next page's cursor if there is one."""
        wanted = [
            p
            for p in self.all()
            if p["id"] > cursor and (live is None or (self.status(p) != "done") == live)
        ]
        page = wanted[:PAGE_SIZE]
        return page, page[-1]["id"] if len(wanted) > PAGE_SIZE else None

    def get(self, plan_id: str, pipe: Any = None) -> Plan:
        raw = (pipe or self.redis).hget(PLANS_KEY, plan_id)
        if raw is None:
            raise ApiError(404, f"maintenance plan {plan_id} is not found")
        return json.loads(raw)

    def create(self, fields: Plan) -> Plan:
        # A counter prefix keeps ids unique and sortable across workers and clock changes.
        plan_id = f"{self.redis.incr(SEQ_KEY):08x}{secrets.token_hex(8)}"
        now = int(self.clock())
        plan = {**BIGPANDA_DEFAULTS, **fields, "id": plan_id, "created_at": now, "updated_at": now}
        # BigPanda adds a system key when none is sent.
        plan.setdefault("maintenance_key", f"MNT-{plan_id[-12:]}")

        def insert(pipe: Any) -> None:
            live = sum(self.status(p) != "done" for p in self.all(pipe))
            if live >= MAX_LIVE_PLANS:
                raise _bad(f"the organization already has the limit of {MAX_LIVE_PLANS:,} plans")
            pipe.multi()
            pipe.hset(PLANS_KEY, plan_id, _compact(plan))

        # WATCH makes the limit check and the insert atomic across gunicorn workers.
        self.redis.transaction(insert, PLANS_KEY)
        return plan

    def change(self, plan_id: str, edit: Callable[[Plan], Plan]) -> None:
        """Apply `edit` to a stored plan atomically (a concurrent delete is not undone)."""

        def apply(pipe: Any) -> None:
            plan = edit(self.get(plan_id, pipe))
            plan["updated_at"] = int(self.clock())
            pipe.multi()
            pipe.hset(PLANS_KEY, plan_id, _compact(plan))

        self.redis.transaction(apply, PLANS_KEY)

    def delete(self, plan_id: str) -> None:
        if not self.redis.hdel(PLANS_KEY, plan_id):
            raise ApiError(404, f"maintenance plan {plan_id} is not found")


# --- HTTP ------------------------------------------------------------------------------------


def _list_args() -> tuple[str | None, str]:
    """The list's `active` filter and `next` cursor, checked."""
    active, cursor = request.args.get("active"), request.args.get("next", "")
    if active not in (None, "true", "false"):
        raise _bad("active must be true or false")
    # Ids start with a counter, so "created after the cursor" is a string comparison.
    if cursor and not re.fullmatch(r"[0-9a-f]{24}", cursor):
        raise _bad("next must be a cursor from a Link header")
    return active, cursor


def _patched(plans: _Plans, body: Plan) -> Callable[[Plan], Plan]:
    """The edit a PATCH body makes, refusing what the plan's status forbids."""

    def edit(plan: Plan) -> Plan:
        status = plans.status(plan)
        if status == "done":
            raise ApiError(409, "a done maintenance plan cannot be updated")
        if status == "running":
            for field, value in body.items():
                if field != "end" and plan.get(field) != value:
                    raise _bad(f"{field} cannot change on a running plan; only end can")
        updated = {**plan, **body}
        _check_window(updated)
        return updated

    return edit


def _stop(plans: _Plans, plan: Plan) -> Plan:
    status = plans.status(plan)
    if status != "running":
        raise ApiError(409, f"only running plans can be stopped; this one is {status}")
    return {**plan, "end": int(plans.clock())}


def create_sandbox(
    redis: redis.Redis, token: str, clock: Callable[[], float] = time.time
) -> Blueprint:
    """A blueprint serving the Maintenance Plans V2 subset under /sandbox, backed by Redis."""
    plans = _Plans(redis, clock)
    bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")

    @bp.before_request
    def authenticate() -> None:
        sent = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(sent, f"Bearer {token}".encode()):
            raise ApiError(401, "a valid Authorization: Bearer <User API Key> is required")

    @bp.errorhandler(ApiError)
    def refuse(error: ApiError) -> tuple[Response, int]:
        return jsonify(status=error.status, errors=[error.message]), error.status

    @bp.post(PLANS)
    def create() -> tuple[Response, int]:
        fields = _validate(request.get_json(force=True, silent=True), REQUIRED)
        _check_window(fields)
        return jsonify(plans.shown(plans.create(fields))), 201

    @bp.get(PLANS)
    def list_plans() -> Response:
        active, cursor = _list_args()
        page, after = plans.page(cursor, None if active is None else active == "true")
        if not page:
            return Response(status=204)
        response = jsonify([plans.shown(p) for p in page])
        if after:
            # BigPanda's documented target omits /resources/v2.0; the client resolves it.
            query = f"pagination=true&next={after}" + (f"&active={active}" if active else "")
            response.headers["Link"] = f"</maintenance-plans?{query}>; rel=next"
        return response

    @bp.get(f"{PLANS}/<plan_id>")
    def read(plan_id: str) -> Response:
        return jsonify(plans.shown(plans.get(plan_id)))

    @bp.patch(f"{PLANS}/<plan_id>")
    def update(plan_id: str) -> Response:
        body = _validate(request.get_json(force=True, silent=True), ())
        plans.change(plan_id, _patched(plans, body))
        return Response(status=204)

    @bp.post(f"{PLANS}/<plan_id>/stop")
    def stop(plan_id: str) -> Response:
        plans.change(plan_id, lambda plan: _stop(plans, plan))
        return Response(status=204)

    @bp.delete(f"{PLANS}/<plan_id>")
    def delete(plan_id: str) -> Response:
        plans.delete(plan_id)
        return Response(status=204)

    return bp

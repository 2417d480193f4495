"""The Flask app factory: blueprints, health checks and problem+json error answers."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from flask import Blueprint, Flask, current_app, g, request
from redis import Redis
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException

from . import logs
from .bigpanda.sandbox import create_sandbox
from .config import Settings
from .errors import BridgeError, ConfigError, FieldError, PayloadTooLarge, QueueUnavailable
from .itsm.sandbox import create_itsm_sandbox
from .jobs.queue import queue_of, store_of
from .logs import event
from .mapping.loader import load_mappings
from .ops import admin
from .state.store import connect
from .web import metrics, openapi, webhooks
from .web.runtime import Runtime

log = logging.getLogger(__name__)
health = Blueprint("health", __name__)
SANDBOX_FORCED = (
    "BRIDGE_SANDBOX_FORCE=1: plans go to the built-in sandbox, not to BigPanda; nothing is silenced"
)


def create_app(settings: Settings | None = None, redis: Redis | None = None) -> Flask:
    """Build the web app; refuses to start on an invalid mapping file or a missing secret."""
    if settings is None:  # a process of its own (gunicorn): its logging is set up here
        logs.configure_from_env(os.environ)
        settings = Settings.from_env()
    if redis is None:
        settings.require_service()
        redis = connect(settings.redis_url, settings.redis_verify_tls)  # type: ignore[arg-type]
    mappings = load_mappings(settings.mappings_dir, settings.secrets, settings.sources)
    queue = queue_of(redis)
    app = Flask("bridge")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["bridge"] = Runtime(settings, redis, store_of(redis), queue, mappings)
    app.register_blueprint(webhooks.blueprint)
    app.register_blueprint(health)
    app.register_blueprint(metrics.blueprint)
    app.register_blueprint(openapi.blueprint)
    if settings.admin_token:
        app.register_blueprint(admin.blueprint)
    if settings.sandbox:
        if not settings.sandbox_token:
            raise ConfigError("BRIDGE_SANDBOX=1 needs BRIDGE_SANDBOX_TOKEN (bridge dev sets both)")
        app.register_blueprint(create_sandbox(redis, settings.sandbox_token))
        app.register_blueprint(create_itsm_sandbox(redis))
    if settings.sandbox_forced:
        log.warning(SANDBOX_FORCED)
    _register_error_handlers(app)
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
    app.after_request(_count_refused_webhook)
    return app


@health.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: 200 while the process serves."""
    return {"status": "ok"}


@health.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    """Readiness: Redis answers and the mapping files are loaded."""
    runtime: Runtime = current_app.extensions["bridge"]
    try:
        runtime.redis.ping()
    except RedisError:
        return {"status": "unavailable", "reason": "redis does not answer"}, 503
    if not runtime.mappings:
        return {"status": "unavailable", "reason": "no mapping files loaded"}, 503
    ready: dict[str, Any] = {"status": "ready", "sources": sorted(runtime.mappings)}
    if runtime.settings.sandbox_forced:
        ready["warning"] = SANDBOX_FORCED
    return ready, 200


def _assign_request_id() -> None:
    supplied = request.headers.get("X-Request-Id", "")
    g.request_id = supplied if 0 < len(supplied) <= 100 else uuid.uuid4().hex


def _echo_request_id(response):
    response.headers["X-Request-Id"] = g.get("request_id", "")
    return response


def _count_refused_webhook(response):
    source = metrics.webhook_source()
    if source is not None and 400 <= response.status_code < 500:
        runtime = current_app.extensions["bridge"]
        # A stranger's made-up source name never becomes a metric series or a Redis field.
        label = source if source in runtime.mappings else metrics.UNKNOWN_SOURCE
        metrics.count_refused_webhook(runtime, label, response.status_code)
        detail = (response.get_json(silent=True) or {}).get("detail", "")
        event(log, "webhook refused", request_id=g.get("request_id"), source=label,
              status=response.status_code, detail=str(detail)[:300])  # fmt: skip
    return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BridgeError)
    def bridge_error(exc: BridgeError):
        errors = (
            [{"field": f, "message": m} for f, m in exc.errors]
            if isinstance(exc, FieldError)
            else None
        )
        return problem(exc.status, exc.title, str(exc), errors)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        title = PayloadTooLarge.title if exc.code == 413 else exc.name
        answer = problem(exc.code or 500, title, exc.description or exc.name)
        if "Allow" in (headers := dict(exc.get_headers())):  # a 405 names the allowed methods
            answer.headers["Allow"] = headers["Allow"]
        return answer

    @app.errorhandler(RedisError)
    def redis_down(exc: RedisError):
        log.warning("redis unavailable: %s, request %s", type(exc).__name__, g.get("request_id"))
        return problem(503, QueueUnavailable.title, "Redis does not answer right now; retry later")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error, request %s", g.get("request_id"))
        detail = f"internal error; quote request id {g.get('request_id')} when reporting it"
        return problem(500, "Internal error", detail)


def problem(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None):
    """An RFC 9457 problem+json answer; `errors` lists each field and what is wrong with it."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if g.get("request_id"):
        body["request_id"] = g.request_id
    response = current_app.json.response(body)
    response.status_code = status
    response.content_type = "application/problem+json"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="bridge"'
    return response

"""GET /openapi.json: the OpenAPI 3.1 document of the bridge's HTTP interface (sandbox aside)."""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from typing import Any

from flask import Blueprint

from .openapi_schemas import SAMPLE_KEY, Schema, record_examples, ref, schemas

blueprint = Blueprint("openapi", __name__)

JSON = "application/json"
PROBLEM = "application/problem+json"
TEXT = "text/plain"
WEBHOOK_SECURITY = [{"bearer": []}, {"basic": []}, {"hmac": []}]


@blueprint.get("/openapi.json")
def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route but the dev sandbox's."""
    return document()


@cache
def document() -> dict[str, Any]:
    """The document, built once per process."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Maintenance bridge",
            "version": version("maintenance-bridge"),
            "description": "Change webhooks from ServiceNow and Jira in, BigPanda maintenance "
            "plans out. Every answer carries X-Request-Id; every error is problem+json.",
        },
        "tags": [
            {"name": "webhooks", "description": "Change webhooks and their dry run"},
            {"name": "service", "description": "Health, readiness, metrics, this document"},
            {"name": "admin", "description": "Only when BRIDGE_ADMIN_TOKEN is set (else 404)"},
        ],
        "paths": {**_webhook_paths(), **_service_paths(), **_admin_paths()},
        "components": {
            "schemas": schemas(),
            "securitySchemes": _security_schemes(),
            "headers": {
                "X-Request-Id": {
                    "description": "The request's id: the one sent, else a new one",
                    "schema": {"type": "string"},
                }
            },
        },
    }


def _answer(description: str, schema: Schema, media: str = JSON) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}},
        "content": {media: {"schema": schema}},
    }


def _problem(description: str) -> dict[str, Any]:
    return _answer(description, ref("Problem"), PROBLEM)


def _unauthorized(what: str) -> dict[str, Any]:
    answer = _problem(f"Missing or wrong credentials: {what}")
    answer["headers"]["WWW-Authenticate"] = {"schema": {"type": "string"}}
    return answer


def _operation(tag: str, op_id: str, summary: str, responses: dict, **extra: Any) -> dict:
    """An operation; every one takes X-Request-Id and answers 405 to another method."""
    request_id = {
        "name": "X-Request-Id",
        "in": "header",
        "description": "Echoed back and logged; ignored when longer than 100 characters",
        "schema": {"type": "string", "minLength": 1, "maxLength": 100},
    }
    return {
        "tags": [tag],
        "operationId": op_id,
        "summary": summary,
        "security": [],
        **extra,
        "parameters": [*extra.get("parameters", []), request_id],
        "responses": {
            **responses,
            "405": _problem("The path exists, not for this method"),
        },
    }


def _parameter(name: str, where: str, description: str, example: str | None = "servicenow") -> dict:
    """A required string parameter, with an example value (that of the sample change)."""
    parameter = {"name": name, "in": where, "required": True, "description": description}
    parameter["schema"] = {"type": "string", "minLength": 1}
    if example:
        parameter["examples"] = {"sample": {"value": example}}
    return parameter


def _webhook_paths() -> dict[str, Any]:
    source = _parameter("source", "path", "A mapping file's source name (servicenow, jira...)")
    body = {
        "required": True,
        "description": "The change as the source sends it (application/json or any +json)",
        "content": {JSON: {"schema": ref("ChangeRecord"), "examples": record_examples()}},
    }
    refusals = {
        "400": _problem("The body is not valid JSON, or not a JSON object"),
        "401": _unauthorized("none of the methods the source's mapping file accepts"),
        "404": _problem("No mapping file defines this source"),
        "413": _problem("The body is over the limit (BRIDGE_MAX_BODY_BYTES, 1 MiB)"),
        "415": _problem("The Content-Type is not JSON"),
        "422": _problem("Invalid fields; `errors` names each one"),
    }
    common = {"security": WEBHOOK_SECURITY, "parameters": [source], "requestBody": body}
    receive = {
        "202": _answer(
            "Accepted: a reconcile of the change is queued (or pending)", ref("Accepted")
        ),
        "200": _answer("Ignored, and why; nothing is queued", ref("Ignored")),
        **refusals,
        "503": _problem("Redis cannot take the job; retry later"),
    }
    preview = {"200": _answer("What the bridge would do, and why", ref("Preview")), **refusals}
    return {
        "/webhooks/{source}": {
            "post": _operation("webhooks", "receiveWebhook", "A change webhook", receive, **common)
        },
        "/webhooks/{source}/preview": {
            "post": _operation(
                "webhooks",
                "previewWebhook",
                "The same input as the webhook, no side effects",
                preview,
                **common,
            )
        },
    }


def _service_paths() -> dict[str, Any]:
    ready = {"200": _answer("Redis answers and mappings are loaded", ref("Ready"))}
    ready["503"] = _answer("Redis does not answer, or no mapping is loaded", ref("Unavailable"))
    metrics = {"200": _answer("Prometheus text exposition format", {"type": "string"}, TEXT)}
    metrics["503"] = _answer("Redis does not answer", {"type": "string"}, TEXT)
    spec = {"type": "object", "required": ["openapi", "info", "paths"]}
    return {
        "/healthz": {
            "get": _operation(
                "service",
                "healthz",
                "Liveness: 200 while the process serves",
                {"200": _answer("The process serves", ref("Health"))},
            )
        },
        "/readyz": {"get": _operation("service", "readyz", "Readiness", ready)},
        "/metrics": {"get": _operation("service", "metrics", "Prometheus metrics", metrics)},
        "/openapi.json": {
            "get": _operation(
                "service", "openapi", "This document", {"200": _answer("OpenAPI 3.1", spec)}
            )
        },
    }


def _admin_paths() -> dict[str, Any]:
    key = _parameter("key", "path", "The change's maintenance_key (may hold slashes)", SAMPLE_KEY)
    source = _parameter("source", "query", "The source that knows the key")
    job_id = _parameter("job_id", "path", "The failed job's id", example=None)
    unauthorized = _unauthorized("send Authorization: Bearer <BRIDGE_ADMIN_TOKEN>")
    unknown = "No such change is known (every /api path is 404 without BRIDGE_ADMIN_TOKEN)"
    story = {
        "name": "story",
        "in": "query",
        "required": False,
        "description": "1: the change's story (events in order, as `bridge show` tells it)",
        "schema": {"enum": ["0", "1"]},
    }
    told = {"anyOf": [ref("ChangeState"), {"type": "object", "required": ["story"]}]}
    change = {
        "200": _answer("What the bridge remembers of the change, or its story", told),
        "400": _problem("Several sources know the key (name one with ?source=), or a bad ?story="),
        "401": unauthorized,
        "404": _problem(unknown),
    }
    forget = {
        "200": _answer("Forgotten; BigPanda is not called", ref("Forgotten")),
        "400": _problem("?source= is missing"),
        "401": unauthorized,
        "404": _problem(unknown),
    }
    failed = {"200": _answer("Failed reconcile jobs", ref("FailedJobs")), "401": unauthorized}
    requeue = {
        "202": _answer("Queued again, its retries restored", ref("Requeued")),
        "401": unauthorized,
        "404": _problem("No failed reconcile job has this id"),
    }
    admin = {"security": [{"admin": []}]}
    optional = [
        key,
        {**source, "required": False, "description": "When several know the key"},
        story,
    ]
    required = [key, source]
    return {
        "/api/changes/{key}": {
            "get": _operation(
                "admin", "getChange", "A change", change, parameters=optional, **admin
            ),
            "delete": _operation(
                "admin", "forgetChange", "Forget a change", forget, parameters=required, **admin
            ),
        },
        "/api/jobs/failed": {
            "get": _operation("admin", "listFailedJobs", "Failed jobs", failed, **admin)
        },
        "/api/jobs/{job_id}/requeue": {
            "post": _operation(
                "admin", "requeueJob", "Replay a failed job", requeue, parameters=[job_id], **admin
            )
        },
    }


def _security_schemes() -> dict[str, Any]:
    per_source = "Which methods a source accepts is set by its mapping file"
    return {
        "bearer": {"type": "http", "scheme": "bearer", "description": per_source},
        "basic": {
            "type": "http",
            "scheme": "basic",
            "description": f"{per_source}; the password is the secret",
        },
        "hmac": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Hub-Signature",
            "description": f"{per_source}: sha256=<hex HMAC-SHA256 of the raw body> by default; "
            "header, prefix and encoding (hex, base64) are configurable",
        },
        "admin": {"type": "http", "scheme": "bearer", "description": "BRIDGE_ADMIN_TOKEN"},
    }

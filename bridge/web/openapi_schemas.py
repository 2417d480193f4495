"""The schemas of the OpenAPI document (openapi.py): the bodies the bridge takes and answers."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
NO_PLAN_REASONS = ["not_selected", "window_over", "no_ci"]
REASONS = ["stale", "duplicate", "not_selected", "window_over", "no_ci"]
SAMPLE_KEY = "CHG0030412"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(optional: tuple[str, ...] = (), **properties: Schema) -> Schema:
    """An object schema; every property is required but the `optional` ones."""
    required = [name for name in properties if name not in optional]
    return {"type": "object", "required": required, "properties": properties}


def schemas() -> dict[str, Schema]:
    string, nullable, integer = (
        {"type": "string"},
        {"type": ["string", "null"]},
        {"type": "integer"},
    )
    versions = {"type": ["array", "null"], "items": {"type": "number"}}
    plans = {"type": "object", "additionalProperties": ref("Plan")}
    failed_job = _object(
        id=string,
        source=string,
        maintenance_key=string,
        error=string,
        tries=integer,
        failed_at={**nullable, "format": "date-time"},
    )
    return {
        "ChangeRecord": {
            "type": "object",
            "description": "The source's record (ServiceNow record or {result}, Jira webhook...)",
        },
        "Accepted": _object(
            status={"const": "accepted"},
            maintenance_key=string,
            action={"enum": ["upsert", "remove"]},
            job_id={**string, "description": "The pending reconcile this event joined, if any"},
        ),
        "Ignored": _object(
            ("maintenance_key",),
            status={"const": "ignored"},
            reason={"enum": REASONS},
            maintenance_key=string,
        ),
        "Problem": _object(
            ("errors", "request_id"),
            type=string,
            title=string,
            status=integer,
            detail=string,
            errors={"type": "array", "items": _object(field=string, message=string)},
            request_id=string,
        ),
        "NoPlan": _object(no_plan={"enum": NO_PLAN_REASONS}),
        "Plan": _plan(),
        "Preview": _preview(),
        "ChangeState": _object(
            source=string,
            maintenance_key=string,
            desired={"anyOf": [{"type": "null"}, ref("NoPlan"), _object(plans=plans)]},
            plans={"type": "object", "additionalProperties": _remembered_plan()},
            version=versions,
            pending_job=nullable,
            create_uncertain={"type": "boolean"},
            history={"type": "array", "items": {"type": "object"}},
        ),
        "Forgotten": _object(
            forgotten=_object(
                source=string,
                maintenance_key=string,
                version=versions,
                plans={"type": "object", "additionalProperties": string},
                pending_job=nullable,
                history_entries=integer,
            ),
        ),
        "FailedJobs": _object(count=integer, jobs={"type": "array", "items": failed_job}),
        "Requeued": _object(requeued=string, source=string, maintenance_key=string),
        "Health": _object(status={"const": "ok"}),
        "Ready": _object(
            ("warning",),
            status={"const": "ready"},
            sources={"type": "array", "items": string},
            warning={**string, "description": "Set when plans go to the sandbox, not BigPanda"},
        ),
        "Unavailable": _object(status={"const": "unavailable"}, reason=string),
    }


def _plan() -> Schema:
    """A plan as BigPanda's create call takes it, with the organization it goes to."""
    string, seconds = {"type": "string"}, {"type": "integer", "description": "Unix epoch seconds"}
    return _object(
        ("frequency_data", "target", "running_policy"),
        name=string,
        condition={"type": "object", "description": "BPQL"},
        start=seconds,
        end=seconds,
        description=string,
        custom_tags={"type": "array", "items": _object(name=string, value=string)},
        time_zone=string,
        frequency=string,
        post_maintenance_action=string,
        frequency_data={"type": "object"},
        maintenance_key=string,
        target={"type": ["string", "null"], "description": "BigPanda organization; null: default"},
        running_policy={"enum": ["end_only", "restart"]},
    )


def _remembered_plan() -> Schema:
    return _object(
        ("adopted_unmarked",),
        id={"type": "string", "description": "BigPanda's plan id"},
        target={"type": ["string", "null"]},
        adopted_unmarked={"const": True},
    )


def _preview() -> Schema:
    string, nullable = {"type": "string"}, {"type": ["string", "null"]}
    verdict = _object(rule=string, selected={"type": "boolean"}, reason=nullable)
    ci = _object(name=string, **{"class": string})
    answers = ["accepted", *(f"ignored: {reason}" for reason in REASONS)]
    return _object(
        source=string,
        change=_object(
            fields={"type": "object"},
            version={"type": "array", "items": {"type": "number"}},
            cis={"type": "array", "items": ci},
            doubts={
                "type": "object",
                "additionalProperties": string,
                "description": "Fields the source could not read with certainty, and why: a "
                "plan that needs one is refused (422)",
            },
        ),
        rules={"type": "array", "items": verdict},
        rule={**nullable, "description": "The rule that decided, if any"},
        maintenance_key=string,
        desired={"anyOf": [ref("NoPlan"), {"type": "array", "items": ref("Plan")}]},
        action={"enum": ["upsert", "remove"]},
        answer={"enum": answers, "description": "How the webhook would answer now"},
    )


def record_examples() -> dict[str, Any]:
    record = {
        "table": "change_request",
        "number": SAMPLE_KEY,
        "sys_mod_count": "9",
        "sys_updated_on": "2024-06-10 14:02:31",
        "state": "-2",
        "short_description": "Upgrade PostgreSQL on lnx-db-prod-01",
        "start_date": "2099-06-15 01:00:00",
        "end_date": "2099-06-15 03:00:00",
        "cmdb_ci": {"value": "f7f7837a5ef27931b1ff952a5579a835", "display_value": "lnx-db-01"},
    }
    return {"servicenow": {"summary": "A scheduled ServiceNow change", "value": record}}

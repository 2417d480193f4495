"""A built-in stand-in for the senders' note APIs (ServiceNow's Table API work_notes, Jira's
issue comments), mounted with the sandbox under /sandbox/itsm for `bridge dev`: a mapping file
whose `write_back.url` is http://127.0.0.1:<port>/sandbox/itsm writes its notes here, and
GET /sandbox/itsm/notes lists them. Notes live in Redis, newest first; any credentials pass."""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from flask import Blueprint, request

NOTES_KEY = "sandbox:notes"
KEEP = 500


def create_itsm_sandbox(redis_conn: redis.Redis) -> Blueprint:
    """The blueprint; `redis_conn` keeps the notes (every gunicorn worker sees the same)."""
    itsm = Blueprint("sandbox_itsm", __name__, url_prefix="/sandbox/itsm")

    def keep(api: str, record: str, text: Any) -> None:
        entry = {"at": int(time.time()), "api": api, "record": record, "text": str(text)}
        redis_conn.lpush(NOTES_KEY, json.dumps(entry))
        redis_conn.ltrim(NOTES_KEY, 0, KEEP - 1)

    @itsm.patch("/api/now/table/<table>/<sys_id>")
    def work_note(table: str, sys_id: str) -> dict[str, Any]:
        body = request.get_json(silent=True) or {}
        keep("servicenow", f"{table}/{sys_id}", body.get("work_notes", ""))
        return {"result": {"sys_id": sys_id}}

    @itsm.post("/rest/api/2/issue/<key>/comment")
    def comment(key: str) -> tuple[dict[str, Any], int]:
        body = request.get_json(silent=True) or {}
        keep("jira", key, body.get("body", ""))
        return {"id": str(redis_conn.llen(NOTES_KEY)), "body": body.get("body", "")}, 201

    @itsm.get("/api/now/table/sys_journal_field")
    def journal() -> dict[str, Any]:
        """The subset the bridge asks: element_id=<sys_id>^element=work_notes^valueLIKE<text>."""
        terms = dict(
            t.split("=", 1) if "=" in t else (t[:9], t[9:])
            for t in request.args.get("sysparm_query", "").split("^")
        )
        record, text = terms.get("element_id", ""), terms.get("valueLIKE", "")
        found = [n for n in stored() if n["record"].endswith(f"/{record}") and text in n["text"]]
        return {"result": [{"sys_id": str(i)} for i, _ in enumerate(found)]}

    @itsm.get("/rest/api/2/issue/<key>/comment")
    def comments(key: str) -> dict[str, Any]:
        return {"comments": [{"body": n["text"]} for n in stored() if n["record"] == key]}

    def stored() -> list[dict[str, Any]]:
        return [json.loads(item) for item in redis_conn.lrange(NOTES_KEY, 0, -1)]

    @itsm.get("/notes")
    def notes() -> dict[str, Any]:
        return {"notes": [json.loads(item) for item in redis_conn.lrange(NOTES_KEY, 0, -1)]}

    return itsm

"""Write-back: a note on the change in the sender's system each time its plan is created, moved,
extended, stopped or deleted, or refused by BigPanda for good (so the change owner knows alerts
are not silenced). ServiceNow: the record's work_notes (Table API); Jira: a comment.

Notes are their own jobs on their own queue, paced per ITSM instance: a failed note never holds up
a reconcile. Each note is one event of the change's history, sent once: a note job retried after
it succeeded sends nothing (a marker per event), and one whose earlier attempt may have written
it before its worker died looks for the note's tag on the record first. The webhook a note
triggers (the Business Rule fires on the update) changes no desired plan, so it makes no BigPanda
call and no note.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from redis import Redis

from ..config import RATE_PERIOD_SECONDS
from ..mapping.write_back import WriteBack
from ..model import Plan
from ..remote import RemoteAPI
from ..state.ratelimit import RateLimiter
from ..state.store import PREFIX

log = logging.getLogger(__name__)

NOTE_SENT_DAYS = 7  # how long a sent note's marker is kept
TEXTS = {
    "created": "BigPanda maintenance plan created: alerts of {cis} are silenced {window}.",
    "moved": "BigPanda maintenance plan moved: alerts of {cis} are silenced {window}.",
    "extended": "BigPanda maintenance plan extended, the change being still in progress: {window}.",
    "stopped": "BigPanda maintenance plan stopped: alerts of its CIs are no longer silenced.",
    "deleted": "BigPanda maintenance plan deleted: no alert of this change will be silenced.",
    "refused": "BigPanda refused the maintenance plan, so alerts are NOT silenced: {message}",
}


class NoteClient:
    """Writes notes through one ITSM instance's API (on the one HTTP base, remote.py); raises
    TransientError or PermanentError naming ServiceNow or Jira."""

    def __init__(
        self,
        target: WriteBack,
        secret: str,
        limiter: RateLimiter | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ):
        self.target = target
        service = "ServiceNow" if target.api == "servicenow" else "Jira"
        self._api = RemoteAPI(service, secret, connect_timeout=connect_timeout,
                              read_timeout=read_timeout, limiter=limiter, log=log)  # fmt: skip
        if target.auth == "basic":
            self._api.session.auth = (target.username or "", secret)
        else:
            self._api.session.headers["Authorization"] = f"Bearer {secret}"

    def write(self, record: str, text: str) -> None:
        """One note on one record: ServiceNow by sys_id, Jira by issue key."""
        base, rid = self.target.url.rstrip("/"), quote(record, safe="")
        if self.target.api == "servicenow":
            url = f"{base}/api/now/table/{quote(self.target.table, safe='')}/{rid}"
            self._send("PATCH", url, {"work_notes": text})
        else:
            self._send("POST", f"{base}/rest/api/2/issue/{rid}/comment", {"body": text})

    def holds(self, record: str, tag: str) -> bool:
        """Whether the record already has a note holding `tag` (an earlier attempt may have
        written it before its worker died): ServiceNow's journal, Jira's newest comments."""
        base, rid = self.target.url.rstrip("/"), quote(record, safe="")
        if self.target.api == "servicenow":
            query = f"element_id={record}^element=work_notes^valueLIKE{tag}"
            url = f"{base}/api/now/table/sys_journal_field"
            found = self._send("GET", url, params={"sysparm_query": query, "sysparm_limit": 1})
            return bool((found or {}).get("result"))
        url = f"{base}/rest/api/2/issue/{rid}/comment"
        found = self._send("GET", url, params={"orderBy": "-created", "maxResults": 100})
        return any(tag in str(c.get("body")) for c in (found or {}).get("comments") or [])

    def _send(
        self, method: str, url: str, body: dict[str, Any] | None = None, params: Any = None
    ) -> Any:
        answer = self._api.call(method, url, json=body, params=params)
        try:
            return answer.json()
        except ValueError:
            return None


def note_of(
    action: str, body: Mapping[str, Any], before: Plan | None, moved: str
) -> tuple[str, dict[str, Any]] | None:
    """The note a call BigPanda accepted makes (None: nothing the change owner must know, such
    as a name brought back in line): the event and its details."""
    window = {"start": body.get("start"), "end": body.get("end")}
    if action == "update":
        was = {name: before.fields.get(name) for name in window} if before else {}
        if all(window[name] is None or window[name] == was.get(name) for name in window):
            return None
    event = {"create": "created", "update": moved, "stop": "stopped", "delete": "deleted"}
    cis = cis_of(body["condition"]) if "condition" in body else None
    return event[action], {**window, "cis": cis}


def note_client(
    redis: Redis,
    target: WriteBack,
    secret: str,
    timeouts: tuple[float, float] = (5.0, 10.0),
    period: float = RATE_PERIOD_SECONDS,
) -> NoteClient:
    """A client paced by a limiter every worker shares, one per instance (named by a hash):
    `rate_limit` notes per `period` (a little over a second, the margin BigPanda's pace keeps
    against uneven lateness). `timeouts`: connect and read, from the settings."""
    name = "notes-" + hashlib.sha256(target.url.encode()).hexdigest()[:16]
    limiter = RateLimiter(redis, name, rate=target.rate_limit, period=period)
    connect, read = timeouts
    return NoteClient(target, secret, limiter, connect_timeout=connect, read_timeout=read)


def note_text(event: str, details: Mapping[str, Any]) -> str:
    """The note for one event of the change's plan."""
    start, end = details.get("start"), details.get("end")
    window = f"from {_utc(start)} to {_utc(end)} UTC" if start and end else f"until {_utc(end)} UTC"
    cis = details.get("cis") or "the change's CIs"
    return TEXTS[event].format(window=window, cis=cis, message=details.get("message", ""))


def sent_marker(event_id: str) -> str:
    return f"{PREFIX}note-sent:{event_id}"


def attempt_marker(event_id: str) -> str:
    return f"{PREFIX}note-attempt:{event_id}"


def tag_of(event_id: str) -> str:
    """What each note ends with, so that a retry can tell it was written already."""
    return f"[bridge event {event_id}]"


def _utc(epoch: Any) -> str:
    if not isinstance(epoch, int | float):
        return "?"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def cis_of(condition: Mapping[str, Any], most: int = 10) -> str:
    """The CI names a condition matches, for a person: `web-01, db-02 and 3 more`."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for op, args in node.items():
                if op in ("AND", "OR"):
                    for sub in args:
                        walk(sub)
                elif op in ("=", "IN", "==="):
                    values = args[1] if isinstance(args[1], list) else [args[1]]
                    names.extend(v["value"] if isinstance(v, dict) else str(v) for v in values)

    walk(condition)
    shown = ", ".join(names[:most])
    return f"{shown} and {len(names) - most} more" if len(names) > most else shown

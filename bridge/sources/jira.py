"""Jira issue payloads (admin webhooks, post-functions, Automation issue data) -> Change.

Shapes, told apart by the payload itself: an admin webhook (Cloud, JSM, Data Center:
{timestamp, webhookEvent, issue, changelog}); a Data Center post-function ({transition, comment,
issue}); Automation "Issue data" in Jira format ({"issue": {...}}) or Automation format (the
issue itself, numeric id). A custom Automation body has no issue key: the generic source reads it.

Change.fields, for filters and templates:
  key, id                  issue key ("ITSM-1042") and id, both as text
  summary, description     description is None unless plain text (REST v2, as webhooks send)
  status, status_category  status name; its category key: new, indeterminate or done
  issue_type, priority, resolution   names; resolution is None while the issue is open
  project                  project key ("ITSM")
  labels, components       lists of text (components by name)
  created, updated         date strings as Jira sent them (the mapping parses dates)
  assignee, reporter       display name, else user name
  url                      browse URL derived from the issue's `self`, else None
  event                    issue_created, issue_updated, issue_deleted (webhookEvent without
                           "jira:"), transition (post-function) or automation (issue data)
  webhook_event, issue_event_type   webhookEvent and issue_event_type_name as sent, or None
  deleted                  True only for jira:issue_deleted
  changed_fields           the changelog's field ids (names where an item has no fieldId)
  transition               a post-function's transition name, else None
  from_status, to_status   a post-function's statuses, else the changelog's status change
  every other field of issue.fields (customfield_NNNNN, duedate, ...) under its own name,
  flattened: an option -> its value ("parent / child" when cascading), a user or named object ->
  its display name or name, a bare reference -> its key or id, an array -> a list of those.
  Objects with none of these (JSM's request type field) are left out.

Version: (timestamp,) in epoch ms when the body has one, else the issue's `updated` in epoch ms,
else () (unversioned). A delete is ordered like any other event: it ends the plan, and a newer
event of the key (a restored issue) is heard again; a body that merely claims a delete cannot
end a key for good. Change.cis is empty: which field holds the affected services is
site-specific, so the mapping picks CIs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..errors import InvalidChange
from ..model import Change

# Past any real timestamp, and still exact as a JSON number, a double and a Lua number.
MAX_TIMESTAMP = 2**53 - 1
WHOLE_MS = re.compile(r"^[0-9]{1,16}$")  # epoch ms as Jira sends it: digits, no exponent
DELETED = "jira:issue_deleted"
# What names an object, best first: options, users, named things, then bare references.
LABEL_KEYS = ("value", "displayName", "name", "key", "id")
USER_KEYS = ("displayName", "name")
SCALAR = (str, int, float, bool)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)
UPDATED = "issue.fields.updated"
NOT_AN_ISSUE = "is missing: not a Jira issue payload (custom bodies go to the generic source)"


def parse(raw: Mapping[str, Any]) -> Change:
    """Turn a Jira issue payload of any shape above into a Change."""
    issue = _issue(raw)
    issue_fields = _object(issue.get("fields"))
    fields = _other_fields(issue_fields)
    fields.update(_issue_fields(issue, issue_fields))
    fields.update(_event_fields(raw))
    version = _version(raw, issue_fields)
    version_time = _version_time(raw, version)
    return Change(
        source="jira",
        fields=fields,
        version=version,
        version_time=version_time,
        sent_at=version_time if raw.get("timestamp") is not None else None,  # when Jira sent it
    )


def _issue(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The issue: under `issue` in envelopes, the body itself in Automation format."""
    issue = raw.get("issue", raw)
    if not isinstance(issue, dict):
        raise InvalidChange("issue", f"is not an object: {type(issue).__name__}")
    key = issue.get("key")
    if key is None:
        raise InvalidChange("issue.key", NOT_AN_ISSUE)
    if not isinstance(key, str) or not key.strip():
        raise InvalidChange("issue.key", f"is not a non-empty string: {key!r}")
    return issue


def _other_fields(issue_fields: Mapping[str, Any]) -> dict[str, Any]:
    """Every field of the issue that flattens to text, a number or a list (or is empty)."""
    kept = {}
    for name, value in issue_fields.items():
        flat = _flat(value)
        if flat is not None or value is None:
            kept[name] = flat
    return kept


def _issue_fields(issue: Mapping[str, Any], f: Mapping[str, Any]) -> dict[str, Any]:
    """The fields every Jira issue has, under the names the mapping files use."""
    key = issue["key"].strip()
    status = _object(f.get("status"))
    return {
        "key": key,
        "id": _id(issue.get("id")),
        "summary": _label(f.get("summary")),
        "description": _text(f.get("description")),
        "status": _label(f.get("status")),
        "status_category": _label(status.get("statusCategory"), ("key",)),
        "issue_type": _label(f.get("issuetype")),
        "project": _label(f.get("project"), ("key",)),
        "priority": _label(f.get("priority")),
        "resolution": _label(f.get("resolution")),
        "labels": [label for label in _list(f.get("labels")) if isinstance(label, str)],
        "components": _flat(_list(f.get("components"))),
        "created": _text(f.get("created")),
        "updated": _text(f.get("updated")),
        "assignee": _label(f.get("assignee"), USER_KEYS),
        "reporter": _label(f.get("reporter"), USER_KEYS),
        "url": _browse_url(issue.get("self"), key),
    }


def _event_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    """What happened: the event, the fields it changed, and the status change if any."""
    webhook_event = raw.get("webhookEvent")
    if webhook_event is not None and not isinstance(webhook_event, str):
        raise InvalidChange("webhookEvent", f"is not a string: {webhook_event!r}")
    transition = _object(raw.get("transition"))
    changelog = _object(raw.get("changelog"))
    items = [item for item in _list(changelog.get("items")) if isinstance(item, dict)]
    if webhook_event:
        event = webhook_event.removeprefix("jira:")
    else:
        event = "transition" if transition else "automation"
    from_status, to_status = _status_change(transition, items)
    return {
        "event": event,
        "webhook_event": webhook_event or None,
        "issue_event_type": _text(raw.get("issue_event_type_name")),
        "deleted": webhook_event == DELETED,
        "changed_fields": [name for name in map(_changed_field, items) if name],
        "transition": _label(transition.get("transitionName")),
        "from_status": from_status,
        "to_status": to_status,
    }


def _changed_field(item: Mapping[str, Any]) -> str | None:
    """A changelog item's fieldId; Data Center items may carry only the field's name."""
    for name in ("fieldId", "field"):
        if isinstance(item.get(name), str) and item[name]:
            return item[name]
    return None


def _status_change(transition: dict[str, Any], items: list[dict[str, Any]]) -> tuple[Any, Any]:
    """A post-function's from/to statuses, else the changelog's status item, else None."""
    if transition:
        return _label(transition.get("from_status")), _label(transition.get("to_status"))
    for item in items:
        if _changed_field(item) == "status":
            return _label(item.get("fromString")), _label(item.get("toString"))
    return None, None


def _version(raw: Mapping[str, Any], f: Mapping[str, Any]) -> tuple[float, ...]:
    """Jira's order of events, deletes included: the webhook timestamp, else the issue's
    `updated`."""
    if raw.get("timestamp") is not None:
        return (_timestamp(raw["timestamp"]),)
    if f.get("updated") is None or f["updated"] == "":
        return ()
    return (_epoch_ms(f["updated"]),)


def _version_time(raw: Mapping[str, Any], version: tuple[float, ...]) -> tuple[str, float] | None:
    """The version as (field, epoch seconds), for the clock check."""
    if not version:
        return None
    field = "timestamp" if raw.get("timestamp") is not None else UPDATED
    return field, version[0] / 1000


def _timestamp(raw: Any) -> int:
    """Epoch ms as Jira sends it: an integer (or its digits as text); never a fraction or an
    exponent, which no Jira sends and which could claim any moment."""
    number = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        number = raw
    elif isinstance(raw, float) and raw.is_integer() and abs(raw) < MAX_TIMESTAMP:
        number = int(raw)
    elif isinstance(raw, str) and WHOLE_MS.match(raw.strip()):
        number = int(raw.strip())
    if number is None or not 0 <= number < MAX_TIMESTAMP:
        raise InvalidChange("timestamp", f"is not epoch milliseconds as a whole number: {raw!r}")
    return number


def _epoch_ms(raw: Any) -> int:
    """An ISO 8601 date with an offset (2024-06-10T14:02:31.412+0000) in epoch ms."""
    try:
        moment = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise InvalidChange(UPDATED, f"is not an ISO 8601 date: {raw!r}")
    if moment.utcoffset() is None:
        raise InvalidChange(UPDATED, f"has no UTC offset: {raw!r}")
    return (moment - EPOCH) // MILLISECOND  # exact: no float rounding of the milliseconds


def _flat(value: Any) -> Any:
    """A field as an operator reads it: a label, or a list of labels for an array."""
    if isinstance(value, list):
        return [label for label in map(_label, value) if label is not None]
    return _label(value)


def _label(value: Any, keys: tuple[str, ...] = LABEL_KEYS) -> Any:
    """A scalar as-is; an object's first scalar under `keys`; anything else None."""
    if not isinstance(value, dict):
        return value if isinstance(value, SCALAR) else None
    for name in keys:
        label = value.get(name)
        if isinstance(label, SCALAR):
            return _option(label, value.get("child")) if name == "value" else label
    return None


def _option(value: Any, child: Any) -> Any:
    """A cascading select's option reads "parent / child"; Jira nests only one level."""
    label = child.get("value") if isinstance(child, dict) else None
    return f"{value} / {label}" if isinstance(label, SCALAR) else value


def _browse_url(self_url: Any, key: str) -> str | None:
    """https://site/ctx/rest/api/2/issue/10842 -> https://site/ctx/browse/ITSM-1042."""
    if not isinstance(self_url, str) or "/rest/api/" not in self_url:
        return None
    base = self_url.split("/rest/api/", 1)[0]
    return f"{base}/browse/{key}" if base.startswith(("https://", "http://")) else None


def _id(raw: Any) -> str | None:
    """Ids are text in webhooks and numbers in Automation bodies; both become text."""
    return str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else _text(raw)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _object(value: Any) -> dict[str, Any]:
    """A part of the payload that should be an object; anything else reads as empty."""
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []

"""ServiceNow change_request records (Table API JSON or a Business Rule's body) -> Change."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidChange
from ..model import CI, Change

# The Geneva state model (-5..4); later change models may add states, so others pass through.
STATE_LABELS = {
    -5: "New",
    -4: "Assess",
    -3: "Authorize",
    -2: "Scheduled",
    -1: "Implement",
    0: "Review",
    3: "Closed",
    4: "Canceled",
}
TASK_STATE_LABELS = {-5: "Pending", 1: "Open", 2: "In Progress", 3: "Closed", 4: "Canceled"}
STATES_BY_TABLE = {"change_request": STATE_LABELS, "change_task": TASK_STATE_LABELS}
OUTAGE_TABLE = "cmdb_ci_outage"  # outages have no state: begin/end say when
BOOLEAN_FIELDS = ("active", "on_hold", "outside_maintenance_schedule", "unauthorized")
INTERNAL_DATE = "%Y-%m-%d %H:%M:%S"  # GlideDateTime's internal value: UTC, no zone designator
TRUE_WORDS = {"1", "true", "yes"}
MAX_MOD_COUNT = 10**9
SYS_ID = re.compile(r"^[0-9a-fA-F]{32}$")
FALSE_WORDS = {"0", "false", "no", ""}


def parse(raw: Mapping[str, Any]) -> Change:
    """Turn a change_request, change_task or cmdb_ci_outage record, bare or wrapped in
    {"result": ...}, into a Change; `table` says which (default change_request)."""
    record = raw["result"] if isinstance(raw.get("result"), dict) else raw
    fields = _flatten(record)
    fields.pop("affected_cis", None)
    table = fields.get("table") or fields.get("sys_class_name") or "change_request"
    fields["table"] = table = str(table)
    _require_text(fields, "number")
    if table != OUTAGE_TABLE:
        _normalize_state(fields, STATES_BY_TABLE.get(table, STATE_LABELS))
    for name in BOOLEAN_FIELDS:
        if name in fields:
            fields[name] = _boolean(name, fields[name])
    version, updated_on = _version(fields)
    version_time = ("sys_updated_on", float(updated_on)) if updated_on else None
    return Change(
        source="servicenow",
        fields=fields,
        version=version,
        cis=_cis(record),
        version_time=version_time,
    )


def _flatten(record: Mapping[str, Any]) -> dict[str, Any]:
    """Take `value` from {"value", "display_value"} and {"link", "value"} objects.

    The display value is kept as `<name>_display` unless the sender already sent one.
    """
    fields: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, dict) and "value" in value:
            fields[name] = value["value"]
            if "display_value" in value:
                fields.setdefault(f"{name}_display", value["display_value"])
        else:
            fields[name] = value
    return fields


def _require_text(fields: dict[str, Any], name: str) -> None:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidChange(name, "is missing or empty")


def _normalize_state(fields: dict[str, Any], labels: Mapping[int, str]) -> None:
    """Store `state` as its integer string ("-2") and `state_label` as its name ("Scheduled")."""
    raw = fields.get("state")
    if raw is None or raw == "":
        raise InvalidChange("state", "is missing")
    number = _state_number(raw, labels)
    if number is None:
        fields["state_label"] = str(raw)
        return
    fields["state"] = str(number)
    fields["state_label"] = labels.get(number) or fields.get("state_display") or str(number)


def _state_number(raw: Any, labels: Mapping[int, str]) -> int | None:
    if isinstance(raw, bool):
        raise InvalidChange("state", f"is not a state: {raw!r}")
    if isinstance(raw, int | float) and float(raw).is_integer():
        return int(raw)
    text = str(raw).strip()
    numbers = {label.lower(): number for number, label in labels.items()}
    if text.lower() in numbers:
        return numbers[text.lower()]
    try:
        number = float(text)
    except ValueError:
        return None  # a label of a custom change model: rules may still match it by name
    if not number.is_integer():
        raise InvalidChange("state", f"is not a whole number: {raw!r}")
    return int(number)


def _boolean(name: str, raw: Any) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise InvalidChange(name, f"is not a boolean: {raw!r}")


def _version(fields: dict[str, Any]) -> tuple[tuple[int, int], int]:
    """(sys_mod_count, sys_updated_on) orders the events of one change; a sender that leaves the
    count out is ordered by sys_updated_on alone (its count reads 0). Also returns the time."""
    updated_on = _updated_on(fields)
    if fields.get("sys_mod_count") in (None, ""):
        if not updated_on:
            raise InvalidChange(
                "sys_mod_count", "is missing, and so is sys_updated_on: one of them orders updates"
            )
        return (0, updated_on), updated_on
    return (_mod_count(fields), updated_on), updated_on


def _mod_count(fields: dict[str, Any]) -> int:
    """sys_mod_count as a whole number; numbers may come as "12" or 12.0."""
    raw = fields.get("sys_mod_count")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise InvalidChange("sys_mod_count", f"is not a number: {raw!r}") from None
    if isinstance(raw, bool) or not number.is_integer():
        raise InvalidChange("sys_mod_count", f"is not a whole number: {raw!r}")
    if not 0 <= number <= MAX_MOD_COUNT:
        # One absurd count would make every later event of the change stale.
        raise InvalidChange("sys_mod_count", f"is {raw!r}, outside 0..{MAX_MOD_COUNT:,}")
    fields["sys_mod_count"] = int(number)
    return int(number)


def _updated_on(fields: dict[str, Any]) -> int:
    """sys_updated_on (seconds) breaks ties between equal sys_mod_counts; absent counts as 0."""
    raw = fields.get("sys_updated_on")
    if raw is None or raw == "":
        return 0
    return int(parse_internal_date("sys_updated_on", raw).timestamp())


def parse_internal_date(name: str, raw: Any) -> datetime:
    """Parse a GlideDateTime internal value (UTC `YYYY-MM-DD HH:MM:SS`)."""
    try:
        return datetime.strptime(str(raw), INTERNAL_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidChange(name, f"is not a UTC date as YYYY-MM-DD HH:MM:SS: {raw!r}") from None


def _cis(record: Mapping[str, Any]) -> tuple[CI, ...]:
    """The affected CIs a Business Rule added from task_ci, then the change's own cmdb_ci."""
    entries = record.get("affected_cis") or []
    if not isinstance(entries, list):
        raise InvalidChange("affected_cis", "is not a list")
    cis = [_affected_ci(index, entry) for index, entry in enumerate(entries)]
    primary = _display_name(record.get("cmdb_ci"))
    if primary and all(ci.name != primary for ci in cis):
        cis.append(CI(name=primary))
    return tuple(cis)


def _affected_ci(index: int, entry: Any) -> CI:
    field = f"affected_cis[{index}]"
    if not isinstance(entry, dict):
        raise InvalidChange(field, "is not an object")
    name = entry.get("name") or _display_name(entry.get("ci_item"))
    if not isinstance(name, str) or not name.strip():
        raise InvalidChange(field, "has no CI name (send `name` or `ci_item.display_value`)")
    ci_class = entry.get("sys_class_name") or ""
    return CI(name=name.strip(), ci_class=str(_display_or_value(ci_class)))


def _display_name(reference: Any) -> str | None:
    """A reference's name is its display_value; a bare {"link", "value"} carries none. A plain
    string (what getDisplayValue() sends) is the name, unless it is a 32-hex sys_id."""
    if isinstance(reference, dict):
        reference = reference.get("display_value")
    if not isinstance(reference, str) or not reference.strip() or SYS_ID.match(reference):
        return None
    return reference.strip()


def _display_or_value(value: Any) -> Any:
    return value.get("value", "") if isinstance(value, dict) else value

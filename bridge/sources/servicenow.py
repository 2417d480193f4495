"""ServiceNow change_request, change_task and cmdb_ci_outage records -> Change.

Records come bare or wrapped in {"result": ...}, with values plain, as {value, display_value}
pairs (the pair's `value` wins) or as {link, value} references. A record may be in *display mode*
(getDisplayValue(), sysparm_display_value=true): choice fields hold labels ("Scheduled",
"Normal", "Change Request") and dates are in the integration user's time zone and date format.
Labels are mapped to values, and kept under `<field>_display` for rules. Display dates are read
with the mapping file's `display_values`; without them such a date is a doubt (`Change.doubts`)
that refuses a plan, never read as UTC. A CI reference without a name is a doubt too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..errors import InvalidChange
from ..model import CI, Change
from .servicenow_display import INTERNAL_DATE, DisplayValues, display_dates

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
# Choice fields a rule may compare, value -> label, as a display-mode record sends the label.
TABLES = {"change_request": "Change Request", "change_task": "Change Task", OUTAGE_TABLE: "Outage"}
CHOICES: Mapping[str, Mapping[str, str]] = {
    "table": TABLES,
    "sys_class_name": TABLES,
    "type": {"normal": "Normal", "standard": "Standard", "emergency": "Emergency"},
    "approval": {"not requested": "Not Yet Requested", "requested": "Requested",
                 "approved": "Approved", "rejected": "Rejected", "cancelled": "Cancelled",
                 "not_required": "No Longer Required", "duplicate": "Duplicate"},
    "risk": {"1": "Very High", "2": "High", "3": "Moderate", "4": "Low"},
}  # fmt: skip
NUMBERED_CHOICES = ("impact", "urgency", "priority")  # labels read "2 - Medium"
NUMBERED_LABEL = re.compile(r"^([0-9]+) - \S")
BOOLEAN_FIELDS = ("active", "on_hold", "outside_maintenance_schedule", "unauthorized")
TRUE_WORDS = {"1", "true", "yes"}
FALSE_WORDS = {"0", "false", "no", ""}
MOD_COUNT = re.compile(r"^[0-9]{1,15}(\.0+)?$")  # an integer as ServiceNow sends one: no exponent
MAX_MOD_COUNT_JUMP = 10_000  # above the newest seen (or above 0 for a new change): refused
SYS_ID = re.compile(r"^[0-9a-fA-F]{32}$")
NO_NAME = (
    "is a reference with no name (sys_id {sys_id}): send the CI's name, with display values "
    "(sysparm_display_value=all, or getDisplayValue() in the Business Rule) or by dot-walking "
    "`cmdb_ci.name`"
)


def parse(raw: Mapping[str, Any], display: DisplayValues | None = None) -> Change:
    """Turn a change_request, change_task or cmdb_ci_outage record, bare or wrapped in
    {"result": ...}, into a Change; `table` says which (default change_request). `display`:
    how the sender's display values read (the mapping file's `display_values`)."""
    record = raw["result"] if isinstance(raw.get("result"), dict) else raw
    fields, paired, display_only = _flatten(record)
    fields.pop("affected_cis", None)
    # What gives a display-mode record away: labels where values belong, lone display values.
    labels = _choice_labels(fields, paired) + [
        f"{name} as a display_value" for name in display_only
    ]
    table = fields.get("table") or fields.get("sys_class_name") or "change_request"
    fields["table"] = table = str(table)
    _require_text(fields, "number")
    if table != OUTAGE_TABLE:
        labels += _normalize_state(fields, STATES_BY_TABLE.get(table, STATE_LABELS), paired)
    for name in BOOLEAN_FIELDS:
        if name in fields:
            fields[name] = _boolean(name, fields[name])
    doubts = display_dates(fields, paired, labels, display)
    version, updated_on = _version(fields, doubts)
    cis, unnamed = _cis(record)
    return Change(
        source="servicenow",
        fields=fields,
        version=version,
        cis=cis,
        version_time=("sys_updated_on", float(updated_on)) if updated_on else None,
        version_bound=_bound(fields),
        doubts={**doubts, **unnamed},
        ci_doubts=tuple(unnamed),
    )


def _flatten(record: Mapping[str, Any]) -> tuple[dict[str, Any], set[str], list[str]]:
    """Take `value` from {"value", "display_value"} and {"link", "value"} objects (and the
    display value from a pair that has no value). The display value is kept as
    `<name>_display` unless the sender already sent one. Also: the names that came as pairs, and
    those that came as a display value alone (a display-mode record)."""
    fields: dict[str, Any] = {}
    paired: set[str] = set()
    display_only: list[str] = []
    for name, value in record.items():
        if isinstance(value, dict) and "value" in value:
            fields[name] = value["value"]
            paired.add(name)
            if "display_value" in value:
                fields.setdefault(f"{name}_display", value["display_value"])
        elif isinstance(value, dict) and "display_value" in value:
            fields[name] = value["display_value"]
            display_only.append(name)
        else:
            fields[name] = value
    return fields, paired, display_only


def _choice_labels(fields: dict[str, Any], paired: set[str]) -> list[str]:
    """Map labels of known choice fields to their values (the label kept as `<name>_display`);
    returns what gave a display-mode record away, e.g. "type 'Normal'"."""
    found = []
    for name, choices in CHOICES.items():
        value = fields.get(name)
        if not isinstance(value, str) or value in choices:
            continue
        by_label = {label.lower(): choice for choice, label in choices.items()}
        if value.lower() in by_label:
            found += _as_value(fields, name, by_label[value.lower()], paired)
    for name in NUMBERED_CHOICES:
        value = fields.get(name)
        match = NUMBERED_LABEL.match(value) if isinstance(value, str) else None
        if match:
            found += _as_value(fields, name, match.group(1), paired)
    return found


def _as_value(fields: dict[str, Any], name: str, value: str, paired: set[str]) -> list[str]:
    label = fields[name]
    fields[name] = value
    fields.setdefault(f"{name}_display", label)
    return [] if name in paired else [f"{name} {label!r}"]


def _require_text(fields: dict[str, Any], name: str) -> None:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidChange(name, "is missing or empty")


def _normalize_state(
    fields: dict[str, Any], labels: Mapping[int, str], paired: set[str]
) -> list[str]:
    """Store `state` as its integer string ("-2") and `state_label` as its name ("Scheduled");
    returns ["state 'Scheduled'"] when the record sent the label where the value belongs."""
    raw = fields.get("state")
    if raw is None or raw == "":
        raise InvalidChange("state", "is missing")
    number, was_label = _state_number(raw, labels)
    if number is None:
        fields["state_label"] = str(raw)
        return []
    fields["state"] = str(number)
    fields["state_label"] = labels.get(number) or fields.get("state_display") or str(number)
    if not was_label or "state" in paired:
        return []
    fields.setdefault("state_display", str(raw))
    return [f"state {raw!r}"]


def _state_number(raw: Any, labels: Mapping[int, str]) -> tuple[int | None, bool]:
    """The state's number, and whether it was sent as its label."""
    if isinstance(raw, bool):
        raise InvalidChange("state", f"is not a state: {raw!r}")
    if isinstance(raw, int | float) and float(raw).is_integer():
        return int(raw), False
    text = str(raw).strip()
    numbers = {label.lower(): number for number, label in labels.items()}
    if text.lower() in numbers:
        return numbers[text.lower()], True
    try:
        number = float(text)
    except ValueError:
        return None, False  # a label of a custom change model: rules may still match it by name
    if not number.is_integer():
        raise InvalidChange("state", f"is not a whole number: {raw!r}")
    return int(number), False


def _boolean(name: str, raw: Any) -> bool | None:
    if raw is None or isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise InvalidChange(name, f"is not a boolean: {raw!r}")


def _version(fields: dict[str, Any], doubts: Mapping[str, str]) -> tuple[tuple[int, int], int]:
    """(sys_mod_count, sys_updated_on) orders the events of one change; a sender that leaves the
    count out is ordered by sys_updated_on alone (its count reads 0). Also returns the time."""
    updated_on = _updated_on(fields, doubts)
    if fields.get("sys_mod_count") in (None, ""):
        if not updated_on:
            reason = doubts.get("sys_updated_on", "and so is sys_updated_on")
            raise InvalidChange(
                "sys_mod_count", f"is missing, {reason}: one of them orders updates"
            )
        return (0, updated_on), updated_on
    return (_mod_count(fields), updated_on), updated_on


def _bound(fields: Mapping[str, Any]) -> tuple[int, str, int] | None:
    """sys_mod_count may not jump far past the newest seen: one absurd count would make every
    later event of the change stale."""
    if fields.get("sys_mod_count") in (None, ""):
        return None
    return (0, "sys_mod_count", MAX_MOD_COUNT_JUMP)


def _mod_count(fields: dict[str, Any]) -> int:
    """sys_mod_count as ServiceNow sends it: 12, "12" or 12.0; never an exponent or fraction."""
    raw = fields.get("sys_mod_count")
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidChange("sys_mod_count", f"is not a whole number: {raw!r}")
    if isinstance(raw, float) and not (raw.is_integer() and 0 <= raw < 10**15):
        raise InvalidChange("sys_mod_count", f"is not a whole number: {raw!r}")
    if isinstance(raw, str) and not MOD_COUNT.match(raw.strip()):
        raise InvalidChange(
            "sys_mod_count", f'is not a whole number as ServiceNow sends it (e.g. "12"): {raw!r}'
        )
    number = int(float(raw)) if not isinstance(raw, int) else raw
    if number < 0:
        raise InvalidChange("sys_mod_count", f"is negative: {raw!r}")
    fields["sys_mod_count"] = number
    return number


def _updated_on(fields: dict[str, Any], doubts: Mapping[str, str]) -> int:
    """sys_updated_on (seconds) breaks ties between equal sys_mod_counts; absent counts as 0,
    and so does a display value that cannot be read while sys_mod_count orders the events."""
    raw = fields.get("sys_updated_on")
    if raw is None or raw == "":
        return 0
    if "sys_updated_on" in doubts:
        if fields.get("sys_mod_count") in (None, ""):
            raise InvalidChange("sys_updated_on", doubts["sys_updated_on"])
        return 0
    return int(parse_internal_date("sys_updated_on", raw).timestamp())


def parse_internal_date(name: str, raw: Any) -> datetime:
    """Parse a GlideDateTime internal value (UTC `YYYY-MM-DD HH:MM:SS`)."""
    try:
        return datetime.strptime(str(raw), INTERNAL_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidChange(name, f"is not a UTC date as YYYY-MM-DD HH:MM:SS: {raw!r}") from None


def _cis(record: Mapping[str, Any]) -> tuple[tuple[CI, ...], dict[str, str]]:
    """The affected CIs a Business Rule added from task_ci, then the change's own cmdb_ci; and
    the references that carry no name (field -> why), which refuse a plan."""
    entries = record.get("affected_cis") or []
    if not isinstance(entries, list):
        raise InvalidChange("affected_cis", "is not a list")
    cis, unnamed = [], {}
    for index, entry in enumerate(entries):
        field = f"affected_cis[{index}]"
        ci = _affected_ci(field, entry)
        if isinstance(ci, CI):
            cis.append(ci)
        else:
            unnamed[field] = ci
    primary = record.get("cmdb_ci.name") or record.get("cmdb_ci")
    name = _display_name(primary)
    if name and all(ci.name != name for ci in cis):
        cis.append(CI(name=name))
    elif name is None and _sys_id(primary):
        unnamed["cmdb_ci"] = NO_NAME.format(sys_id=_sys_id(primary))
    return tuple(cis), unnamed


def _affected_ci(field: str, entry: Any) -> CI | str:
    """The CI of a task_ci entry, or why it has no name."""
    if not isinstance(entry, dict):
        raise InvalidChange(field, "is not an object")
    name = entry.get("name") or _display_name(entry.get("ci_item"))
    if not isinstance(name, str) or not name.strip():
        sys_id = _sys_id(entry.get("ci_item"))
        if sys_id:
            return NO_NAME.format(sys_id=sys_id).replace("`cmdb_ci.name`", "`ci_item.name`")
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


def _sys_id(reference: Any) -> str | None:
    """The sys_id of a reference that names no CI (a {link, value} or a bare sys_id)."""
    value = reference.get("value") if isinstance(reference, dict) else reference
    return value if isinstance(value, str) and SYS_ID.match(value) else None


def _display_or_value(value: Any) -> Any:
    return value.get("value", "") if isinstance(value, dict) else value

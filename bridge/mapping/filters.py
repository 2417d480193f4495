"""Filters in mapping files: which changes get a plan, as YAML leaves or ServiceNow encoded queries.

A filter is compiled once at load, where a bad spec is a ValueError saying what is wrong. Its
`check` takes a change's flattened fields and answers None when the change passes, else one
sentence naming the condition that failed and the value it saw; it never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from ..model import lookup
from .patterns import compile_pattern

# `not_equals`, `not_in` and `not_contains` negate the positive test and, as in ServiceNow
# (KB0715430: "is not" never returns empty values), also need the field to hold a value.
OPERATORS = (
    "equals", "not_equals", "in", "not_in", "contains", "not_contains", "starts_with",
    "ends_with", "regex", "exists", "gt", "gte", "lt", "lte",
)  # fmt: skip
ORDER = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
TEXT_TESTS = ("contains", "starts_with", "ends_with")
LABEL_TESTS = ("equals", "in", "regex", *TEXT_TESTS)  # a label is text: never compared by order
PASSING_SIGNS = {"gt": (1,), "gte": (0, 1), "lt": (-1,), "lte": (-1, 0)}
# Why a leaf failed, after "<field> is <value>, ": (its test failed, its negated test held).
REASONS = {
    "equals": ("not {v}", "which matches the excluded {v}"),
    "in": ("not one of {v}", "one of the excluded {v}"),
    "contains": ("which does not contain {v}", "which contains {v}"),
    "starts_with": ("which does not start with {v}", "which starts with {v}"),
    "ends_with": ("which does not end with {v}", "which ends with {v}"),
    "regex": ("which does not match {v}", "which matches {v}"),
    **{op: (f"not {sign} {{v}}", f"which is {sign} {{v}}") for op, sign in ORDER.items()},
}
BOOLEAN_WORDS = {"true": True, "1": True, "false": False, "0": False}
# Plain decimals only: not "nan", "inf" or "1_000", and exponents small enough for Decimal.
NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?")
DATE_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}")  # so "20240615" stays a number, never a date


class Filter(Protocol):
    """Anything that can say whether a change's fields pass."""

    def check(self, fields: Mapping[str, Any]) -> str | None:
        """None when the fields pass; otherwise why not, in one sentence."""
        ...


@dataclass(frozen=True)
class Leaf:
    """One test of one field; `negated` turns its answer around (exists into empty, ...)."""

    field: str
    test: str
    value: Any
    negated: bool = False

    def check(self, fields: Mapping[str, Any]) -> str | None:
        """A field's label (`<field>_display`, e.g. "Emergency" beside "emergency") counts as
        well as its value: a test passes on either, a negated test needs both to pass."""
        reason = self._check(lookup(fields, self.field))
        label = fields.get(f"{self.field}_display")
        if label is None or self.test not in LABEL_TESTS:
            return reason
        if label == lookup(fields, self.field):
            return reason
        label_reason = self._check(label)
        if self.negated:
            return reason or label_reason
        return None if label_reason is None else reason

    def _check(self, actual: Any) -> str | None:
        verdict = _run(self.test, actual, self.value)
        if verdict is None and not self.negated:  # `gt` fails on a value it cannot compare,
            bound = f"{ORDER[self.test]} {_text(self.value)}"
            return f"{self.field} is {show(actual)}, not comparable with {bound}"
        if verdict is None or verdict != self.negated:  # while `not: {gt: ...}` holds
            return None
        if self.test in ("exists", "present"):
            if self.negated:
                return f"{self.field} is {show(actual)}, not empty"
            suffix = ", so it cannot be compared" if self.test == "present" else ""
            return f"{self.field} is empty{suffix}"
        if self.test in ORDER:
            wanted = _text(self.value)
        elif self.test == "regex":
            wanted = show(self.value.pattern)
        else:  # `in` holds a tuple: show it as the list the mapping file wrote
            wanted = show(list(self.value) if self.test == "in" else self.value)
        reason = REASONS[self.test][self.negated].format(v=wanted)
        return f"{self.field} is {show(actual)}, {reason}"


@dataclass(frozen=True)
class AllOf:
    """Passes when every part passes (so, with no parts, always); fails with the first reason."""

    parts: tuple[Filter, ...]

    def check(self, fields: Mapping[str, Any]) -> str | None:
        for part in self.parts:
            if (reason := part.check(fields)) is not None:
                return reason
        return None


@dataclass(frozen=True)
class AnyOf:
    """Passes when some part passes; fails with every part's reason."""

    parts: tuple[Filter, ...]

    def check(self, fields: Mapping[str, Any]) -> str | None:
        reasons = []
        for part in self.parts:
            if (reason := part.check(fields)) is None:
                return None
            reasons.append(reason)
        return f"none of: ({'; '.join(reasons)})"


# --- comparison semantics ------------------------------------------------------------------------

MATCHES: dict[str, Callable[[Any, Any], bool]] = {
    "equals": lambda actual, wanted: _equal(actual, wanted),
    "in": lambda actual, wanted: any(_equal(actual, one) for one in wanted),
    "contains": lambda actual, text: text in _fold(actual),
    "starts_with": lambda actual, text: _fold(actual).startswith(text),
    "ends_with": lambda actual, text: _fold(actual).endswith(text),
    "regex": lambda actual, pattern: pattern.search(_text(actual)) is not None,
}


def _run(test: str, actual: Any, value: Any) -> bool | None:
    """The test's answer; None when an order test meets values it cannot compare."""
    if test == "exists":
        return not _is_empty(actual)
    if test == "present":  # has a value; unlike exists, an empty list (Jira labels) is one
        return isinstance(actual, list | tuple | set | dict) or not _is_empty(actual)
    if test in ORDER:
        sign = _compare(actual, value)
        return None if sign is None else sign in PASSING_SIGNS[test]
    # A list-valued field (labels) passes when any element does; a missing field never does.
    elements = actual if isinstance(actual, list | tuple | set | frozenset) else [actual]
    return any(MATCHES[test](one, value) for one in elements if one is not None)


def _equal(actual: Any, wanted: Any) -> bool:
    """Booleans as booleans, numbers as numbers ("2" == 2.0), else text ignoring case."""
    if isinstance(actual, bool) or isinstance(wanted, bool):
        mine = BOOLEAN_WORDS.get(_fold(actual).strip())
        return mine is not None and mine == BOOLEAN_WORDS.get(_fold(wanted).strip())
    if _number(actual) is not None and _number(wanted) is not None:
        return _number(actual) == _number(wanted)
    return _fold(actual).strip() == _fold(wanted).strip()


def _compare(actual: Any, bound: Any) -> int | None:
    """-1, 0 or 1 comparing numbers, else dates; None when the two are not comparable."""
    for convert in (_number, _date):
        mine, theirs = convert(actual), convert(bound)
        if mine is not None and theirs is not None:
            return (mine > theirs) - (mine < theirs)  # type: ignore[operator]
    return None


def _number(value: Any) -> Decimal | None:
    """Decimal, not float, so numeric ids longer than 15 digits stay distinct."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    text = repr(value) if isinstance(value, float) else value
    if isinstance(text, str) and NUMBER.fullmatch(text.strip()):
        return Decimal(text.strip())
    return None


def _date(value: Any) -> datetime | None:
    """ISO 8601 or ServiceNow's `YYYY-MM-DD HH:MM:SS`; a value without a zone is UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):  # YAML reads an unquoted 2024-06-01 as a date
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str) and DATE_PREFIX.match(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | tuple | set | dict) and not value)


def _text(value: Any, convert: Callable[[Any], str] = str) -> str:
    try:
        return convert(value)
    except ValueError:  # an int too long for Python to print (over 4,300 digits)
        return f"<a {type(value).__name__} too long to show>"


def _fold(value: Any) -> str:
    return _text(value).casefold()


def show(value: Any) -> str:
    """A value as a reason shows it: quoted like Python, cut short, "empty" for nothing."""
    text = "empty" if _is_empty(value) else _text(value, repr)
    return text if len(text) <= 80 else text[:77] + "..."


# --- leaves as mapping files write them ----------------------------------------------------------


def make_leaf(spec: Mapping[Any, Any]) -> Filter:
    """`{field: NAME, <operator>: VALUE}` with exactly one operator."""
    field = spec.get("field")
    name = f"filter leaf for {field!r}" if isinstance(field, str) else "filter leaf"
    unknown = [str(key) for key in spec if key != "field" and key not in OPERATORS]
    if unknown:
        known = ", ".join(OPERATORS)
        raise ValueError(f"{name} has unknown keys: {', '.join(unknown)} (operators: {known})")
    if not isinstance(field, str) or not field.strip():
        raise ValueError(f"{name} needs 'field', the name of a field, not {show(field)}")
    ops = [key for key in spec if key != "field"]
    if len(ops) != 1:
        count = {0: "no", 2: "two", 3: "three"}.get(len(ops), str(len(ops)))
        listed = ", ".join(ops) if ops else f"give one of {', '.join(OPERATORS)}"
        raise ValueError(f"{name} has {count} operators: {listed}")
    test, negated = ops[0].removeprefix("not_"), ops[0].startswith("not_")
    value = _value(test, spec[ops[0]], f"{ops[0]} for {field!r}")
    field = field.strip()
    if test == "exists":  # `exists: false` is the negated test
        return Leaf(field, test, None, negated=not value)
    if negated:
        return AllOf((Leaf(field, "present", None), Leaf(field, test, value, negated=True)))
    return Leaf(field, test, value)


def _value(test: str, value: Any, what: str) -> Any:
    """The operator's value, checked and prepared: text folded, regex compiled."""
    if test == "exists" and isinstance(value, bool):
        return value
    if test in ORDER and (_number(value) is not None or _date(value) is not None):
        return value
    if test == "in" and isinstance(value, list) and value and all(map(_is_scalar, value)):
        return tuple(value)  # a tuple keeps the frozen Leaf hashable
    if test == "equals" and _is_scalar(value):
        return value
    if test in TEXT_TESTS and _is_scalar(value) and not isinstance(value, bool):
        return _fold(value)
    if test == "regex" and isinstance(value, str):
        try:
            return compile_pattern(value)
        except ValueError as exc:
            raise ValueError(f"{what} {exc}") from None
    needs = {
        "exists": "true or false",
        "in": "a list of one or more values",
        "regex": "a pattern as text",
        "equals": "one value (text, a number or true/false)",
    }
    wanted = "a number or a date" if test in ORDER else needs.get(test, "text")
    hint = " (for an empty field use exists: false)" if value is None or value == "" else ""
    raise ValueError(f"{what} needs {wanted}, not {show(value)}{hint}")


def _is_scalar(value: Any) -> bool:
    """A usable single value: non-empty text, a number, true/false, or a date YAML read."""
    return bool(value.strip()) if isinstance(value, str) else isinstance(value, int | float | date)

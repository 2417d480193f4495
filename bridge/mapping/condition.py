"""BPQL object conditions: built from a change's CIs, checked against BigPanda's rules and for
their blast radius (a condition never matches more than the change's CIs)."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidChange
from ..model import CI
from .patterns import compile_pattern

MAX_CONDITION_CHARS = 25_000  # BigPanda's documented limit (one page says 80,000: use the lower)
OPERATORS = ("=", "!=", "===", "IN", "NOT IN", "AND", "OR")
DEFAULT_CLASS = "default"
WILDCARDS = frozenset("*?")  # glob characters of BigPanda's "regex" values
REGEX_SYNTAX = frozenset('\\.^$|()[]{}+"#@&<>~')  # escaped in a wildcard value (`match: prefix`)
# Unicode categories no alert tag carries: controls, format (bidi overrides, zero-width),
# line and paragraph separators, surrogates, private use.
HIDDEN = frozenset(("Cc", "Cf", "Zl", "Zp", "Cs", "Co"))
# Tag values a formal regex is tried on: one that finds all of them would match every alert.
PROBES = ("a", "Z", "0", "-", ".", "/", " ", "_x_", "web-01.example.com", "ü", "x" * 300)

Item = tuple[str, str, bool]  # (tag, value, wildcard): a wildcard value is sent as a regex


@dataclass(frozen=True)
class ConditionRule:
    """How a rule turns CIs into a condition: tag names by CI class, wildcards, fixed clauses."""

    tags: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {DEFAULT_CLASS: ("host",)})
    match: str = "exact"  # "prefix": also match names that start with the CI name (FQDNs)
    lowercase_values: bool = False
    also: tuple[Mapping[str, Any], ...] = ()
    split: bool = False


def build_conditions(rule: ConditionRule, cis: Sequence[CI]) -> list[dict[str, Any]]:
    """One condition for the CIs; several when `split` and one would be too long; [] when no CI
    maps to a tag. Raises InvalidChange when a condition cannot fit the limit."""
    items = _items(rule, cis)
    if not items:
        return []
    conditions = _fitted(items, rule)
    for condition in conditions:  # the last word on blast radius, whatever built them
        reason = matches_everything(condition)
        if reason:
            raise InvalidChange("condition", f"would match every alert ({reason}): refused")
    return conditions


def _fitted(items: Sequence[Item], rule: ConditionRule) -> list[dict[str, Any]]:
    whole = _condition(items, rule.also)
    if condition_length(whole) <= MAX_CONDITION_CHARS:
        return [whole]
    if not rule.split:
        raise InvalidChange(
            "condition",
            f"is {condition_length(whole)} characters, over BigPanda's limit of "
            f"{MAX_CONDITION_CHARS}; say `split: true` in the rule's condition to spread the "
            f"{len(items)} CIs over several plans",
        )
    return [_condition(chunk, rule.also) for chunk in _chunks(items, rule.also)]


def condition_length(condition: Mapping[str, Any]) -> int:
    """Length as BigPanda counts it: compact JSON, non-ASCII kept."""
    return len(json.dumps(condition, separators=(",", ":"), ensure_ascii=False))


def validate_bpql(node: Any, path: str = "condition") -> None:
    """Refuse what is not BPQL object syntax (ValueError naming the place)."""
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"{path} must be an object with exactly one operator")
    ((op, args),) = node.items()
    where = f"{path}.{op}"
    if op not in OPERATORS:
        raise ValueError(f"{path} has unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
    if op in ("AND", "OR"):
        if not isinstance(args, list) or not args:
            raise ValueError(f"{where} must be a non-empty list of conditions")
        for index, sub in enumerate(args):
            validate_bpql(sub, f"{where}[{index}]")
        return
    if not (isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and args[0]):
        raise ValueError(f"{where} must be [tag, value] with the tag name as a string")
    values = args[1] if op in ("IN", "NOT IN") else [args[1]]
    if not isinstance(values, list) or not values or not all(map(_is_value, values)):
        raise ValueError(f"{where} has an invalid value: use a string, number or regex object")


def matches_everything(node: Mapping[str, Any]) -> str | None:
    """Why a valid BPQL condition would match every alert (None when it would not): a wildcard
    value of only `*`/`?`, a formal regex that finds any value, an OR holding such a clause, an
    AND made only of them. Exclusions (`!=`, `NOT IN`) are judged to narrow."""
    ((op, args),) = node.items()
    if op in ("AND", "OR"):
        reasons = [matches_everything(sub) for sub in args]
        found = [reason for reason in reasons if reason]
        if op == "OR" and found:
            return found[0]
        return found[0] if op == "AND" and len(found) == len(reasons) else None
    if op in ("!=", "NOT IN"):
        return None
    values = args[1] if op in ("IN", "NOT IN") else [args[1]]
    for value in values:
        reason = _value_matches_all(value)
        if reason:
            return f"{args[0]} {reason}"
    return None


def _value_matches_all(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None  # a plain value is a literal
    pattern = value["value"]
    if value["type"] == "regex" and set(pattern) <= WILDCARDS:
        return f"= {pattern!r}, a wildcard alone"
    if value["type"] == "formal-regex":
        try:
            compiled = compile_pattern(pattern)
        except ValueError:
            return None  # not RE2 syntax: BigPanda's engine judges it; ours cannot
        if all(compiled.search(probe) for probe in PROBES):
            return f"= /{pattern}/, which finds any value"
    return None


def _is_value(value: Any) -> bool:
    if isinstance(value, dict):  # a wildcard or regular expression
        return set(value) == {"type", "value"} and (
            value["type"] in ("regex", "formal-regex") and isinstance(value["value"], str)
        )
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _items(rule: ConditionRule, cis: Sequence[CI]) -> list[Item]:
    """(tag, value, wildcard) in CI order, deduplicated; CIs of unmapped classes are left out.
    Under `exact` a name is a literal value; under `prefix` it becomes `name*`."""
    items: dict[Item, None] = {}
    for number, ci in enumerate(cis, start=1):
        _check_name(number, ci, rule.match)
        # A class listed with no tag ([]) is left out, even when there is a default.
        tags = (
            rule.tags[ci.ci_class] if ci.ci_class in rule.tags else rule.tags.get(DEFAULT_CLASS, ())
        )
        value = ci.name.lower() if rule.lowercase_values else ci.name
        wildcard = rule.match == "prefix"
        for tag in tags:
            items[(tag.lower(), literal(value) + "*" if wildcard else value, wildcard)] = None
    return list(items)


def _check_name(number: int, ci: CI, match: str) -> None:
    """A CI name that would silence more than the CI, or that hides what it silences, is
    refused, naming the CI."""
    shown = f"CI {number} ({ci.name!r}{', class ' + ci.ci_class if ci.ci_class else ''})"
    if not ci.name.strip():
        raise InvalidChange("cis", f"{shown} has an empty name")
    hidden = next((char for char in ci.name if unicodedata.category(char) in HIDDEN), None)
    if hidden is not None:
        raise InvalidChange(
            "cis",
            f"{shown} holds the invisible or control character U+{ord(hidden):04X}: no alert "
            "carries such a name, so the plan would silence nothing and hide it",
        )
    if set(ci.name) <= WILDCARDS | {" "}:
        raise InvalidChange("cis", f"{shown} is only wildcard characters: it would match anything")
    if match == "prefix" and WILDCARDS & set(ci.name):
        raise InvalidChange(
            "cis", f"{shown} holds a wildcard character, which `match: prefix` would widen"
        )


def literal(name: str) -> str:
    """A CI name as literal text inside a wildcard value. BigPanda documents only `*` in them;
    every character a regular expression would read as syntax is escaped, so that `.`, `a|.`
    or `\\w` match only themselves whichever way BigPanda reads the rest."""
    return "".join(f"\\{char}" if char in REGEX_SYNTAX else char for char in name)


def _condition(items: Sequence[Item], also: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Exact values as one `IN` per tag and wildcards as `=` regex clauses, OR-ed together;
    fixed clauses AND-ed to them."""
    exact: dict[str, list[str]] = {}
    clauses: list[dict[str, Any]] = []
    for tag, value, wildcard in items:
        if wildcard:
            clauses.append({"=": [tag, {"type": "regex", "value": value}]})
        else:
            exact.setdefault(tag, []).append(value)
    clauses[:0] = [{"IN": [tag, values]} for tag, values in exact.items()]
    cis = clauses[0] if len(clauses) == 1 else {"OR": clauses}
    return {"AND": [cis, *map(dict, also)]} if also else cis


def _chunks(items: Sequence[Item], also: Sequence[Mapping[str, Any]]) -> list[list[Item]]:
    """Greedy split: each chunk as large as fits the limit. A cheap upper bound of each chunk's
    length decides; the exact length is measured only when the bound passes the limit."""
    base = condition_length(_condition([items[0]], also))
    chunks: list[list[Item]] = [[]]
    bound, tags = base, set()
    for item in items:
        step = _item_bound(item, new_tag=item[0] not in tags)
        fits = bound + step <= MAX_CONDITION_CHARS or (
            condition_length(_condition([*chunks[-1], item], also)) <= MAX_CONDITION_CHARS
        )
        if not fits and chunks[-1]:
            chunks.append([])
            bound, tags = base, set()
            step = _item_bound(item, new_tag=True)
        chunks[-1].append(item)
        bound, tags = bound + step, tags | {item[0]}
        if (
            len(chunks[-1]) == 1
            and condition_length(_condition(chunks[-1], also)) > MAX_CONDITION_CHARS
        ):
            raise InvalidChange("condition", f"the CI {item[1]!r} alone exceeds the limit")
    return chunks


def _item_bound(item: Item, new_tag: bool) -> int:
    """At most how many characters one (tag, value) adds to a condition."""
    tag, value, wildcard = item
    quoted = len(json.dumps(value, ensure_ascii=False))
    if wildcard:
        return quoted + len(tag) + 45  # {"=":["tag",{"type":"regex","value":...}]},
    return quoted + 1 + (len(tag) + 20 if new_tag else 0)  # {"IN":["tag",[...]]},

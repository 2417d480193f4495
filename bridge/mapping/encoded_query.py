"""ServiceNow encoded queries (`type=normal^risk<=2^ORpriority=1`) as filters, so that admins
can paste the queries they already write in ServiceNow."""

from __future__ import annotations

import re

from .filters import AllOf, AnyOf, Filter, make_leaf

# A ServiceNow operator -> the YAML operator it means; the rest are handled in _term_node.
QUERY_OPS = {
    "=": "equals", "!=": "not_equals", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte",
    "IN": "in", "NOT IN": "not_in", "LIKE": "contains", "NOT LIKE": "not_contains",
    "STARTSWITH": "starts_with", "ENDSWITH": "ends_with",
}  # fmt: skip
# INSTANCEOF and EMPTYSTRING are listed only to refuse them, not misread them as IN + "STANCE...".
OTHER_OPS = ("ISEMPTY", "ISNOTEMPTY", "ANYTHING", "BETWEEN", "INSTANCEOF", "EMPTYSTRING")
ALL_OPS = sorted([*QUERY_OPS, *OTHER_OPS], key=len, reverse=True)
# The shortest field name, then the longest operator that starts there: "stateNOT IN-2,-1".
TERM = re.compile(rf"([A-Za-z0-9_.]+?)({'|'.join(map(re.escape, ALL_OPS))})(.*)", re.DOTALL)


def parse_encoded_query(text: str) -> Filter:
    """Parse a ServiceNow encoded query such as `type=normal^risk<=2^ORpriority=1`."""
    if not text.strip():
        return AllOf(())
    return _either([_query(query) for query in text.strip().split("^NQ")])


def _query(query: str) -> Filter:
    """`^` is AND; `^OR` joins the term before, binding tighter: a^ORb^c is (a or b) and c."""
    groups: list[list[Filter]] = []
    for index, raw in enumerate(query.split("^")):
        term = raw.strip()
        if term.startswith("ORDERBY") or term == "EQ":  # sort order and end marker: no filter
            continue
        if index > 0 and term.startswith("OR"):
            if not groups:
                raise ValueError(f"encoded query term {term!r} has ^OR but no term before it")
            groups[-1].append(_term(term[2:]))
        else:
            groups.append([_term(term)])
    parts = [_either(group) for group in groups]
    return parts[0] if len(parts) == 1 else AllOf(tuple(parts))


def _either(parts: list[Filter]) -> Filter:
    return parts[0] if len(parts) == 1 else AnyOf(tuple(parts))


def _term(term: str) -> Filter:
    """One `<field><operator><value>` term, as the YAML leaf it means."""
    if not term:
        raise ValueError("encoded query has an empty term (a stray ^ or ^NQ)")
    match = TERM.fullmatch(term)
    if match is None:
        raise ValueError(f"encoded query term {term!r} is not <field><operator><value>")
    try:
        return _term_node(*match.groups())
    except ValueError as exc:
        raise ValueError(f"encoded query term {term!r}: {exc}") from None


def _term_node(field: str, op: str, value: str) -> Filter:
    if value.startswith("javascript:"):
        raise ValueError("javascript: values are computed inside ServiceNow, not here")
    if op in ("INSTANCEOF", "EMPTYSTRING"):
        raise ValueError(f"{op} is not supported")
    if op in ("ISEMPTY", "ISNOTEMPTY", "ANYTHING") and value:
        raise ValueError(f"{op} takes no value")
    if op == "ANYTHING":
        return AllOf(())
    if op == "BETWEEN":
        if value.count("@") != 1:
            raise ValueError("BETWEEN needs two bounds, low@high")
        low, high = value.split("@")
        return AllOf(
            (make_leaf({"field": field, "gte": low}), make_leaf({"field": field, "lte": high}))
        )
    if op in ("ISEMPTY", "ISNOTEMPTY") or (op in ("=", "!=") and not value):
        return make_leaf({"field": field, "exists": op in ("ISNOTEMPTY", "!=")})  # `type=`: empty
    name = QUERY_OPS[op]
    return make_leaf(
        {"field": field, name: value.split(",") if name in ("in", "not_in") else value}
    )

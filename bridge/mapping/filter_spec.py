"""A mapping file's `filter:`: an encoded query, a leaf, or leaves combined with all/any/not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .encoded_query import parse_encoded_query
from .filters import AllOf, AnyOf, Filter, Leaf, make_leaf, show


def compile_filter(spec: Any) -> Filter:
    """Compile a mapping file's filter: an encoded query, {all|any: [...]}, {not: ...} or a leaf."""
    if isinstance(spec, str):
        return parse_encoded_query(spec)
    if not isinstance(spec, Mapping):
        raise ValueError(f"a filter is a mapping or an encoded query, not {show(spec)}")
    combinator = next((key for key in ("all", "any", "not") if key in spec), None)
    if combinator is None:
        return make_leaf(spec)
    if len(spec) > 1:
        others = ", ".join(str(key) for key in spec if key != combinator)
        raise ValueError(f"'{combinator}' must stand alone in its filter, but it has: {others}")
    if combinator == "not":
        return _negate(_nested("not", spec["not"]))
    parts = spec[combinator]
    if not isinstance(parts, list) or not parts:
        raise ValueError(f"'{combinator}' needs a non-empty list of filters, not {show(parts)}")
    nodes = tuple(_nested(f"{combinator}[{index}]", part) for index, part in enumerate(parts))
    return AllOf(nodes) if combinator == "all" else AnyOf(nodes)


def _nested(where: str, spec: Any) -> Filter:
    """A filter inside all/any/not; its errors say where it sits: "any[1]: ..."."""
    try:
        return compile_filter(spec)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _negate(node: Filter) -> Filter:
    """`not` pushed down to the leaves (De Morgan), so every reason names a field's value."""
    if isinstance(node, Leaf):
        return replace(node, negated=not node.negated)
    assert isinstance(node, AllOf | AnyOf)
    parts = tuple(_negate(part) for part in node.parts)
    return AnyOf(parts) if isinstance(node, AllOf) else AllOf(parts)

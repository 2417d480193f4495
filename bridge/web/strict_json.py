"""JSON from strangers: what `json.loads` accepts, less what no honest sender sends.

Refused with a 400 naming the problem: invalid UTF-8, `NaN`/`Infinity`, numbers of more than
50 characters or beyond a float's range (`1e999`), strings over 100,000 characters, lone
surrogates (`"\\ud800"`, which Redis and logs cannot carry), nesting deeper than 32 levels (the
deepest sample payload has 6).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..errors import BadPayload

MAX_DEPTH = 32
MAX_STRING = 100_000
MAX_NUMBER_CHARS = 50
# A \u escape of a surrogate: the only way a lone surrogate gets into decoded JSON text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(body: bytes) -> Any:
    """The body's JSON value, or BadPayload saying what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPayload(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(
            text, parse_constant=_constant, parse_int=_integer, parse_float=_fraction
        )
    except RecursionError:
        raise BadPayload(f"the body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise BadPayload(f"the body is not valid JSON: {exc}") from None
    _check(value, surrogates=_SURROGATE_ESCAPE.search(text) is not None)
    return value


def _constant(name: str) -> float:
    raise BadPayload(f"the body holds {name}, which is not JSON: send a number or null")


def _integer(text: str) -> int:
    _bounded(text)
    return int(text)


def _fraction(text: str) -> float:
    _bounded(text)
    value = float(text)
    if math.isinf(value):  # 1e999: json.loads would read Infinity, which no JSON number is
        raise BadPayload(f"the body holds the number {text}, too large for a float")
    return value


def _bounded(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadPayload(f"the body holds a number of {len(text)} digits; at most 50 are read")


def _check(value: Any, surrogates: bool) -> None:
    """Depth and string sizes, without recursion (the value may be deep)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item, surrogates)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise BadPayload(f"the body is nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict):
            for key in item:
                _check_string(key, surrogates)
        stack.extend((child, depth + 1) for child in children)


def _check_string(text: str, surrogates: bool) -> None:
    if len(text) > MAX_STRING:
        raise BadPayload(f"the body holds a string of {len(text):,} characters; at most 100,000")
    if surrogates and _SURROGATE.search(text):
        raise BadPayload("the body holds invalid Unicode (a lone surrogate escape such as \\ud800)")

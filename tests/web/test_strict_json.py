"""JSON from strangers: what no honest sender sends is a 400 naming the problem."""

from __future__ import annotations

import json

import pytest

from bridge.errors import BadPayload
from bridge.web.strict_json import MAX_DEPTH, loads


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[" * 5000 + b"]" * 5000, "nested deeper than 32 levels"),
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested deeper than 32 levels"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "nested deeper"),
        (b'{"number": NaN}', "holds NaN"),
        (b'{"n": Infinity}', "holds Infinity"),
        (b'{"n": -Infinity}', "holds -Infinity"),
        (b'{"sys_mod_count": ' + b"1" * 401 + b"}", "a number of 401 digits"),
        (b'{"n": 1.' + b"5" * 60 + b"}", "a number of 62 digits"),
        (b'{"n": 1e999}', "the number 1e999, too large"),
        (b'{"n": -2E400}', "the number -2E400, too large"),
        (b'{"number": "CHG\\ud800"}', "invalid Unicode"),
        (b'{"CHG\\udfff": 1}', "invalid Unicode"),
        (b'{"n": "' + b"x" * 100_001 + b'"}', "a string of 100,001 characters"),
        (b'{"n": "\xff"}', "not valid UTF-8"),
        (b'{"n": 1', "not valid JSON"),
    ],
)
def test_what_no_honest_sender_sends_is_refused_naming_it(body, problem):
    with pytest.raises(BadPayload) as caught:
        loads(body)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        {"number": "CHG0030412", "sys_mod_count": 12, "nested": {"a": [1, 2.5, None, True]}},
        {"text": "ü ☃ \U0001f600 CHG", "escaped": "\u00e9"},
        [{"deep": [[[[[[1]]]]]]}],
        {"big": 10**40, "small": -1.5e-300},
    ],
)
def test_honest_json_reads_as_json_loads_reads_it(value):
    body = json.dumps(value).encode()
    assert loads(body) == json.loads(body)


def test_a_pair_of_surrogate_escapes_is_one_valid_character():
    assert loads(b'{"face": "\\ud83d\\ude00"}') == {"face": "\U0001f600"}


def test_exactly_the_depth_limit_is_accepted():
    body = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads(body) is not None

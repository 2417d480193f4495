"""Log lines: JSON for collectors, text for people, fields that cannot forge a line."""

from __future__ import annotations

import json
import logging

import pytest

from bridge import logs
from bridge.errors import ConfigError


def record(message: str, **fields) -> logging.LogRecord:
    made = logging.LogRecord("bridge.test", logging.INFO, __file__, 1, message, None, None)
    made.fields = fields
    return made


def test_a_json_line_holds_each_field_as_a_member():
    line = logs.JsonFormatter().format(record("webhook answered", key="CHG\n1", status=202))
    entry = json.loads(line)
    assert "\n" not in line
    assert (entry["message"], entry["key"], entry["status"], entry["level"]) == (
        "webhook answered",
        "CHG\n1",
        202,
        "INFO",
    )
    assert entry["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("CHG0030412", "CHG0030412"),
        ("CHG 1", '"CHG 1"'),
        ("CHG\n2026-12-01 INFO forged", '"CHG\\n2026-12-01 INFO forged"'),
        ("a\u2028b", '"a\\u2028b"'),
        (12, "12"),
        (None, "null"),
    ],
)
def test_a_text_line_quotes_what_could_forge_a_line(value, shown):
    line = logs.TextFormatter(logs.TEXT_FORMAT).format(record("change created", key=value))
    assert line.endswith(f"change created key={shown}")
    assert "\n" not in line and "\u2028" not in line


def test_json_unless_stderr_is_a_terminal_and_rq_chatter_below_info():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    chatter = logging.LogRecord("rq.worker", logging.INFO, __file__, 1, "cleaning", None, None)
    trouble = logging.LogRecord("rq.worker", logging.WARNING, __file__, 1, "lost", None, None)
    ours = logging.LogRecord("bridge.jobs.tasks", logging.INFO, __file__, 1, "done", None, None)
    try:
        logs.configure("auto", "INFO")  # stderr is a pipe under pytest
        [handler] = root.handlers
        assert isinstance(handler.formatter, logs.JsonFormatter)
        assert [handler.filter(r) for r in (chatter, trouble, ours)] == [False, True, True]
        logs.configure("text", "DEBUG")
        [handler] = root.handlers
        assert isinstance(handler.formatter, logs.TextFormatter)
        assert handler.filter(chatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.mark.parametrize(
    ("environ", "name"),
    [({"LOG_FORMAT": "xml"}, "LOG_FORMAT"), ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL")],
)
def test_a_bad_log_setting_is_named(environ, name):
    with pytest.raises(ConfigError, match=name):
        logs.configure_from_env(environ)

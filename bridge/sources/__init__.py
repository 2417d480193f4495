"""Payload shapes the bridge parses, by the name a mapping file's `parser` gives."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..model import Change
from . import generic, jira, servicenow

Parser = Callable[[Mapping[str, Any]], Change]

PARSERS: dict[str, Parser] = {
    "servicenow": servicenow.parse,
    "jira": jira.parse,
    "generic": generic.parse,
}

"""Templates in mapping files: sandboxed Jinja2 where a missing field is an error naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from ..errors import InvalidChange

# ServiceNow sends an empty field as null: it renders as nothing, not as the word "None".
_ENVIRONMENT = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    finalize=lambda value: "" if value is None else value,
)
_UNDEFINED_NAME = re.compile(r"'(?:[^']*' has no attribute ')?([^']+)' is undefined")


class Template:
    """A compiled template that knows which mapping field it came from."""

    def __init__(self, source: str, used_for: str):
        self.source = source
        self.used_for = used_for
        self._template = _ENVIRONMENT.from_string(source)

    def render(self, fields: Mapping[str, Any]) -> str:
        """Render with the change's fields; a missing field raises InvalidChange naming it."""
        try:
            return self._template.render(fields).strip()
        except UndefinedError as exc:
            match = _UNDEFINED_NAME.search(str(exc))
            field = match.group(1) if match else self.used_for
            raise InvalidChange(
                field, f"is missing (the {self.used_for} template needs it)"
            ) from None


def compile_template(source: str, used_for: str) -> Template:
    """Compile now so a syntax error stops the process at start-up, not at the first webhook."""
    try:
        return Template(source, used_for)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None

"""Templates in mapping files: sandboxed Jinja2 where a missing field is an error naming it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from ..errors import InvalidChange

# ServiceNow sends an empty field as null: it renders as nothing, not as the word "None".
_ENVIRONMENT = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    finalize=lambda value: "" if value is None else value,
)
# Jinja2 says "'x' is undefined" for a name and "'dict object' has no attribute 'y'" for a key.
_UNDEFINED_NAME = re.compile(r"has no attribute '([^']+)'|'([^']+)' is undefined")


class Template:
    """A compiled template; rendering with a missing field raises InvalidChange naming it."""

    def __init__(self, source: str):
        self.source = source
        self._template = _ENVIRONMENT.from_string(source)

    def render(self, fields: Mapping[str, Any], used_for: str = "a") -> str:
        """Render with the change's fields; `used_for` names the template in errors."""
        try:
            return self._template.render(fields).strip()
        except UndefinedError as exc:
            match = _UNDEFINED_NAME.search(str(exc))
            field = (match.group(1) or match.group(2)) if match else used_for
            raise InvalidChange(field, f"is missing (the {used_for} template needs it)") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            # The sandbox refusing an attribute, or a filter applied to the wrong kind of value.
            raise InvalidChange(used_for, f"template failed: {exc}") from None


def compile_template(source: str) -> Template:
    """Compile now so a syntax error stops the process at start-up, not at the first webhook."""
    try:
        return Template(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None

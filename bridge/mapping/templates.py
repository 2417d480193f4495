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


# Text with plain `{{ name }}` placeholders only: rendered without Jinja (it runs on every
# webhook, and Jinja's render costs more than the rest of mapping a change).
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_PLAIN = re.compile(r"(?:[^{}]|\{(?!\{)|\}(?!\}))*")


class Template:
    """A compiled template; rendering with a missing field raises InvalidChange naming it."""

    def __init__(self, source: str):
        self.source = source
        self._template = _ENVIRONMENT.from_string(source)
        self._parts = _plain_parts(source)

    def render(self, fields: Mapping[str, Any], used_for: str = "a") -> str:
        """Render with the change's fields; `used_for` names the template in errors."""
        if self._parts is not None:
            return self._render_plain(self._parts, fields, used_for)
        try:
            return self._template.render(fields).strip()
        except UndefinedError as exc:
            match = _UNDEFINED_NAME.search(str(exc))
            field = (match.group(1) or match.group(2)) if match else used_for
            raise InvalidChange(field, f"is missing (the {used_for} template needs it)") from None
        except (TemplateError, TypeError, ValueError, ArithmeticError) as exc:
            # The sandbox refusing an attribute, or a filter applied to the wrong kind of value.
            raise InvalidChange(used_for, f"template failed: {exc}") from None

    @staticmethod
    def _render_plain(parts: list[str], fields: Mapping[str, Any], used_for: str) -> str:
        """What Jinja would render: names between literal text, None as nothing."""
        out = []
        for index, part in enumerate(parts):
            if index % 2 == 0:
                out.append(part)
            elif part not in fields:
                raise InvalidChange(part, f"is missing (the {used_for} template needs it)")
            elif fields[part] is not None:
                out.append(str(fields[part]))
        return "".join(out).strip()


def _plain_parts(source: str) -> list[str] | None:
    """[text, name, text, name, ..., text] when the template is plain text and `{{ name }}`
    placeholders; None when it uses anything else (filters, attributes, tags, comments)."""
    parts = _PLACEHOLDER.split(source)
    texts = parts[0::2]
    if all(_PLAIN.fullmatch(text) for text in texts) and "{%" not in source and "{#" not in source:
        return parts
    return None


def compile_template(source: str) -> Template:
    """Compile now so a syntax error stops the process at start-up, not at the first webhook."""
    try:
        return Template(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None

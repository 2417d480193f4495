"""Where in a mapping file an error is: paths into the document, their lines, the message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

Where = tuple[str | int, ...]  # ("rules", 2, "plan", "end")


def leaves(messages: Any, path: Where = ()) -> list[tuple[Where, str]]:
    """Every message of marshmallow's nested error dict, with its path."""
    if isinstance(messages, dict):
        # "_schema" holds errors of a whole section: they belong to the section's own path.
        return [
            leaf
            for key, sub in messages.items()
            for leaf in leaves(sub, path if key == "_schema" else (*path, key))
        ]
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [(path, message) for message in messages]
    if isinstance(messages, list):
        return [leaf for index, sub in enumerate(messages) for leaf in leaves(sub, (*path, index))]
    return [(path, str(messages))]


def describe(path: Path, where: Where, message: str, lines: dict, document: dict) -> str:
    """`file:line: rules[2] (closed-early).plan.end: message`."""
    line = next((lines[where[:n]] for n in range(len(where), -1, -1) if where[:n] in lines), None)
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    if len(where) >= 2 and where[0] == "rules" and isinstance(where[1], int):
        rule = (document.get("rules") or [None] * (where[1] + 1))[where[1]]
        if isinstance(rule, dict) and isinstance(rule.get("name"), str):
            text = text.replace(f"rules[{where[1]}]", f"rules[{where[1]}] ({rule['name']})", 1)
    return f"{path}:{line}: {text or 'file'}: {message}" if line else f"{path}: {text}: {message}"


def line_numbers(node: yaml.Node | None, path: Where = ()) -> dict[Where, int]:
    """1-based line of every key and list item in the YAML document, by path."""
    if node is None:
        return {}
    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            lines.update(line_numbers(value, (*path, key.value)))
            lines[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(line_numbers(item, (*path, index)))
    return lines

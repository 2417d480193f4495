"""The shape of the code holds: the pure core (the payload parsers, the mapping rules, the diff
and the per-plan decision, overrun and ownership) imports no web framework, Redis, RQ or HTTP
client, and imports go down the layers of ARCHITECTURE.md."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PURE = (
    "bridge.sources",
    "bridge.sources.servicenow",
    "bridge.sources.jira",
    "bridge.sources.generic",
    "bridge.mapping.loader",
    "bridge.mapping.rules",
    "bridge.mapping.extract",
    "bridge.engine.diff",
    "bridge.engine.decision",
    "bridge.engine.overrun",
    "bridge.engine.ownership",
)
EDGES = ("flask", "redis", "rq", "requests")


def loaded_by(module: str) -> list[str]:
    """The edge libraries in sys.modules after importing `module` alone, in a fresh Python."""
    probe = (
        f"import sys, json, {module}; print(json.dumps([m for m in {EDGES!r} if m in sys.modules]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(done.stdout)


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_imports_no_edge_library(module):
    assert loaded_by(module) == []


def test_the_probe_sees_an_edge_library_when_one_is_imported():
    """The check above can fail: a module of the edges does load them."""
    assert "redis" in loaded_by("bridge.state.store")


# Imports go down these layers, never up (ARCHITECTURE.md); a layer may use its neighbours.
LAYERS = {
    "app": 6, "ops": 6,
    "web": 5, "jobs": 5,
    "engine": 4,
    "bigpanda": 3, "itsm": 3, "state": 3, "remote": 3,
    "mapping": 2, "sources": 2,
    "model": 1, "errors": 1, "config": 1, "logs": 1,
}  # fmt: skip
# No upward tie is left: mapping/ holds the Verifier settings (web/auth.py checks requests against
# them), and the store is told RQ's job key prefix by jobs/queue.store_of.
KNOWN_UPWARD: set[tuple[str, str]] = set()
BRIDGE = Path(__file__).parent.parent / "bridge"


def upward_imports() -> set[tuple[str, str]]:
    """(module file, package it imports) for every import of a higher layer inside bridge/."""
    found = set()
    for path in BRIDGE.rglob("*.py"):
        mine = path.relative_to(BRIDGE)
        layer = LAYERS.get(mine.parts[0].removesuffix(".py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = _imported_package(node, mine)
            if layer and target in LAYERS and LAYERS[target] > layer:
                found.add((mine.as_posix(), target))
    return found


def _imported_package(node: ast.AST, mine: Path) -> str | None:
    """The top package of bridge/ a relative import names, e.g. `..web.auth` -> web."""
    if not isinstance(node, ast.ImportFrom) or not node.level:
        return None
    base = list(mine.parent.parts)[: len(mine.parent.parts) - (node.level - 1)]
    parts = base + (node.module.split(".") if node.module else [])
    if parts:
        return parts[0]
    names = [alias.name for alias in node.names]  # `from . import x` at the top of bridge/
    return names[0] if len(names) == 1 else None


def test_imports_go_down_the_layers():
    assert upward_imports() == KNOWN_UPWARD

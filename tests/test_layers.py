"""The pure core stays pure: the payload parsers, the mapping rules, the diff and the per-plan
decision, overrun and ownership import no web framework, Redis, RQ or HTTP client."""

from __future__ import annotations

import json
import subprocess
import sys

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

"""What a deploy installs: the dependency floors past known vulnerabilities."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# Jinja2 3.1.6 closes the sandbox escapes of CVE-2024-56326 and CVE-2025-27516; gunicorn 23
# closes the request smuggling of CVE-2024-1135 and CVE-2024-6827.
FLOORS = {"jinja2": (3, 1, 6), "gunicorn": (23, 0, 0)}


def numbers(text: str) -> tuple[int, ...]:
    """ "23" -> (23, 0, 0); "3.1.6" -> (3, 1, 6)."""
    parts = [int(part) for part in text.split(".")[:3] if part.isdigit()]
    return tuple(parts + [0] * (3 - len(parts)))


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_the_installed_version_is_past_the_floor(name):
    assert numbers(version(name)) >= FLOORS[name]


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_pyproject_states_the_floor(name):
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [d for d in dependencies if d.lower().startswith(name)]
    floor = spec.split(">=")[1].split(",")[0]
    assert numbers(floor) >= FLOORS[name]

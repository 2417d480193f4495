"""Maintenance bridge: change-management webhooks to BigPanda maintenance plans."""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    """The Flask app factory (see bridge.app); imported on call so `import bridge.x` stays light."""
    from .app import create_app as factory

    return factory(*args, **kwargs)

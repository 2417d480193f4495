"""Maintenance bridge: change-management webhooks to BigPanda maintenance plans."""

from .app import create_app

__all__ = ["create_app"]

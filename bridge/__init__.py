"""Maintenance bridge: change-management webhooks to BigPanda maintenance plans."""

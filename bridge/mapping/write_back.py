"""A mapping file's `write_back:` setting: where notes on the change go (itsm/notes.py
writes them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WriteBack:
    """A mapping file's write-back: which API, where, as whom, how fast."""

    api: str  # "servicenow" (Table API work_notes) or "jira" (issue comment)
    url: str
    auth: str  # "basic" or "bearer"
    secret_env: str
    username: str | None = None
    table: str = "change_request"
    rate_limit: float = 2.0  # requests per second to this instance, all workers together

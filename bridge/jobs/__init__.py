"""Work done off the web path on RQ: the queue, the worker, the job bodies (tasks), the drift
sweep, the overrun pass and failed jobs.

Jobs are stored in Redis by their function's name, `bridge.jobs.reconcile_change` and
`bridge.jobs.write_note` (failed jobs are kept 30 days): those names keep working here."""

from __future__ import annotations

from typing import Any

JOB_FUNCTIONS = ("reconcile_change", "write_note")


def __getattr__(name: str) -> Any:
    """RQ imports `bridge.jobs` and takes the job function by name. The tasks are imported only
    then: the queue, which web and state import, must not pull the engine in with it."""
    if name in JOB_FUNCTIONS:
        from . import tasks

        return getattr(tasks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

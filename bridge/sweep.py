"""Drift repair and housekeeping: every remembered change is reconciled again against BigPanda.

A plan deleted or edited by hand, or a change whose webhook a sender gave up on, is repaired by
the reconcile the sweep asks for (the worker reads each remembered plan and corrects it). Keys
with nothing left to manage expire once BigPanda has forgotten their plans (60 days after end).
The changes visited are those a webhook named or whose plan carries this instance's mark (the
ledger rebuild takes no other): a plan the bridge did not make is never swept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rq import Queue

from .jobs import reconcile_job
from .model import ChangeRef, plans_of
from .store import KeyState, Store

RETENTION_SECONDS = 60 * 24 * 3600  # BigPanda returns a plan for 60 days after its end


@dataclass
class SweepCounts:
    """What one sweep did, for its summary line."""

    keys: int = 0
    enqueued: int = 0
    already_pending: int = 0
    idle: int = 0
    expired: int = 0

    def summary(self) -> str:
        return (
            f"{self.keys} keys: {self.enqueued} reconciles queued, {self.already_pending} "
            f"already pending, {self.idle} with nothing to manage, {self.expired} expired"
        )


def sweep(
    store: Store, queue: Queue, now: float, progress: Callable[[str], None] | None = None
) -> SweepCounts:
    """Queue a reconcile for every change that has or wants a plan; expire the forgotten ones."""
    counts = SweepCounts()
    for change in store.known_changes():
        counts.keys += 1
        _sweep_change(store, queue, change, now, counts)
        if progress:
            progress(change.id)
    return counts


def _sweep_change(
    store: Store, queue: Queue, change: ChangeRef, now: float, counts: SweepCounts
) -> None:
    state = store.state(change)
    if _nothing_to_manage(state, now):
        if (store.last_activity(change) or 0) < now - RETENTION_SECONDS:
            store.forget(change)
            counts.expired += 1
        else:
            counts.idle += 1
        return
    if store.request_reconcile(change, reconcile_job(queue, change)).verdict == "enqueue":
        counts.enqueued += 1
    else:
        counts.already_pending += 1


def _nothing_to_manage(state: KeyState, now: float) -> bool:
    """No plan remembered, no reconcile pending, no plan wanted (or only windows now over).
    A wanted plan that is missing (its create failed for good) is reconciled again."""
    wanted = plans_of(state.desired).values()
    return not state.plans and not state.pending_job and all(p.end <= now for p in wanted)

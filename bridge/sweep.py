"""The drift sweep: one listing of BigPanda's plans compared with the ledger; a reconcile is
queued only for a change that differs (a plan deleted or edited by hand, one that lost its mark,
a wanted plan missing because a sender gave up on a webhook). A sweep of N changes costs
ceil(N/100) list calls plus the repairs, at the shared rate limit. Changes with nothing left to
manage expire once BigPanda has forgotten their plans (60 days after end). The changes visited
are those a webhook named or whose plan carries this instance's mark (the ledger rebuild takes no
other): a plan the bridge did not make is never swept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rq import Queue

from .bigpanda import BigPandaClient
from .drift import Listing, check_change, list_plans
from .ledger import KeyState
from .model import ChangeRef, plans_of
from .queue import enqueue_reconcile, new_job_id
from .store import Store

RETENTION_SECONDS = 60 * 24 * 3600  # BigPanda returns a plan for 60 days after its end


@dataclass
class SweepCounts:
    """What one sweep did, for its summary line."""

    keys: int = 0
    enqueued: int = 0
    already_pending: int = 0
    in_sync: int = 0
    idle: int = 0
    expired: int = 0

    def summary(self) -> str:
        return (
            f"{self.keys} changes: {self.enqueued} repairs queued, {self.already_pending} "
            f"already pending, {self.in_sync} in sync, {self.idle} with nothing to manage, "
            f"{self.expired} expired"
        )


def sweep(
    store: Store,
    queue: Queue,
    clients: Mapping[str | None, BigPandaClient],
    instance: str,
    now: float,
    progress: Callable[[str], None] | None = None,
) -> SweepCounts:
    """List BigPanda once, then queue a reconcile for each change that differs from it."""
    listed = list_plans(clients)
    counts = SweepCounts()
    for change in store.known_changes():
        counts.keys += 1
        _sweep_change(store, queue, change, listed, instance, now, counts)
        if progress:
            progress(change.id)
    return counts


def _sweep_change(
    store: Store,
    queue: Queue,
    change: ChangeRef,
    listed: Listing,
    instance: str,
    now: float,
    counts: SweepCounts,
) -> None:
    state = store.state(change)
    if _nothing_to_manage(state, now):
        if (store.last_activity(change) or 0) < now - RETENTION_SECONDS:
            store.forget(change)
            counts.expired += 1
        else:
            counts.idle += 1
        return
    drift = check_change(change, state, listed, instance, now)
    if not drift.repairs:
        counts.in_sync += 1
        return
    store.observe(change, drift.observed)  # the reconcile acts on what the listing showed
    result = store.request_reconcile(change, new_job_id(change))
    if result.verdict == "enqueue":
        enqueue_reconcile(queue, change, result.job_id)
        counts.enqueued += 1
    else:
        counts.already_pending += 1


def _nothing_to_manage(state: KeyState, now: float) -> bool:
    """No plan remembered, no reconcile pending, no plan wanted (or only windows now over).
    A wanted plan that is missing (its create failed for good) is reconciled again."""
    wanted = plans_of(state.desired).values()
    return not state.plans and not state.pending_job and all(p.end <= now for p in wanted)

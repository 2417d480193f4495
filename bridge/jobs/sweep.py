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

from ..bigpanda.client import BigPandaClient
from ..config import RETENTION_SECONDS
from ..engine.drift import (
    Listing,
    check_change,
    find_orphans,
    list_plans,
)
from ..model import ChangeRef, plans_of
from ..state.ledger import KeyState
from ..state.store import Store
from .queue import request_reconcile


@dataclass
class SweepCounts:
    """What one sweep did, for its summary line."""

    keys: int = 0
    enqueued: int = 0
    already_pending: int = 0
    in_sync: int = 0
    idle: int = 0
    expired: int = 0
    orphans: int = 0  # marked plans the ledger lacks whose change wants none: ended by a repair

    def summary(self) -> str:
        return (
            f"{self.keys} changes: {self.enqueued} repairs queued, {self.already_pending} "
            f"already pending, {self.in_sync} in sync, {self.idle} with nothing to manage, "
            f"{self.expired} expired, {self.orphans} orphaned plans"
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
    remembered_ids: set[str] = set()
    for change in store.known_changes():
        counts.keys += 1
        remembered_ids |= _sweep_change(store, queue, change, listed, instance, now, counts)
        if progress:
            progress(change.id)
    for orphan in find_orphans(store, listed, remembered_ids, instance, now):
        store.take_orphan(orphan.change, orphan.why)
        counts.orphans += 1
        _request(store, queue, orphan.change, counts)
    return counts


def _sweep_change(
    store: Store,
    queue: Queue,
    change: ChangeRef,
    listed: Listing,
    instance: str,
    now: float,
    counts: SweepCounts,
) -> set[str]:
    """Queue the change's repair if it needs one; returns the ids of its remembered plans."""
    state = store.state(change)
    remembered = {plan.id for plan in state.plans.values()}
    if _nothing_to_manage(state, now):
        if (store.last_activity(change) or 0) < now - RETENTION_SECONDS:
            store.forget(change)
            counts.expired += 1
        else:
            counts.idle += 1
        return remembered
    drift = check_change(change, state, listed, instance, now)
    if not drift.repairs:
        counts.in_sync += 1
        return remembered
    store.observe(change, drift.observed)  # the reconcile acts on what the listing showed
    _request(store, queue, change, counts)
    return remembered


def _request(store: Store, queue: Queue, change: ChangeRef, counts: SweepCounts) -> None:
    if request_reconcile(store, queue, change).verdict == "enqueue":
        counts.enqueued += 1
    else:
        counts.already_pending += 1


def _nothing_to_manage(state: KeyState, now: float) -> bool:
    """No plan remembered, no reconcile pending, no plan wanted (or only windows now over).
    A wanted plan that is missing (its create failed for good) is reconciled again."""
    wanted = plans_of(state.desired).values()
    return not state.plans and not state.pending_job and all(p.end <= now for p in wanted)

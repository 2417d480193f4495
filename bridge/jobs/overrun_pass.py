"""The overrun pass: running plans whose change is still being worked on get their end moved
out (overrun.py) before it comes. It makes no BigPanda call itself: each extension is recorded
and a reconcile queued, which sends the one `end` update. Run from the workers' maintenance, by
one worker at a time."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from ..engine.overrun import next_end
from ..model import ChangeRef, DesiredPlan, plans_of
from ..state.store import PREFIX, Store
from .queue import request_reconcile, store_of

# The pass looks at plans ending within this (any rule's `near` is shorter).
HORIZON_SECONDS = 24 * 3600
PASS_LOCK = PREFIX + "overrun-pass"


def extend_overruns(store: Store, queue: Queue, now: float) -> int:
    """Extend every running plan near its end whose change is in an overrun state; returns how
    many were extended."""
    extended = 0
    for change in store.ending_before(now + HORIZON_SECONDS):
        extended += _extend(store, queue, change, now)
    return extended


def _extend(store: Store, queue: Queue, change: ChangeRef, now: float) -> int:
    state = store.state(change)
    following = [plan for plan in plans_of(state.desired).values() if plan.overrun]
    if not following:
        store.follow(change, None)  # moved on (closed, cancelled, another rule)
        return 0
    desired: DesiredPlan = following[0]  # the parts of a split plan share one window
    current = desired.end
    if state.extension and state.extension[0] == desired.end:
        current = state.extension[1]
    end = next_end(desired.end, current, desired.start, now, desired.overrun)  # type: ignore[arg-type]
    if end is None:
        return 0
    store.extend(change, desired.end, end)
    store.record(change, "extended", planned_end=desired.end, end_was=current, end=end)
    request_reconcile(store, queue, change)
    return 1


def run_pass_once(connection: Redis, queue: Queue, now: float, every: int = 30) -> int | None:
    """The pass, unless another worker ran it within `every` seconds (None then)."""
    if not connection.set(PASS_LOCK, "1", nx=True, ex=every):
        return None
    return extend_overruns(store_of(connection), queue, now)

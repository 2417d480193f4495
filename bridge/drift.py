"""Drift: each remembered change compared with one listing of BigPanda's plans (what a sweep
repairs, and what `bridge reconcile --dry-run` prints, without queueing or writing anything)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .bigpanda import BigPandaClient
from .diff import differing_fields, plan_diff
from .ledger import KeyState
from .model import ChangeRef, DesiredPlan, Plan, plans_of
from .ownership import Owner, change_of
from .store import Store


@dataclass(frozen=True)
class Repair:
    """One call a sweep would lead to, and the reason."""

    change: ChangeRef
    plan_key: str
    action: str
    why: str

    def line(self) -> str:
        return f"{self.change}: would {self.action} {self.plan_key}: {self.why}"


@dataclass
class DriftReport:
    """Every repair a sweep would make, and the counts for the summary line."""

    repairs: list[Repair] = field(default_factory=list)
    changes: int = 0
    in_sync: int = 0
    not_ours: int = 0  # remembered plans that no longer carry this instance's mark
    unremembered: int = 0  # live plans with this instance's mark that the ledger does not hold

    def summary(self) -> str:
        drifted = len({repair.change for repair in self.repairs})
        return (
            f"{self.changes} changes: {drifted} would be repaired ({len(self.repairs)} calls), "
            f"{self.in_sync} in sync, {self.not_ours} remembered plans no longer ours, "
            f"{self.unremembered} marked plans not in the ledger"
        )


Listing = Mapping[str | None, Mapping[str, Plan]]  # by target, then by plan id


@dataclass
class ChangeDrift:
    """One change compared with the listing: the calls that would repair it, and what the
    listing showed of its remembered plans (`observed`: plan key -> (id, plan or None: gone))."""

    change: ChangeRef
    repairs: list[Repair] = field(default_factory=list)
    observed: dict[str, tuple[str, Plan | None]] = field(default_factory=dict)
    not_ours: int = 0


def list_plans(clients: Mapping[str | None, BigPandaClient]) -> Listing:
    """Every plan of every organization, by id: one pass over BigPanda's list (100 a page)."""
    return {target: {p.id: p for p in client.list_plans()} for target, client in clients.items()}


def find_drift(
    store: Store,
    clients: Mapping[str | None, BigPandaClient],
    instance: str,
    now: float,
    progress: Callable[[ChangeRef], None] | None = None,
) -> DriftReport:
    """Compare each remembered change with one listing of every organization's plans."""
    listed = list_plans(clients)
    report = DriftReport()
    remembered_ids: set[str] = set()
    for change in store.known_changes():
        report.changes += 1
        state = store.state(change)
        drift = check_change(change, state, listed, instance, now)
        report.repairs += drift.repairs
        report.in_sync += not drift.repairs
        report.not_ours += drift.not_ours
        remembered_ids |= {plan.id for plan in state.plans.values()}
        if progress:
            progress(change)
    report.unremembered = sum(
        1
        for plans in listed.values()
        for plan in plans.values()
        if plan.status != "ended" and plan.id not in remembered_ids and change_of(plan, instance)
    )
    return report


def check_change(
    change: ChangeRef, state: KeyState, listed: Listing, instance: str, now: float
) -> ChangeDrift:
    """What a reconcile would do for the change, given the listing rather than the ledger."""
    drift, owner = ChangeDrift(change), Owner(instance, change.source)
    if state.desired is None:  # rebuilt from a listing, no webhook since: kept as they are
        return drift
    wanted = plans_of(state.desired)
    for plan_key in sorted(set(wanted) | set(state.plans)):
        desired, remembered = wanted.get(plan_key), state.plans.get(plan_key)
        target = desired.target if desired else remembered.target if remembered else None
        actual = listed.get(target, {}).get(remembered.id) if remembered else None
        marked = owner.marked(desired) if desired else None
        why = _reason(marked, remembered is not None, actual, now)
        if remembered:
            drift.observed[plan_key] = (remembered.id, actual)
        if actual is not None and remembered and not (remembered.unmarked or owner.owns(actual)):
            drift.not_ours += 1
            actual, why = None, "the remembered plan no longer carries this bridge's mark"
        calls = plan_diff(marked, actual, now).calls
        drift.repairs += [Repair(change, plan_key, call.action, why) for call in calls]
    return drift


def _reason(desired: DesiredPlan | None, remembered: bool, actual: Plan | None, now: float) -> str:
    if remembered and actual is None:
        return "the remembered plan is gone from BigPanda"
    if desired is None or desired.end <= now:
        return "no plan is wanted any more"
    if actual is None or actual.status == "ended":
        return "the wanted plan is missing"
    return f"BigPanda's plan differs in {', '.join(differing_fields(desired, actual))}"

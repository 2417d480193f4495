"""What a drift sweep would repair, and why, without queueing or writing anything
(`bridge reconcile --dry-run`): one listing of BigPanda's plans, compared with the ledger."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .bigpanda import BigPandaClient
from .model import ChangeRef, DesiredPlan, Plan, plans_of
from .ownership import Owner, change_of
from .reconcile import differing_fields, reconcile
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


def find_drift(
    store: Store,
    clients: Mapping[str | None, BigPandaClient],
    instance: str,
    now: float,
    progress: Callable[[ChangeRef], None] | None = None,
) -> DriftReport:
    """Compare each remembered change with one listing of every organization's plans."""
    listed = {target: {p.id: p for p in client.list_plans()} for target, client in clients.items()}
    report = DriftReport()
    remembered_ids: set[str] = set()
    for change in store.known_changes():
        report.changes += 1
        remembered_ids |= _check_change(store, change, listed, instance, now, report)
        if progress:
            progress(change)
    report.unremembered = sum(
        1
        for plans in listed.values()
        for plan in plans.values()
        if plan.status != "ended" and plan.id not in remembered_ids and change_of(plan, instance)
    )
    return report


def _check_change(
    store: Store,
    change: ChangeRef,
    listed: Mapping[str | None, Mapping[str, Plan]],
    instance: str,
    now: float,
    report: DriftReport,
) -> set[str]:
    """Add the repairs of one change to the report; returns the plan ids it remembers."""
    state, owner = store.state(change), Owner(instance, change.source)
    if state.desired is None:  # rebuilt from a listing, no webhook since: kept as they are
        report.in_sync += 1
        return {plan.id for plan in state.plans.values()}
    wanted = plans_of(state.desired)
    repairs = []
    for plan_key in sorted(set(wanted) | set(state.plans)):
        desired, remembered = wanted.get(plan_key), state.plans.get(plan_key)
        target = desired.target if desired else remembered.target if remembered else None
        actual = listed.get(target, {}).get(remembered.id) if remembered else None
        marked = owner.marked(desired) if desired else None
        why = _reason(marked, remembered is not None, actual, now)
        if actual is not None and remembered and not (remembered.unmarked or owner.owns(actual)):
            report.not_ours += 1
            actual, why = None, "the remembered plan no longer carries this bridge's mark"
        calls = reconcile(marked, actual, now).calls
        repairs += [Repair(change, plan_key, call.action, why) for call in calls]
    report.repairs += repairs
    report.in_sync += not repairs
    return {plan.id for plan in state.plans.values()}


def _reason(desired: DesiredPlan | None, remembered: bool, actual: Plan | None, now: float) -> str:
    if remembered and actual is None:
        return "the remembered plan is gone from BigPanda"
    if desired is None or desired.end <= now:
        return "no plan is wanted any more"
    if actual is None or actual.status == "ended":
        return "the wanted plan is missing"
    return f"BigPanda's plan differs in {', '.join(differing_fields(desired, actual))}"

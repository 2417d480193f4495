"""Drift: each remembered change compared with one listing of BigPanda's plans (what a sweep
repairs, and what `bridge reconcile --dry-run` prints, without queueing or writing anything)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..bigpanda.client import BigPandaClient
from ..config import RETENTION_SECONDS
from ..model import ChangeRef, DesiredPlan, Plan, plans_of
from ..state.ledger import KeyState
from ..state.store import Store
from .decision import decide_plan
from .diff import differing_fields
from .ownership import Owner, our_live_plans


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


@dataclass(frozen=True)
class Orphan:
    """A live plan with this instance's mark that no ledger entry holds, whose change wants no
    plan (or is no longer remembered): a sweep has its change's reconcile find and end it."""

    change: ChangeRef
    plan: Plan
    why: str

    def repair(self) -> Repair:
        action = "stop" if self.plan.status == "running" else "delete"
        key = self.plan.maintenance_key or self.change.key
        return Repair(self.change, key, action, f"plan {self.plan.id}: {self.why}")


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
    report.unremembered = len(unremembered_plans(listed, remembered_ids, instance))
    orphans = find_orphans(store, listed, remembered_ids, instance, now)
    report.repairs += [orphan.repair() for orphan in orphans]
    return report


def unremembered_plans(
    listed: Listing, remembered_ids: set[str], instance: str
) -> list[tuple[ChangeRef, Plan]]:
    """Live plans with this instance's mark whose ids the ledger does not hold, by change."""
    plans = {target: found.values() for target, found in listed.items()}
    return [
        (change, plan)
        for change, _, plan in our_live_plans(plans, instance)
        if plan.id not in remembered_ids
    ]


def find_orphans(
    store: Store, listed: Listing, remembered_ids: set[str], instance: str, now: float
) -> list[Orphan]:
    """The unremembered marked plans whose change wants none of them: no longer remembered,
    forgotten over the retention period ago, or remembered wanting no such plan. A plan a
    reconcile is about to find (a create of unknown outcome, a forget since) is left to it; and
    none while the ledger marker is missing, as every plan looks unremembered until its rebuild."""
    if not store.ledger_intact():
        return []
    orphans = []
    for change, plan in unremembered_plans(listed, remembered_ids, instance):
        why = _orphaned(store.state(change), store.forgotten_at(change), plan, now)
        if why:
            orphans.append(Orphan(change, plan, why))
    return orphans


def _orphaned(state: KeyState, forgotten_at: int | None, plan: Plan, now: float) -> str | None:
    if forgotten_at is not None:
        if forgotten_at < now - RETENTION_SECONDS:
            return "its change was forgotten over the retention period ago"
        return None  # the change's next webhook finds it
    if state.pending_job or state.create_uncertain:
        return None  # its change's reconcile looks for it anyway
    if state.desired is None and state.version is None:
        return "its change is no longer remembered"
    wanted = plans_of(state.desired).get(plan.maintenance_key or "")
    if wanted is None or wanted.end <= now:
        return "its change wants no such plan"
    return None


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
        if remembered:
            drift.observed[plan_key] = (remembered.id, actual)
        why = None
        if actual is not None and remembered and not (remembered.unmarked or owner.owns(actual)):
            drift.not_ours += 1
            actual, why = None, "the remembered plan no longer carries this bridge's mark"
        decision = decide_plan(desired, state.extension, owner, actual, now)
        why = why or _reason(decision.wanted, remembered is not None, actual, now)
        drift.repairs += [
            Repair(change, plan_key, call.action, why) for call in decision.diff.calls
        ]
    return drift


def _reason(desired: DesiredPlan | None, remembered: bool, actual: Plan | None, now: float) -> str:
    if remembered and actual is None:
        return "the remembered plan is gone from BigPanda"
    if desired is None or desired.end <= now:
        return "no plan is wanted any more"
    if actual is None or actual.status == "ended":
        return "the wanted plan is missing"
    return f"BigPanda's plan differs in {', '.join(differing_fields(desired, actual))}"

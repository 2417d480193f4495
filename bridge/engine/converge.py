"""Carry out a reconcile of one change: decide (decision.py) from what the bridge last wrote,
call BigPanda, remember what it wrote.

Minimum calls: the ledger keeps each plan as the bridge last wrote it, so a reconcile decides
without reading (the status follows from the window and the clock). Only a write BigPanda refuses
because the plan is not as remembered (404: gone; another 4xx: running or ended meanwhile) reads
the plan and decides again. Writes go only to plans the bridge made or adopted (ownership.py): a
plan read or listed without this instance's and source's mark is left alone and forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from ..bigpanda.client import BigPandaClient, plan_from_api
from ..errors import PermanentError
from ..itsm.notes import note_of
from ..model import ChangeRef, DesiredPlan, Plan, body_of, plans_of
from ..state.ledger import KeyState, RememberedPlan
from ..state.store import Store
from .decision import decide_plan
from .diff import Call
from .overrun import extended
from .ownership import Owner, our_live_plans
from .plan_lookup import PlanLookup

log = logging.getLogger(__name__)

# The desired plan is read again after the calls: an event may have arrived meanwhile.
MAX_PASSES = 5


class PlanVanished(Exception):
    """BigPanda no longer has a plan the bridge remembered: decide again without it."""


class PlanChanged(Exception):
    """BigPanda refused a write because the plan is not as remembered: decide again from it."""

    def __init__(self, plan_key: str, plan: Plan):
        self.plan_key, self.plan = plan_key, plan


@dataclass
class ChangeConverger:
    """One change's reconcile, run by the job that holds the change's lock."""

    store: Store
    clients: Mapping[str | None, BigPandaClient]
    change: ChangeRef
    fence: Callable[[], None]  # renews the lock before each write; raises if it was lost
    instance: str = "default"
    dry_run: bool = False  # read as usual, write nothing: record the calls that would be made
    adopt_unmarked: bool = False  # the source's mapping file allows taking over unmarked plans
    observed: dict[str, Plan] = field(default_factory=dict)  # plans read after a refused write
    notify: Callable[[str, dict[str, object]], None] = lambda event, details: None  # write-back

    @property
    def owner(self) -> Owner:
        return Owner(self.instance, self.change.source)

    def converge(self) -> str:
        """Reconcile until the desired plan read before the calls is still the newest one."""
        if not self.store.ledger_intact():
            # Redis lost the key -> id memory: rebuild it from one full listing before any create.
            listing = {target: client.list_plans() for target, client in self.clients.items()}
            found = self.store.rebuild_ledger(our_live_plans(listing, self.instance))
            log.info("rebuilt the plan ledger: %d live plans of instance %s", found, self.instance)
        lookup = PlanLookup(self.store, self.clients, self.change, self.owner, self.adopt_unmarked)
        swept = lookup.swept(self.store.state(self.change))
        outcomes: list[str] = []
        for _ in range(MAX_PASSES):
            state = self.store.state(self.change)
            if state.desired is None:
                # Plans found by a ledger rebuild, with no webhook since the memory was lost: what
                # the change wants is unknown, so its plans are kept until its next webhook.
                return "desired plan unknown since the ledger rebuild: plans kept as they are"
            listed = {**swept, **lookup.look_up(state)}
            swept = {}
            state = self.store.state(self.change) if listed else state
            try:
                outcomes = self._pass(state, {**listed, **self.observed})
            except PlanVanished:
                continue
            except PlanChanged as changed:
                self.observed[changed.plan_key] = changed.plan
                continue
            if self.store.state(self.change).desired == state.desired:
                break
        self._index_overrun(self.store.state(self.change))
        return "; ".join(outcomes) or "nothing to do"

    def _index_overrun(self, state: KeyState) -> None:
        """Let the overrun pass (jobs/overrun_pass.py) find the change while it may overrun."""
        following = [extended(p, state.extension) for p in plans_of(state.desired).values()]
        ends = [plan.end for plan in following if plan and plan.overrun]
        self.store.follow(self.change, max(ends) if ends else None)

    def _pass(self, state: KeyState, listed: Mapping[str, Plan]) -> list[str]:
        wanted = plans_of(state.desired)
        return [
            self._plan(plan_key, wanted.get(plan_key), state, listed)
            for plan_key in sorted(set(wanted) | set(state.plans))
        ]

    def _plan(
        self,
        plan_key: str,
        desired: DesiredPlan | None,
        state: KeyState,
        listed: Mapping[str, Plan],
    ) -> str:
        remembered = state.plans.get(plan_key)
        target = desired.target if desired else remembered.target if remembered else None
        client = self.clients[target]
        actual = self._actual(client, plan_key, remembered, listed)
        if actual is not None and not self._ours(actual, remembered):
            self._disown(plan_key, actual)
            actual = None
        decision = decide_plan(desired, state.extension, self.owner, actual, time.time())
        moved = "extended" if decision.overrunning else "moved"  # what an end update means
        result = decision.diff
        if result.warning:
            self.store.record(self.change, "warning", plan_key=plan_key, message=result.warning)
        for call in result.calls:
            if self.dry_run:
                self._would(plan_key, call)
                continue
            self.fence()
            self._call(client, plan_key, target, call, remembered)
            if note := note_of(call.action, call.body, actual, moved):
                self.notify(*note)
        if not result.calls:
            plan_id = actual.id if actual else None
            self.store.record(self.change, "in_sync", plan_key=plan_key, plan_id=plan_id)
            return f"{plan_key}: in sync"
        prefix = "would " if self.dry_run else ""
        return f"{plan_key}: {prefix}{', '.join(call.action for call in result.calls)}"

    def _actual(
        self,
        client: BigPandaClient,
        plan_key: str,
        remembered: RememberedPlan | None,
        listed: Mapping[str, Plan],
    ) -> Plan | None:
        """The plan as listed or read, else as the bridge last wrote it (no call), else read."""
        if plan_key in listed:
            return listed[plan_key]
        if remembered is None:
            return None
        if remembered.written is not None:
            return plan_from_api({**remembered.written, "id": remembered.id}, time.time())
        return self._read(client, plan_key, remembered.id)

    def _ours(self, plan: Plan, remembered: RememberedPlan | None) -> bool:
        """Marked by this instance for this source, or adopted (and remembered) by its id."""
        adopted = remembered is not None and remembered.unmarked and remembered.id == plan.id
        return adopted or self.owner.owns(plan)

    def _disown(self, plan_key: str, plan: Plan) -> None:
        """A plan that lost our mark (edited by hand, or a key of someone else's): never written
        to; the bridge forgets it and manages the change as if it had none."""
        self.store.remember_plan(self.change, plan_key, None)
        self.store.record(self.change, "not_ours", plan_key=plan_key, plan_id=plan.id)
        log.warning("%s: plan %s carries no mark of %s: left alone", self.change, plan.id,
                    self.owner.mark)  # fmt: skip

    def _would(self, plan_key: str, call: Call) -> None:
        """Dry run: the call is recorded in the history and the log, not made."""
        details = {"plan_key": plan_key, "plan_id": call.plan_id}
        if call.body:
            details["fields"] = sorted(call.body)
        self.store.record(self.change, f"would_{call.action}", **details)

    def _read(self, client: BigPandaClient, plan_key: str, plan_id: str) -> Plan | None:
        """The plan as BigPanda holds it now; forgotten when BigPanda lost it."""
        plan = client.get(plan_id)
        if plan is None:
            self._forget(plan_key, plan_id)
        return plan

    def _forget(self, plan_key: str, plan_id: str) -> None:
        self.store.remember_plan(self.change, plan_key, None)
        self.store.record(self.change, "vanished", plan_key=plan_key, plan_id=plan_id)

    def _call(
        self,
        client: BigPandaClient,
        plan_key: str,
        target: str | None,
        call: Call,
        remembered: RememberedPlan | None,
    ) -> None:
        if call.action == "create":
            self._create(client, plan_key, target, call)
        elif call.action == "update":
            self._update(client, plan_key, call, remembered)
        else:
            self._remove(client, plan_key, call)

    def _create(
        self, client: BigPandaClient, plan_key: str, target: str | None, call: Call
    ) -> None:
        # From here until the id is stored, a crash or timeout means "list, then recover".
        self.store.set_create_uncertain(self.change, True)
        try:
            plan = client.create(dict(call.body))
        except PermanentError:
            self.store.set_create_uncertain(self.change, False)  # refused: certainly not created
            raise
        remembered = RememberedPlan(plan.id, target, written=dict(call.body))
        self.store.remember_plan(self.change, plan_key, remembered)
        self.store.set_create_uncertain(self.change, False)
        self.observed.pop(plan_key, None)
        self.store.record(self.change, "created", plan_key=plan_key, plan_id=plan.id,
                          start=call.body["start"], end=call.body["end"])  # fmt: skip

    def _update(
        self,
        client: BigPandaClient,
        plan_key: str,
        call: Call,
        remembered: RememberedPlan | None,
    ) -> None:
        assert call.plan_id is not None
        try:
            client.update(call.plan_id, dict(call.body))
        except PermanentError as exc:
            self._refused(client, plan_key, call.plan_id, exc)
        before = self._written(plan_key, call.plan_id, remembered)
        written = {**before, **call.body}
        self.store.remember_plan(
            self.change,
            plan_key,
            replace(remembered, written=written)
            if remembered  # else a plan listed or read this pass, not yet in the ledger
            else RememberedPlan(call.plan_id, written=written),
        )
        self.observed.pop(plan_key, None)
        fields = sorted(call.body)
        self.store.record(
            self.change, "updated", plan_key=plan_key, plan_id=call.plan_id, fields=fields
        )

    def _written(
        self, plan_key: str, plan_id: str, remembered: RememberedPlan | None
    ) -> dict[str, object]:
        """What the plan held before this write: as observed after a refusal, else remembered."""
        if plan_key in self.observed:
            return body_of(self.observed[plan_key])
        return dict(remembered.written or {}) if remembered else {}

    def _refused(
        self, client: BigPandaClient, plan_key: str, plan_id: str, exc: PermanentError
    ) -> None:
        """A refused write: 404, the plan is gone (create it again); another 4xx, read it and
        decide again, once: a plan read just now that still refuses is a real failure."""
        if exc.http_status == 404:
            self._forget(plan_key, plan_id)
            raise PlanVanished from None
        if plan_key in self.observed:
            raise exc
        plan = self._read(client, plan_key, plan_id)
        if plan is None:
            raise PlanVanished from None
        raise PlanChanged(plan_key, plan) from None

    def _remove(self, client: BigPandaClient, plan_key: str, call: Call) -> None:
        assert call.plan_id is not None
        try:
            if call.action == "stop":
                client.stop(call.plan_id)
            else:
                client.delete(call.plan_id)  # a plan already gone counts as deleted
        except PermanentError as exc:
            # SPEC: a 4xx on stop (or delete) means "read the plan again": it may have ended, or
            # be planned or running where the ledger says otherwise.
            plan = client.get(call.plan_id) if exc.http_status != 404 else None
            if plan is not None and plan.status != "ended":
                if plan_key in self.observed:
                    raise  # read once already, and still refused: a real failure
                raise PlanChanged(plan_key, plan) from None
        self.store.remember_plan(self.change, plan_key, None)
        self.observed.pop(plan_key, None)
        event = "stopped" if call.action == "stop" else "deleted"
        self.store.record(self.change, event, plan_key=plan_key, plan_id=call.plan_id)

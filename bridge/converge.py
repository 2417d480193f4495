"""Carry out a reconcile of one change: read BigPanda, decide (reconcile.py), call, remember.

Writes go only to plans the bridge owns (ownership.py): a remembered plan that no longer carries
this instance's and source's mark, and was not adopted, is left alone and forgotten.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from .bigpanda import BigPandaClient
from .errors import PermanentError
from .model import ChangeRef, DesiredPlan, Plan, change_key_of, plans_of
from .ownership import Owner, is_unmarked
from .reconcile import Call, reconcile
from .store import KeyState, RememberedPlan, Store

log = logging.getLogger(__name__)

# The desired plan is read again after the calls: an event may have arrived meanwhile.
MAX_PASSES = 5


class PlanVanished(Exception):
    """BigPanda no longer has a plan the bridge remembered: decide again without it."""


@dataclass
class KeyReconciler:
    """One change's reconcile, run by the job that holds the change's lock."""

    store: Store
    clients: Mapping[str | None, BigPandaClient]
    change: ChangeRef
    fence: Callable[[], None]  # renews the lock before each write; raises if it was lost
    instance: str = "default"
    dry_run: bool = False  # read as usual, write nothing: record the calls that would be made
    adopt_unmarked: bool = False  # the source's mapping file allows taking over unmarked plans

    @property
    def owner(self) -> Owner:
        return Owner(self.instance, self.change.source)

    @property
    def key(self) -> str:
        return self.change.key

    def converge(self) -> str:
        """Reconcile until the desired plan read before the calls is still the newest one."""
        if not self.store.ledger_intact():
            # Redis lost the key -> id memory: rebuild it from one full listing before any create.
            listings = {name: client.list_plans() for name, client in self.clients.items()}
            found = self.store.rebuild_ledger(listings, self.instance)
            log.info("rebuilt the plan ledger: %d live plans of instance %s", found, self.instance)
        outcomes: list[str] = []
        for _ in range(MAX_PASSES):
            state = self.store.state(self.change)
            if state.desired is None:
                # Plans found by a ledger rebuild, with no webhook since the memory was lost: what
                # the change wants is unknown, so its plans are kept until its next webhook.
                return "desired plan unknown since the ledger rebuild: plans kept as they are"
            listed = self._look_up(state)
            state = self.store.state(self.change) if listed else state
            wanted = plans_of(state.desired)
            try:
                outcomes = [
                    self._plan(plan_key, wanted.get(plan_key), state, listed)
                    for plan_key in sorted(set(wanted) | set(state.plans))
                ]
            except PlanVanished:
                continue
            if self.store.state(self.change).desired == state.desired:
                break
        return "; ".join(outcomes) or "nothing to do"

    def _look_up(self, state: KeyState) -> dict[str, Plan]:
        """List BigPanda's plans when the memory may be short of one: after a create of unknown
        outcome, and (when the mapping allows adoption) once for a change a webhook named."""
        if state.create_uncertain:
            return self._recover_create(state)
        wants_adoption = self.adopt_unmarked and state.version is not None
        if wants_adoption and not state.adoption_checked and self.key not in state.plans:
            return self._adopt_unmarked(state)
        return {}

    def _listing(self, state: KeyState) -> Iterator[tuple[str | None, Plan]]:
        """The live plans of the organizations this change's plans live in, with their target."""
        targets = {plan.target for plan in plans_of(state.desired).values()} or {None}
        for target in sorted(targets, key=str):
            for plan in self.clients[target].list_plans():
                if plan.status != "ended":
                    yield target, plan

    def _recover_create(self, state: KeyState) -> dict[str, Plan]:
        """After a create of unknown outcome, take the plans of this change that carry our mark;
        returns them by plan key, as read, so that they need not be read again."""
        recovered: dict[str, Plan] = {}
        for target, plan in self._listing(state):
            plan_key = plan.maintenance_key or ""
            mine = change_key_of(plan_key) == self.key and self.owner.owns(plan)
            if mine and plan_key not in state.plans:
                self.store.remember_plan(self.change, plan_key, RememberedPlan(plan.id, target))
                self.store.record(self.change, "recovered", plan_key=plan_key, plan_id=plan.id)
                recovered[plan_key] = plan
        self.store.set_create_uncertain(self.change, False)
        return recovered

    def _adopt_unmarked(self, state: KeyState) -> dict[str, Plan]:
        """Take over the one live unmarked plan whose maintenance_key is this change's (opt-in,
        for a migration from another integration). Marked when a later update carries the mark;
        a running plan cannot take it, so it stays ours by its remembered id."""
        found = [
            (target, plan)
            for target, plan in self._listing(state)
            if plan.maintenance_key == self.key and is_unmarked(plan)
        ]
        self.store.set_adoption_checked(self.change)
        if len(found) > 1:
            ids = [plan.id for _, plan in found]
            message = f"{len(found)} unmarked plans carry this key ({', '.join(ids)}): none adopted"
            self.store.record(self.change, "warning", plan_key=self.key, message=message)
            return {}
        if not found:
            return {}
        [(target, plan)] = found
        remembered = RememberedPlan(plan.id, target, unmarked=True)
        self.store.remember_plan(self.change, self.key, remembered)
        self.store.record(
            self.change, "adopted", plan_key=self.key, plan_id=plan.id, status=plan.status
        )
        log.info("%s: adopted the unmarked plan %s (%s)", self.change, plan.id, plan.status)
        return {self.key: plan}

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
        actual = listed.get(plan_key)
        if actual is None and remembered is not None:
            actual = self._read(client, plan_key, remembered.id)
        if actual is not None and not self._ours(actual, remembered):
            self._disown(plan_key, actual)
            actual = None
        marked = self.owner.marked(desired) if desired else None
        result = reconcile(marked, actual, time.time())
        if result.warning:
            self.store.record(self.change, "warning", plan_key=plan_key, message=result.warning)
        for call in result.calls:
            if self.dry_run:
                self._would(plan_key, call)
                continue
            self.fence()
            self._call(client, plan_key, target, call)
        if not result.calls:
            plan_id = actual.id if actual else None
            self.store.record(self.change, "in_sync", plan_key=plan_key, plan_id=plan_id)
            return f"{plan_key}: in sync"
        prefix = "would " if self.dry_run else ""
        return f"{plan_key}: {prefix}{', '.join(call.action for call in result.calls)}"

    def _ours(self, plan: Plan, remembered: RememberedPlan | None) -> bool:
        """Marked by this instance for this source, or adopted (and remembered) by its id."""
        adopted = remembered is not None and remembered.unmarked and remembered.id == plan.id
        return adopted or self.owner.owns(plan)

    def _disown(self, plan_key: str, plan: Plan) -> None:
        """A remembered plan that lost our mark (edited by hand, or a key of someone else's):
        never written to; the bridge forgets it and manages the change as if it had none."""
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
        log.info("%s: dry run: would %s %s %s", self.change, call.action, plan_key,
                 ", ".join(sorted(call.body)))  # fmt: skip

    def _read(self, client: BigPandaClient, plan_key: str, plan_id: str) -> Plan | None:
        """The remembered plan as BigPanda holds it now; forgotten when BigPanda lost it."""
        plan = client.get(plan_id)
        if plan is None:
            self._forget(plan_key, plan_id)
        return plan

    def _forget(self, plan_key: str, plan_id: str) -> None:
        self.store.remember_plan(self.change, plan_key, None)
        self.store.record(self.change, "vanished", plan_key=plan_key, plan_id=plan_id)

    def _call(self, client: BigPandaClient, plan_key: str, target: str | None, call: Call) -> None:
        if call.action == "create":
            self._create(client, plan_key, target, call)
        elif call.action == "update":
            self._update(client, plan_key, call)
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
        self.store.remember_plan(self.change, plan_key, RememberedPlan(plan.id, target))
        self.store.set_create_uncertain(self.change, False)
        self.store.record(self.change, "created", plan_key=plan_key, plan_id=plan.id,
                          start=call.body["start"], end=call.body["end"])  # fmt: skip

    def _update(self, client: BigPandaClient, plan_key: str, call: Call) -> None:
        assert call.plan_id is not None
        try:
            client.update(call.plan_id, dict(call.body))
        except PermanentError as exc:
            if exc.http_status != 404:
                raise
            self._forget(plan_key, call.plan_id)  # deleted meanwhile: create it again
            raise PlanVanished from None
        fields = sorted(call.body)
        self.store.record(
            self.change, "updated", plan_key=plan_key, plan_id=call.plan_id, fields=fields
        )

    def _remove(self, client: BigPandaClient, plan_key: str, call: Call) -> None:
        assert call.plan_id is not None
        if call.action == "stop":
            self._stop(client, call.plan_id)
        else:
            client.delete(call.plan_id)  # a plan already gone counts as deleted
        self.store.remember_plan(self.change, plan_key, None)
        event = "stopped" if call.action == "stop" else "deleted"
        self.store.record(self.change, event, plan_key=plan_key, plan_id=call.plan_id)

    @staticmethod
    def _stop(client: BigPandaClient, plan_id: str) -> None:
        """A 4xx on stop means "read the plan again": it may have ended already (SPEC)."""
        try:
            client.stop(plan_id)
        except PermanentError:
            plan = client.get(plan_id)
            if plan is not None and plan.status == "running":
                raise

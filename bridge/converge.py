"""Carry out a reconcile of one key: read BigPanda, decide (reconcile.py), call, remember."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .bigpanda import BigPandaClient
from .errors import PermanentError
from .model import DesiredPlan, Plan, change_key_of, plans_of
from .reconcile import Call, reconcile
from .store import KeyState, Store

log = logging.getLogger(__name__)

# The desired plan is read again after the calls: an event may have arrived meanwhile.
MAX_PASSES = 5


class PlanVanished(Exception):
    """BigPanda no longer has a plan the bridge remembered: decide again without it."""


@dataclass
class KeyReconciler:
    """One key's reconcile, run by the job that holds the key's lock."""

    store: Store
    clients: Mapping[str | None, BigPandaClient]
    key: str
    fence: Callable[[], None]  # renews the lock before each write; raises if it was lost

    def converge(self) -> str:
        """Reconcile until the desired plan read before the calls is still the newest one."""
        if not self.store.ledger_intact():
            # Redis lost the key -> id memory: rebuild it from one full listing before any create.
            listings = {name: client.list_plans() for name, client in self.clients.items()}
            log.info("rebuilt the plan ledger: %d live plans", self.store.rebuild_ledger(listings))
        outcomes: list[str] = []
        for _ in range(MAX_PASSES):
            state = self.store.state(self.key)
            listed = self._adopt(state) if state.create_uncertain else {}
            state = self.store.state(self.key) if listed else state
            wanted = plans_of(state.desired)
            try:
                outcomes = [
                    self._plan(plan_key, wanted.get(plan_key), state, listed)
                    for plan_key in sorted(set(wanted) | set(state.plans))
                ]
            except PlanVanished:
                continue
            if self.store.state(self.key).desired == state.desired:
                break
        return "; ".join(outcomes) or "nothing to do"

    def _adopt(self, state: KeyState) -> dict[str, Plan]:
        """After a create of unknown outcome, take the plans BigPanda lists under this change;
        returns them by plan key, as read, so that they need not be read again."""
        adopted: dict[str, Plan] = {}
        targets = {plan.target for plan in plans_of(state.desired).values()} or {None}
        for target in targets:
            for plan in self.clients[target].list_plans():
                plan_key = plan.maintenance_key or ""
                ours = change_key_of(plan_key) == self.key and plan.status != "ended"
                if ours and plan_key not in state.plans:
                    self.store.remember_plan(self.key, plan_key, plan.id, target)
                    self.store.record(self.key, "adopted", plan_key=plan_key, plan_id=plan.id)
                    adopted[plan_key] = plan
        self.store.set_create_uncertain(self.key, False)
        return adopted

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
        result = reconcile(desired, actual, time.time())
        if result.warning:
            self.store.record(self.key, "warning", plan_key=plan_key, message=result.warning)
        for call in result.calls:
            self.fence()
            self._call(client, plan_key, target, call)
        if not result.calls:
            plan_id = actual.id if actual else None
            self.store.record(self.key, "in_sync", plan_key=plan_key, plan_id=plan_id)
            return f"{plan_key}: in sync"
        return f"{plan_key}: {', '.join(call.action for call in result.calls)}"

    def _read(self, client: BigPandaClient, plan_key: str, plan_id: str) -> Plan | None:
        """The remembered plan as BigPanda holds it now; forgotten when BigPanda lost it."""
        plan = client.get(plan_id)
        if plan is None:
            self._forget(plan_key, plan_id)
        return plan

    def _forget(self, plan_key: str, plan_id: str) -> None:
        self.store.remember_plan(self.key, plan_key, None)
        self.store.record(self.key, "vanished", plan_key=plan_key, plan_id=plan_id)

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
        # From here until the id is stored, a crash or timeout means "list, then adopt".
        self.store.set_create_uncertain(self.key, True)
        try:
            plan = client.create(dict(call.body))
        except PermanentError:
            self.store.set_create_uncertain(self.key, False)  # refused: certainly not created
            raise
        self.store.remember_plan(self.key, plan_key, plan.id, target)
        self.store.set_create_uncertain(self.key, False)
        self.store.record(self.key, "created", plan_key=plan_key, plan_id=plan.id,
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
            self.key, "updated", plan_key=plan_key, plan_id=call.plan_id, fields=fields
        )

    def _remove(self, client: BigPandaClient, plan_key: str, call: Call) -> None:
        assert call.plan_id is not None
        if call.action == "stop":
            self._stop(client, call.plan_id)
        else:
            client.delete(call.plan_id)  # a plan already gone counts as deleted
        self.store.remember_plan(self.key, plan_key, None)
        event = "stopped" if call.action == "stop" else "deleted"
        self.store.record(self.key, event, plan_key=plan_key, plan_id=call.plan_id)

    @staticmethod
    def _stop(client: BigPandaClient, plan_id: str) -> None:
        """A 4xx on stop means "read the plan again": it may have ended already (SPEC)."""
        try:
            client.stop(plan_id)
        except PermanentError:
            plan = client.get(plan_id)
            if plan is not None and plan.status == "running":
                raise

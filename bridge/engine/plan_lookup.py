"""What a reconcile learns of a change's plans besides its ledger: what the drift sweep's listing
showed, and the two times it lists BigPanda's plans itself: after a create of unknown outcome (to
find the plan it may have made), and once, when its mapping allows adoption, for a change a
webhook named (to take over the unmarked plan of its key)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from ..bigpanda.client import BigPandaClient, plan_from_api
from ..model import ChangeRef, Plan, body_of, change_key_of, plans_of
from ..state.ledger import KeyState, RememberedPlan
from ..state.store import Store
from .ownership import Owner, is_unmarked

log = logging.getLogger(__name__)


@dataclass
class PlanLookup:
    """Listings on behalf of one change's reconcile (which holds the change's lock)."""

    store: Store
    clients: Mapping[str | None, BigPandaClient]
    change: ChangeRef
    owner: Owner
    adopt_unmarked: bool = False

    def look_up(self, state: KeyState) -> dict[str, Plan]:
        """The plans found, by plan key, as listed (so that they need not be read again)."""
        if state.create_uncertain:
            return self._recover_create(state)
        key = self.change.key
        wants_adoption = self.adopt_unmarked and state.version is not None
        if wants_adoption and not state.adoption_checked and key not in state.plans:
            return self._adopt_unmarked(state)
        return {}

    def swept(self, state: KeyState) -> dict[str, Plan]:
        """What the drift sweep's listing showed of the change's plans (plan key -> plan), for
        the plans the ledger still holds under the same id; a plan it found gone is forgotten."""
        seen: dict[str, Plan] = {}
        for plan_key, (plan_id, body) in self.store.take_observed(self.change).items():
            remembered = state.plans.get(plan_key)
            if remembered is None or remembered.id != plan_id:
                continue  # the ledger moved on since the listing: it knows better
            if body is None:
                self.store.remember_plan(self.change, plan_key, None)
                self.store.record(self.change, "vanished", plan_key=plan_key, plan_id=plan_id)
            else:
                seen[plan_key] = plan_from_api({**body, "id": plan_id}, time.time())
        return seen

    def _listing(self, state: KeyState) -> Iterator[tuple[str | None, Plan]]:
        """The live plans of the organizations this change's plans live in, with their target."""
        targets = {plan.target for plan in plans_of(state.desired).values()} or {None}
        for target in sorted(targets, key=str):
            for plan in self.clients[target].list_plans():
                if plan.status != "ended":
                    yield target, plan

    def _recover_create(self, state: KeyState) -> dict[str, Plan]:
        """Take the plans of this change that carry our mark and that the ledger lacks."""
        recovered: dict[str, Plan] = {}
        for target, plan in self._listing(state):
            plan_key = plan.maintenance_key or ""
            mine = change_key_of(plan_key) == self.change.key and self.owner.owns(plan)
            if mine and plan_key not in state.plans:
                remembered = RememberedPlan(plan.id, target, written=body_of(plan))
                self.store.remember_plan(self.change, plan_key, remembered)
                self.store.record(self.change, "recovered", plan_key=plan_key, plan_id=plan.id)
                recovered[plan_key] = plan
        self.store.set_create_uncertain(self.change, False)
        return recovered

    def _adopt_unmarked(self, state: KeyState) -> dict[str, Plan]:
        """Take over the one live unmarked plan whose maintenance_key is this change's. Marked
        when a later update carries the mark; a running plan cannot take it, so it stays ours by
        its remembered id."""
        key = self.change.key
        found = [
            (target, plan)
            for target, plan in self._listing(state)
            if plan.maintenance_key == key and is_unmarked(plan)
        ]
        self.store.set_adoption_checked(self.change)
        if len(found) > 1:
            ids = [plan.id for _, plan in found]
            message = f"{len(found)} unmarked plans carry this key ({', '.join(ids)}): none adopted"
            self.store.record(self.change, "warning", plan_key=key, message=message)
            return {}
        if not found:
            return {}
        [(target, plan)] = found
        remembered = RememberedPlan(plan.id, target, unmarked=True, written=body_of(plan))
        self.store.remember_plan(self.change, key, remembered)
        self.store.record(self.change, "adopted", plan_key=key, plan_id=plan.id, status=plan.status)
        log.info("%s: adopted the unmarked plan %s (%s)", self.change, plan.id, plan.status)
        return {key: plan}

"""Which plans are the bridge's: the ownership mark it sets on every plan it creates.

The mark is a custom tag that the bridge adds itself (mapping files may not set it), naming the
bridge, its instance (BRIDGE_INSTANCE) and the source. The bridge writes only to plans that carry
its own instance's and source's mark, or that it adopted on request (see converge.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from ..model import OWNER_TAG, ChangeRef, DesiredPlan, Plan, change_key_of

BRIDGE_NAME = "maintenance-bridge"
DEFAULT_INSTANCE = "default"


@dataclass(frozen=True)
class Owner:
    """One instance of the bridge acting for one source."""

    instance: str
    source: str

    @property
    def mark(self) -> str:
        return f"{BRIDGE_NAME}/{self.instance}/{self.source}"

    def marked(self, desired: DesiredPlan) -> DesiredPlan:
        """The desired plan with the mark among its custom tags (what creates and updates send)."""
        tags = tuple(tag for tag in desired.custom_tags if tag[0] != OWNER_TAG)
        return replace(desired, custom_tags=(*tags, (OWNER_TAG, self.mark)))

    def owns(self, plan: Plan) -> bool:
        """The plan carries this instance's and this source's mark."""
        return mark_of(plan) == self.mark


def mark_of(plan: Plan) -> str | None:
    """The plan's ownership mark, or None when it carries none (made by hand, or by another
    integration)."""
    for name, value in plan.fields.get("custom_tags") or ():
        if name == OWNER_TAG:
            return value
    return None


def is_unmarked(plan: Plan) -> bool:
    return mark_of(plan) is None


def change_of(plan: Plan, instance: str) -> ChangeRef | None:
    """The change of ours a plan belongs to, read from its mark and key; None when the plan is
    not this instance's (unmarked, another instance's, or a mark it cannot read)."""
    mark = mark_of(plan)
    if not mark or not plan.maintenance_key:
        return None
    bridge, _, rest = mark.partition("/")
    mark_instance, _, source = rest.partition("/")
    if bridge != BRIDGE_NAME or mark_instance != instance or not source:
        return None
    return ChangeRef(source, change_key_of(plan.maintenance_key))


def our_live_plans(
    listing: Mapping[str | None, Iterable[Plan]], instance: str
) -> Iterator[tuple[ChangeRef, str | None, Plan]]:
    """The live plans of a listing (by organization) that carry this instance's mark, with
    their change and organization: all that a ledger rebuild or an orphan search may take."""
    for target, plans in listing.items():
        for plan in plans:
            change = change_of(plan, instance)
            if change is not None and plan.status != "ended":
                yield change, target, plan

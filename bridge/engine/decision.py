"""The one per-plan decision: the plan the bridge wants (the desired plan, extended while its
change overruns, carrying the ownership mark) held against the plan as BigPanda has it, and the
calls that make them agree. A reconcile carries it out (converge.py); the drift sweep and
`bridge reconcile --dry-run` report it (drift.py): one computation, so they cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass

from ..model import DesiredPlan, Plan
from .diff import Diff, plan_diff
from .overrun import extended
from .ownership import Owner


@dataclass(frozen=True)
class PlanDecision:
    """What one plan should be, and the calls to get there."""

    wanted: DesiredPlan | None  # as BigPanda should hold it: extended, marked; None: no plan
    diff: Diff
    overrunning: bool  # the wanted end is an overrun's extension, not the sender's planned end


def decide_plan(
    desired: DesiredPlan | None,
    extension: tuple[int, int] | None,
    owner: Owner,
    actual: Plan | None,
    now: float,
) -> PlanDecision:
    """The decision for one plan of a change; `extension` is (planned end, extended end) of an
    overrun the bridge made (a new planned end from the sender replaces it)."""
    wanted = extended(desired, extension)
    marked = owner.marked(wanted) if wanted else None
    return PlanDecision(marked, plan_diff(marked, actual, now), wanted is not desired)

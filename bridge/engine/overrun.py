"""Overrun: a running plan follows a change that is still being worked on. While the change
stays in the states a rule names and its plan's end is near, the end moves out by a step, up to
a cap past the planned end. Pure: the policy and the next end; jobs/overrun_pass.py applies it."""

from __future__ import annotations

from dataclasses import replace

from ..model import DesiredPlan


def next_end(
    planned_end: int, current_end: int, start: int, now: float, policy: tuple[int, int, int]
) -> int | None:
    """The end to extend a running plan to, or None: not running, not near its end yet, or
    already at the cap (planned end + cap)."""
    near, step, cap = policy
    limit = planned_end + cap
    if not start <= now < current_end or current_end - now > near or current_end >= limit:
        return None
    return min(current_end + step, limit)


def extended(desired: DesiredPlan | None, extension: tuple[int, int] | None) -> DesiredPlan | None:
    """The desired plan with its overrun extension: only while the sender's planned end is the
    one extended (a new planned end from the sender replaces the extension)."""
    if desired is None or desired.overrun is None or extension is None:
        return desired
    planned_end, end = extension
    if planned_end != desired.end or end <= desired.end:
        return desired
    return replace(desired, end=end)

"""A rule's `overrun:` setting, as the mapping file states it (engine/overrun.py runs it)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NEAR_SECONDS = 600


@dataclass(frozen=True)
class OverrunRule:
    """A rule's overrun setting: the states it applies in, and near, step and cap in seconds."""

    states: frozenset[str]
    step: int
    cap: int
    near: int = DEFAULT_NEAR_SECONDS

    def policy(self) -> tuple[int, int, int]:
        """What a desired plan carries: (near, step, cap)."""
        return (self.near, self.step, self.cap)

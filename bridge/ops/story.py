"""One change's story (`bridge show`): what the bridge remembers of it, oldest event first, and
its remembered plans as BigPanda holds them now (one read each)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..bigpanda.client import BigPandaClient
from ..engine.ownership import DEFAULT_INSTANCE, Owner, mark_of
from ..errors import RemoteError
from ..model import ChangeRef, Decision, NoPlan, Plan, plans_of
from ..state.ledger import RememberedPlan
from ..state.store import HISTORY_LENGTH, Store

NOT_READ = "BigPanda was not read"
VERDICTS = {"enqueue": "accepted"}  # the ingest script's word for an event that queued a job
NO_PLAN_WHY = {
    "not_selected": "the mapping's rules do not select it",
    "window_over": "its window is over",
    "no_ci": "it names no configuration item",
}
GLOSS = {
    "vanished": "BigPanda no longer has it: forgotten",
    "not_ours": "it lost our mark: left alone, forgotten",
    "recovered": "found after a create of unknown outcome",
}


@dataclass(frozen=True)
class PlanNow:
    """A remembered plan as BigPanda holds it now; `plan` None: unknown to BigPanda, or `error`."""

    plan_key: str
    remembered: RememberedPlan
    plan: Plan | None = None
    error: str | None = None
    ours: bool = False  # carries this instance's and source's mark

    def to_json(self) -> dict[str, Any]:
        shown = {"plan_key": self.plan_key, "id": self.remembered.id}
        shown["target"] = self.remembered.target
        if self.error is not None:
            return {**shown, "error": self.error}
        if self.plan is None:
            return {**shown, "found": False}
        fields = self.plan.fields
        return {
            **shown,
            "found": True,
            "status": self.plan.status,
            "start": _utc(fields.get("start")),
            "end": _utc(fields.get("end")),
            "name": fields.get("name"),
            "ours": self.ours,
            "mark": mark_of(self.plan),
            "adopted_unmarked": self.remembered.unmarked,
        }

    def line(self) -> str:
        head = f"  {_bare(self.plan_key)}  id {_bare(self.remembered.id)}"
        if self.error is not None:
            return f"{head}  not read: {self.error!r}"
        if self.plan is None:
            return f"{head}  not found: BigPanda does not know this id"
        fields, mark = self.plan.fields, mark_of(self.plan)
        window = f"{_utc(fields.get('start'))}..{_utc(fields.get('end'))}"
        if self.ours:
            owner = "ours"
        elif mark is None:
            owner = "unmarked, adopted" if self.remembered.unmarked else "unmarked: not ours"
        else:
            owner = f"mark {mark!r}: not ours"
        return f"{head}  {self.plan.status}  {window}  {owner}  name={fields.get('name')!r}"


@dataclass(frozen=True)
class Story:
    """What the bridge remembers of one change, and (when read) its plans in BigPanda now."""

    change: ChangeRef
    version: tuple[float, ...] | None
    desired: Decision | None
    remembered: Mapping[str, RememberedPlan]
    pending_job: str | None
    create_uncertain: bool
    events: tuple[Mapping[str, Any], ...]  # oldest first
    bigpanda: tuple[PlanNow, ...] | str  # the remembered plans read, or why they were not
    history_full: bool = False  # the history is capped: older entries were dropped

    def to_json(self) -> dict[str, Any]:
        """JSON-safe; `bigpanda` is a list of plans, or a string saying why it was not read."""
        return {
            "source": self.change.source,
            "maintenance_key": self.change.key,
            "version": list(self.version) if self.version is not None else None,
            "desired": _desired_json(self.desired),
            "plans": {key: plan.id for key, plan in self.remembered.items()},
            "pending_job": self.pending_job,
            "create_uncertain": self.create_uncertain,
            "history_full": self.history_full,
            "events": [{**event, "at": _utc(event.get("at"))} for event in self.events],
            "bigpanda": (
                self.bigpanda
                if isinstance(self.bigpanda, str)
                else [plan.to_json() for plan in self.bigpanda]
            ),
        }

    def lines(self) -> list[str]:
        """For the terminal: a short header, one line per event, then `BigPanda now:`."""
        return [*self._header(), *map(_event_line, self.events), *self._bigpanda_lines()]

    def _header(self) -> Iterator[str]:
        yield f"{self.change.source} {_bare(self.change.key)}"
        seen = _version(self.version) if self.version is not None else "none since a ledger rebuild"
        yield f"  newest version: {seen}"
        yield from _desired_lines(self.desired)
        for key, plan in sorted(self.remembered.items()):
            target = f" (target {plan.target})" if plan.target else ""
            yield f"  remembered plan: {_bare(key)} -> id {_bare(plan.id)}{target}"
        if not self.remembered:
            yield "  remembered plan: none"
        if self.pending_job:
            yield f"  reconcile queued: job {self.pending_job}"
        if self.create_uncertain:
            yield "  a create's outcome is unknown: the next reconcile lists BigPanda first"
        kept = f": only the newest {HISTORY_LENGTH} are kept" if self.history_full else ""
        yield f"events, oldest first (UTC){kept}:"
        if not self.events:
            yield "  (none)"

    def _bigpanda_lines(self) -> Iterator[str]:
        if isinstance(self.bigpanda, str):
            yield f"BigPanda now: {self.bigpanda}"
        elif not self.bigpanda:
            yield "BigPanda now: no plan remembered, nothing to read"
        else:
            yield "BigPanda now:"
            yield from (plan.line() for plan in self.bigpanda)


def story(
    store: Store,
    clients: Mapping[str | None, BigPandaClient] | None,
    change: ChangeRef,
    *,
    instance: str = DEFAULT_INSTANCE,
    unread: str = NOT_READ,
) -> Story:
    """The change's story; its plans are read from BigPanda unless `clients` is None (`unread`
    then says why)."""
    state = store.state(change)
    history = store.history(change)
    owner = Owner(instance, change.source)
    remembered = sorted(state.plans.items())
    return Story(
        change=change,
        version=state.version,
        desired=state.desired,
        remembered=state.plans,
        pending_job=state.pending_job,
        create_uncertain=state.create_uncertain,
        events=tuple(_event(entry) for entry in reversed(history)),
        bigpanda=(
            unread
            if clients is None
            else tuple(_read(clients, key, plan, owner) for key, plan in remembered)
        ),
        history_full=len(history) >= HISTORY_LENGTH,
    )


def _read(
    clients: Mapping[str | None, BigPandaClient],
    plan_key: str,
    remembered: RememberedPlan,
    owner: Owner,
) -> PlanNow:
    """One GET of a remembered plan through its target's client; a failure is told, not raised."""
    client = clients.get(remembered.target)
    if client is None:
        error = f"no BigPanda client for target {remembered.target!r}: not in the mapping files"
        return PlanNow(plan_key, remembered, error=error)
    try:
        plan = client.get(remembered.id)
    except RemoteError as exc:
        return PlanNow(plan_key, remembered, error=str(exc))
    return PlanNow(plan_key, remembered, plan, ours=plan is not None and owner.owns(plan))


def _event(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A history entry as the story tells it: a received one's result is its verdict."""
    skipped = ("at", "event", "source")
    event = {"at": entry.get("at"), "event": entry.get("event")}
    event |= {key: value for key, value in entry.items() if key not in skipped}
    if event["event"] == "received":
        result = event.pop("result", None)
        event["verdict"] = VERDICTS.get(result, result)
    return event


def _event_line(event: Mapping[str, Any]) -> str:
    name = str(event.get("event"))
    return f"{_utc(event.get('at'), ' ')}  {_bare(name).ljust(9)}  {_what(name, event)}"


def _what(name: str, event: Mapping[str, Any]) -> str:
    """What one event says, after its time and name."""
    key = _bare(event.get("plan_key", ""))
    plan = f"{key}  id {_bare(event['plan_id'])}" if event.get("plan_id") else key
    fields = ", ".join(map(_bare, event.get("fields") or ()))
    if name == "received":
        decision = _bare(event.get("decision", "?"), spaces=True)
        return f"{_version(event.get('version'))}  {decision}  -> {event.get('verdict')}"
    if name == "created":
        return f"{plan}  plan {event.get('start')}..{event.get('end')}"
    if name == "updated" or name.startswith("would_"):
        dry = "  (dry run: not sent)" if name.startswith("would_") else ""
        return f"{plan}  fields: {fields or '-'}{dry}"
    if name in ("retrying", "failed"):
        status = event.get("status") or "no answer"
        return f"BigPanda {status}: {str(event.get('error'))!r}  job {_bare(event.get('job'))}"
    if name == "warning":
        return f"{key}  {str(event.get('message'))!r}"
    if name == "adopted":
        return f"{plan}  unmarked, {_bare(event.get('status'))}: adopted"
    if name == "in_sync" and not event.get("plan_id"):
        return f"{key}  no plan, none wanted"
    if name in GLOSS or name in ("stopped", "deleted", "in_sync"):
        return f"{plan}  {GLOSS.get(name, '')}".rstrip()
    others = {k: v for k, v in event.items() if k not in ("at", "event")}
    return "  ".join(f"{k}={v!r}" for k, v in others.items())


def _desired_lines(desired: Decision | None) -> Iterator[str]:
    if desired is None:
        yield "  desired: unknown (plans found by a ledger rebuild, no webhook since)"
    elif isinstance(desired, NoPlan):
        why = NO_PLAN_WHY.get(desired.reason, "")
        yield f"  desired: no plan ({desired.reason}: {why})"
    for key, plan in sorted(plans_of(desired).items()):
        target = f"  target {plan.target}" if plan.target else ""
        window = f"{_utc(plan.start)}..{_utc(plan.end)}"
        yield f"  desired: {_bare(key)}  plan {window}{target}  name={plan.name!r}"


def _desired_json(desired: Decision | None) -> dict[str, Any] | None:
    if desired is None:
        return None
    if isinstance(desired, NoPlan):
        return {"no_plan": desired.reason}
    wanted = plans_of(desired).items()
    return {
        "plans": {
            key: {"name": p.name, "start": _utc(p.start), "end": _utc(p.end), "target": p.target}
            for key, p in wanted
        }
    }


def _utc(epoch: Any, separator: str = "T") -> str | None:
    """Epoch seconds as UTC ISO 8601 (`2026-12-01T09:12:03Z`); an unreadable value as repr."""
    if epoch is None:
        return None
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return repr(epoch)
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return repr(epoch)
    return moment.strftime(f"%Y-%m-%d{separator}%H:%M:%SZ")


def _version(version: Any) -> str:
    """`v[12, 1764580000]`: whole numbers without their `.0`."""
    if not isinstance(version, list | tuple):
        return f"v{version!r}"
    parts = [int(p) if isinstance(p, float) and p.is_integer() else p for p in version]
    return f"v[{', '.join(map(str, parts))}]"


def _bare(value: Any, spaces: bool = False) -> str:
    """A value as is when it is printable (and, unless `spaces`, has no space); else its repr."""
    text = str(value)
    plain = text.isprintable() and (spaces or " " not in text) and "'" not in text
    return text if plain and text else repr(text)

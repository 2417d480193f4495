"""The BigPanda Maintenance Plans V2 client: auth, timeouts, paging, errors in two kinds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from ..errors import PermanentError
from ..model import Plan, PlanStatus, normalized_fields
from ..remote import RemoteAPI, checked_base

if TYPE_CHECKING:
    from ..state.ratelimit import RateLimiter

log = logging.getLogger(__name__)

API_PREFIX = "/resources/v2.0"
PLANS_PATH = f"{API_PREFIX}/maintenance-plans"
_RUNNING = frozenset({"running", "in progress", "active", "live"})
_ENDED = frozenset({"done", "expired"})


class BigPandaClient:
    """Maintenance Plans V2 calls; raises TransientError or PermanentError and never retries."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.time,
        limiter: RateLimiter | None = None,
        observer: Callable[[str, str, float], None] | None = None,
    ) -> None:
        self._base = checked_base("BigPanda API", base_url)
        self._origin = urlsplit(self._base)[:2]  # scheme and host: the only ones followed
        self._clock = clock
        self._api = RemoteAPI("BigPanda", token, connect_timeout=connect_timeout,
                              read_timeout=read_timeout, limiter=limiter, observer=observer,
                              clock=clock, log=log)  # fmt: skip
        self._api.session.headers.update(
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )

    def create(self, body: dict) -> Plan:
        """Create a plan and return it as BigPanda stored it."""
        response = self._call("POST", self._base + PLANS_PATH, json=body)
        return self._plan(_json(response, "create"), response, "create")

    def get(self, plan_id: str) -> Plan | None:
        """Read one plan; None when BigPanda does not know the id."""
        response = self._call("GET", self._plan_url(plan_id), missing_ok=True)
        if response.status_code == 404:
            return None
        return self._plan(_json(response, "get"), response, "get")

    def update(self, plan_id: str, fields: dict) -> None:
        """Change the given fields of a plan (a running plan accepts only `end`)."""
        self._call("PATCH", self._plan_url(plan_id), json=fields)

    def stop(self, plan_id: str) -> None:
        """Stop a running plan, keeping its record."""
        self._call("POST", self._plan_url(plan_id) + "/stop")

    def delete(self, plan_id: str) -> None:
        """Delete a plan; a plan that is already gone counts as deleted."""
        self._call("DELETE", self._plan_url(plan_id), missing_ok=True)

    def list_plans(self) -> Iterator[Plan]:
        """Every plan BigPanda returns, following each `Link: rel=next` page."""
        url: str | None = self._base + PLANS_PATH
        seen: set[str] = set()
        while url:
            seen.add(url)
            response = self._call("GET", url)
            if response.status_code == 204:  # BigPanda's way of saying "no plans"
                return
            items = _json(response, "list")
            if not isinstance(items, list):
                raise PermanentError(response.status_code, "list: expected a JSON array of plans")
            for item in items:
                yield self._plan(item, response, "list")
            url = self._next_url(response)
            if url and urlsplit(url)[:2] != self._origin:
                # A Link to another host would be sent the API key: never followed.
                raise PermanentError(
                    response.status_code, f"list: next page is not on {self._base}"
                )
            if url in seen:
                raise PermanentError(response.status_code, f"list: next page loops to {url}")

    def _plan_url(self, plan_id: str) -> str:
        return f"{self._base}{PLANS_PATH}/{quote(str(plan_id), safe='')}"

    def _plan(self, obj: Any, response: requests.Response, what: str) -> Plan:
        if not isinstance(obj, dict) or obj.get("id") in (None, ""):
            raise PermanentError(response.status_code, f"{what}: expected a plan object with an id")
        return plan_from_api(obj, self._clock())

    def _next_url(self, response: requests.Response) -> str | None:
        target = response.links.get("next", {}).get("url")
        if not target:
            return None
        if urlsplit(target).scheme:
            return target
        if target.startswith("?"):
            return urljoin(response.url, target)
        # BigPanda documents `</maintenance-plans?...>`: relative to the API prefix, not the host;
        # a target naming the prefix itself is re-rooted on base_url (which may carry /sandbox).
        _, found, rest = target.partition(API_PREFIX + "/")
        if found:
            return f"{self._base}{API_PREFIX}/{rest}"
        return f"{self._base}{API_PREFIX}/{target.lstrip('/')}"

    def _call(
        self, method: str, url: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> requests.Response:
        """One request, no retry; a 404 is an answer when `missing_ok`."""
        return self._api.call(method, url, accept=(404,) if missing_ok else (), **kwargs)


def plan_from_api(obj: dict, now: float) -> Plan:
    """A Plan from BigPanda's JSON, reading its status tolerantly."""
    return Plan(id=str(obj["id"]), status=_status(obj, now), fields=normalized_fields(obj))


def _status(obj: dict, now: float) -> PlanStatus:
    status = str(obj.get("status") or "").strip().lower()
    if status in _RUNNING:
        return "running"
    if status == "planned":
        return "planned"
    if status in _ENDED:
        return "ended"
    # Unknown wording: the window and the clock decide.
    start, end = _epoch(obj.get("start")), _epoch(obj.get("end"))
    if now < start:
        return "planned"
    return "running" if now < end else "ended"


def _epoch(value: Any) -> float:
    """Epoch seconds from a JSON number or numeric string; unreadable counts as long past."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


def _json(response: requests.Response, what: str) -> Any:
    """The decoded JSON body, unwrapped from {"data": ...}; PermanentError when it is not JSON."""
    try:
        body = response.json()
    except ValueError:
        raise PermanentError(response.status_code, f"{what}: answer is not JSON") from None
    if isinstance(body, dict) and "data" in body and "id" not in body:
        return body["data"]
    return body

"""The BigPanda Maintenance Plans V2 client: auth, timeouts, paging, errors in two kinds."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..errors import ConfigError, PermanentError, TransientError
from ..logs import event
from ..model import Plan, PlanStatus, normalized_fields

if TYPE_CHECKING:
    from ..state.ratelimit import RateLimiter

log = logging.getLogger(__name__)

API_PREFIX = "/resources/v2.0"
PLANS_PATH = f"{API_PREFIX}/maintenance-plans"
USER_AGENT = "maintenance-bridge/0.1 (BigPanda maintenance plans bridge)"
_RUNNING = frozenset({"running", "in progress", "active", "live"})
_ENDED = frozenset({"done", "expired"})
_MAX_ERROR_TEXT = 200
LOOPBACK_NAMES = frozenset({"localhost", "::1"})


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
        self._base = _checked_base(base_url)
        self._origin = urlsplit(self._base)[:2]  # scheme and host: the only ones followed
        self._token = token
        self._timeout = (connect_timeout, read_timeout)
        self._clock = clock
        self._limiter = limiter
        self._observer = observer  # (method, status or error name, seconds) after each call
        self._session = requests.Session()
        # Retries live in one place (the RQ enqueue); a second layer here would multiply them.
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, HTTPAdapter(max_retries=0))
        self._session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
            }
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
        """One request, no retry; raise the error class the outcome deserves."""
        path = urlsplit(url).path
        if self._limiter is not None:
            self._limiter.acquire()  # before the timer: time spent pacing is not BigPanda latency
        started = time.monotonic()
        try:
            response = self._session.request(
                method, url, timeout=self._timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            self._observed(method, path, type(exc).__name__, started)
            raise self._network_error(method, path, exc) from None
        self._observed(method, path, str(response.status_code), started)
        status = response.status_code
        if 200 <= status < 300 or (missing_ok and status == 404):
            return response
        message = self._scrub(f"{method} {path}: {_error_text(response)}")
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"), self._clock())
            raise TransientError(status, message, retry_after)
        # 3xx lands here too: following a redirect could turn a POST into a GET or leak the token.
        raise PermanentError(status, message)

    def _observed(self, method: str, path: str, status: str, started: float) -> None:
        """One line per call, and the call's latency to whoever observes them (metrics)."""
        seconds = time.monotonic() - started
        event(log, "bigpanda call", method=method, path=path, status=status,
              duration_ms=round(seconds * 1000, 1))  # fmt: skip
        if self._observer is not None:
            self._observer(method, status, seconds)

    def _network_error(self, method: str, path: str, exc: Exception) -> Exception:
        # Timeouts and dropped connections may succeed later; anything else (a malformed URL) won't.
        kinds = (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
        )
        message = self._scrub(f"{method} {path}: {type(exc).__name__}: {exc}"[:300])
        if isinstance(exc, kinds):
            return TransientError(0, message)
        return PermanentError(0, message)

    def _scrub(self, text: str) -> str:
        # Defence in depth: no message may carry the token, whatever a library put in it.
        return text.replace(self._token, "***") if self._token else text


def _checked_base(base_url: str) -> str:
    """The API base URL; https, except on this machine (the sandbox, tests)."""
    parts = urlsplit(base_url)
    local = parts.hostname in LOOPBACK_NAMES or (parts.hostname or "").startswith("127.")
    if parts.scheme != "https" and not (parts.scheme == "http" and local):
        raise ConfigError(
            f"BigPanda API URL {base_url!r} must use https (plain http only on loopback)"
        )
    return base_url.rstrip("/")


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


def _error_text(response: requests.Response) -> str:
    """BigPanda's `errors` list joined, else a short piece of the body, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        return "; ".join(str(error) for error in body["errors"])
    text = " ".join(response.text.split())
    if len(text) > _MAX_ERROR_TEXT:
        text = text[:_MAX_ERROR_TEXT] + "..."
    return text or response.reason or f"HTTP {response.status_code}"


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except ValueError:
        return None
    return max(0.0, when.timestamp() - now)

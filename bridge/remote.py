"""The one HTTP base every remote API goes through (BigPanda, ServiceNow, Jira): a session that
never retries (retries live in one place, the job's), timeouts from settings, no redirect
followed (a credential would go with it, and a POST could turn into a GET), pacing by a shared
rate limiter, one line per call, and one classification of what went wrong into TransientError
(timeouts, dropped connections, 429, 5xx) or PermanentError (anything else), naming the service
and the call."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from .config import insecure_url
from .errors import ConfigError, PermanentError, TransientError
from .logs import event

if TYPE_CHECKING:
    from .state.ratelimit import RateLimiter

USER_AGENT = "maintenance-bridge/0.1 (BigPanda maintenance plans bridge)"
MAX_ERROR_TEXT = 200
# Failures of the connection that a later attempt may not meet; anything else (a malformed URL,
# a body requests cannot send) will fail the same way again.
PASSING = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)


class RemoteAPI:
    """Calls to one remote service, as one credential; see the module's docstring."""

    def __init__(
        self,
        service: str,
        secret: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        limiter: RateLimiter | None = None,
        observer: Callable[[str, str, float], None] | None = None,
        clock: Callable[[], float] = time.time,
        log: logging.Logger | None = None,
    ) -> None:
        self.service = service
        self.session = requests.Session()
        for scheme in ("http://", "https://"):
            self.session.mount(scheme, HTTPAdapter(max_retries=0))
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        self._secret = secret
        self._timeout = (connect_timeout, read_timeout)
        self._limiter = limiter
        self._observer = observer  # (method, status or error name, seconds) after each call
        self._clock = clock
        self._log = log or logging.getLogger(__name__)

    def call(
        self, method: str, url: str, *, accept: Collection[int] = (), **kwargs: Any
    ) -> requests.Response:
        """One request: the answer when it is a 2xx or a status in `accept`, else the error the
        outcome deserves."""
        path = urlsplit(url).path
        if self._limiter is not None:
            self._limiter.acquire()  # before the timer: time spent pacing is not the service's
        started = time.monotonic()
        try:
            response = self.session.request(
                method, url, timeout=self._timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            self._observed(method, path, type(exc).__name__, started)
            raise self._network_error(method, path, exc) from None
        status = response.status_code
        self._observed(method, path, str(status), started)
        if 200 <= status < 300 or status in accept:
            return response
        message = self.scrub(f"{method} {path}: {_error_text(response)}")
        if status == 429 or status >= 500:
            retry_after = _retry_after(response.headers.get("Retry-After"), self._clock())
            raise TransientError(status, message, retry_after, service=self.service)
        # 3xx lands here too: following a redirect could turn a POST into a GET or leak the secret.
        raise PermanentError(status, message, service=self.service)

    def scrub(self, text: str) -> str:
        """Defence in depth: no message may carry the secret, whatever a library put in it."""
        return text.replace(self._secret, "***") if self._secret else text

    def _observed(self, method: str, path: str, status: str, started: float) -> None:
        """One line per call, and the call's latency to whoever observes them (metrics)."""
        seconds = time.monotonic() - started
        event(self._log, f"{self.service.lower()} call", method=method, path=path,
              status=status, duration_ms=round(seconds * 1000, 1))  # fmt: skip
        if self._observer is not None:
            self._observer(method, status, seconds)

    def _network_error(self, method: str, path: str, exc: Exception) -> Exception:
        message = self.scrub(f"{method} {path}: {type(exc).__name__}: {exc}"[:300])
        if isinstance(exc, PASSING):
            return TransientError(0, message, service=self.service)
        return PermanentError(0, message, service=self.service)


def checked_base(service: str, base_url: str) -> str:
    """A service's base URL: https, except on this machine (the sandboxes, tests)."""
    if insecure_url(base_url):
        raise ConfigError(
            f"{service} URL {base_url!r} must use https (plain http only on loopback)"
        )
    return base_url.rstrip("/")


def _error_text(response: requests.Response) -> str:
    """The service's own words: BigPanda's `errors` list joined, Jira's `errorMessages`,
    ServiceNow's `error.message`; else a short piece of the body, else the reason phrase."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for name in ("errors", "errorMessages"):
            if isinstance(body.get(name), list) and body[name]:
                return "; ".join(str(error) for error in body[name])
        error = body.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
            return error["message"][:MAX_ERROR_TEXT]
    text = " ".join(response.text.split())
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "..."
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

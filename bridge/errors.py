"""The exception tree: every error carries a reason a human can act on."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""

    status = 500
    title = "Internal error"


class ConfigError(BridgeError):
    """A setting, secret or mapping file is missing or invalid; the process must not start."""


class UnknownSource(BridgeError):
    status = 404
    title = "Unknown source"


class PayloadTooLarge(BridgeError):
    status = 413
    title = "Payload too large"


class AuthError(BridgeError):
    status = 401
    title = "Unauthorized"


class UnsupportedMediaType(BridgeError):
    status = 415
    title = "Unsupported media type"


class BadPayload(BridgeError):
    status = 400
    title = "Bad request"


class FieldError(BridgeError):
    """Input fields that are present but wrong; each error names its field."""

    status = 422
    title = "Invalid change"

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


class InvalidChange(FieldError):
    """One field of a change is missing or wrong."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__([(field, message)])


class QueueUnavailable(BridgeError):
    status = 503
    title = "Queue unavailable"


class RemoteError(BridgeError):
    """A call to a remote service failed. `service` names it (BigPanda, ServiceNow, Jira; the
    change's lock for a wait on another worker); `http_status` is the status that came back (0:
    none came back, None: no HTTP call stands behind the error)."""

    def __init__(self, http_status: int | None, message: str, service: str = "BigPanda"):
        self.http_status = http_status
        self.message = message
        self.service = service
        answer = "" if http_status is None else f" {http_status or 'no answer'}"
        super().__init__(f"{service}{answer}: {message}")


class TransientError(RemoteError):
    """Worth retrying: timeouts, connection errors, 429 and 5xx, a busy lock."""

    def __init__(
        self,
        http_status: int | None,
        message: str,
        retry_after: float | None = None,
        service: str = "BigPanda",
    ):
        self.retry_after = retry_after
        super().__init__(http_status, message, service)


class PermanentError(RemoteError):
    """Not worth retrying: any other 4xx; BigPanda's message is kept."""


def jump_refused(version: list[float], bound: tuple[int, str, int], newest: int) -> InvalidChange:
    """The error for a version far past the newest seen (0: a change never seen): no real
    sender jumps so far, and accepting it would answer every later event (the cancel too)
    "stale"."""
    index, field, jump = bound
    seen = f"the newest seen is {newest:,}" if newest else "the change is new to the bridge"
    return InvalidChange(
        field,
        f"is {version[index]:,.0f}, more than {jump:,} past the newest version ({seen}): "
        "refused, as it would make the change deaf to its next events",
    )

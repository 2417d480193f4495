"""Webhook authentication: a request checked against a source's verifiers (bearer, basic,
static header, HMAC-SHA256), all constant-time, each with its previous secret during a rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from ..mapping.auth_entries import Verifier


def authenticate(verifiers: tuple[Verifier, ...], headers: Mapping[str, str], body: bytes) -> bool:
    """True when any verifier accepts; an empty tuple means the file said `auth: none`."""
    if not verifiers:
        return True
    # Check every verifier so the time taken does not tell which one nearly matched.
    results = [accepts(verifier, headers, body) for verifier in verifiers]
    return any(results)


def accepts(verifier: Verifier, headers: Mapping[str, str], body: bytes) -> bool:
    """True when the request carries the verifier's proof, with any of its secrets."""
    presented = headers.get(verifier.header)
    if presented is None or verifier.kind == "refuse":
        return False
    results = [_proves(verifier, presented, body, secret) for secret in verifier.secrets]
    return any(results)  # every secret tried: the time taken does not tell which matched


def attempted(verifier: Verifier, headers: Mapping[str, str]) -> bool:
    """The request tried this method (its header, with its scheme), right or wrong."""
    presented = headers.get(verifier.header)
    if presented is None:
        return False
    return (
        verifier.kind not in ("bearer", "basic")
        or _scheme_value(presented, verifier.kind) is not None
    )


def _proves(verifier: Verifier, presented: str, body: bytes, secret: bytes) -> bool:
    if verifier.kind == "bearer":
        return _equal(_scheme_value(presented, "bearer") or "", secret)
    if verifier.kind == "basic":
        return _basic(verifier, presented, secret)
    if verifier.kind == "header":
        return _equal(presented, secret)
    return _hmac(verifier, presented, body, secret)


def _basic(verifier: Verifier, presented: str, secret: bytes) -> bool:
    encoded = _scheme_value(presented, "basic")
    try:
        user, _, password = base64.b64decode(encoded or "", validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):  # not Base64 (binascii.Error), or not ASCII
        return False
    user_ok = verifier.username is None or hmac.compare_digest(
        user.encode(), verifier.username.encode()
    )
    return _equal(password, secret) and user_ok


def _hmac(verifier: Verifier, presented: str, body: bytes, secret: bytes) -> bool:
    if not presented.startswith(verifier.prefix):
        return False
    digest = hmac.new(secret, body, hashlib.sha256).digest()
    expected = digest.hex() if verifier.encoding == "hex" else base64.b64encode(digest).decode()
    given = presented[len(verifier.prefix) :].strip()
    if verifier.encoding == "hex":
        given = given.lower()
    return hmac.compare_digest(given.encode(), expected.encode())


def _scheme_value(presented: str, scheme: str) -> str | None:
    name, _, value = presented.strip().partition(" ")
    return value.strip() if name.lower() == scheme else None


def _equal(presented: str, secret: bytes) -> bool:
    return hmac.compare_digest(presented.encode(), secret)

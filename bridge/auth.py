"""Webhook authentication: bearer, basic, static header and HMAC-SHA256, all constant-time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError


@dataclass(frozen=True)
class Verifier:
    """One accepted way for a source to prove itself; the secret comes from the environment."""

    kind: str
    secret: bytes = field(repr=False)
    username: str | None = None
    header: str = "Authorization"
    prefix: str = ""
    encoding: str = "hex"

    def accepts(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the request carries this verifier's proof."""
        presented = headers.get(self.header)
        if presented is None or self.kind == "refuse":
            return False
        if self.kind == "bearer":
            return _equal(_scheme_value(presented, "bearer") or "", self.secret)
        if self.kind == "basic":
            return self._basic(presented)
        if self.kind == "header":
            return _equal(presented, self.secret)
        return self._hmac(presented, body)

    def _basic(self, presented: str) -> bool:
        encoded = _scheme_value(presented, "basic")
        try:
            user, _, password = (
                base64.b64decode(encoded or "", validate=True).decode().partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        user_ok = self.username is None or hmac.compare_digest(
            user.encode(), self.username.encode()
        )
        return _equal(password, self.secret) and user_ok

    def _hmac(self, presented: str, body: bytes) -> bool:
        if not presented.startswith(self.prefix):
            return False
        digest = hmac.new(self.secret, body, hashlib.sha256).digest()
        expected = digest.hex() if self.encoding == "hex" else base64.b64encode(digest).decode()
        given = presented[len(self.prefix) :].strip()
        if self.encoding == "hex":
            given = given.lower()
        return hmac.compare_digest(given.encode(), expected.encode())


def authenticate(verifiers: tuple[Verifier, ...], headers: Mapping[str, str], body: bytes) -> bool:
    """True when any verifier accepts; an empty tuple means the file said `auth: none`."""
    if not verifiers:
        return True
    # Check every verifier so the time taken does not tell which one nearly matched.
    results = [verifier.accepts(headers, body) for verifier in verifiers]
    return any(results)


def build_verifier(config: Mapping[str, Any], secrets: Mapping[str, str], where: str) -> Verifier:
    """A Verifier from a mapping file's auth entry; a missing secret is a ConfigError."""
    kind = config["type"]
    secret_env = config["secret_env"]
    secret = secrets.get(secret_env)
    if not secret:
        raise ConfigError(f"{where}: environment variable {secret_env} is not set")
    defaults = {
        "bearer": ("Authorization", ""),
        "basic": ("Authorization", ""),
        "header": (None, ""),
        "hmac-sha256": ("X-Hub-Signature", "sha256="),
    }
    default_header, default_prefix = defaults[kind]
    return Verifier(
        kind=kind,
        secret=secret.encode(),
        username=config.get("username"),
        header=config.get("header") or default_header,
        prefix=config.get("prefix", default_prefix),
        encoding=config.get("encoding", "hex"),
    )


def _scheme_value(presented: str, scheme: str) -> str | None:
    name, _, value = presented.strip().partition(" ")
    return value.strip() if name.lower() == scheme else None


def _equal(presented: str, secret: bytes) -> bool:
    return hmac.compare_digest(presented.encode(), secret)

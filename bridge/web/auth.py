"""Webhook authentication: bearer, basic, static header and HMAC-SHA256, all constant-time.
Each method takes a second, previous secret during a rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Verifier:
    """One accepted way for a source to prove itself; the secret comes from the environment."""

    kind: str
    secrets: tuple[bytes, ...] = field(repr=False)  # the current one, then the previous one
    username: str | None = None
    header: str = "Authorization"
    prefix: str = ""
    encoding: str = "hex"

    def accepts(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the request carries this verifier's proof, with any of its secrets."""
        presented = headers.get(self.header)
        if presented is None or self.kind == "refuse":
            return False
        results = [self._proves(presented, body, secret) for secret in self.secrets]
        return any(results)  # every secret tried: the time taken does not tell which matched

    def attempted(self, headers: Mapping[str, str]) -> bool:
        """The request tried this method (its header, with its scheme), right or wrong."""
        presented = headers.get(self.header)
        if presented is None:
            return False
        return (
            self.kind not in ("bearer", "basic") or _scheme_value(presented, self.kind) is not None
        )

    def _proves(self, presented: str, body: bytes, secret: bytes) -> bool:
        if self.kind == "bearer":
            return _equal(_scheme_value(presented, "bearer") or "", secret)
        if self.kind == "basic":
            return self._basic(presented, secret)
        if self.kind == "header":
            return _equal(presented, secret)
        return self._hmac(presented, body, secret)

    def _basic(self, presented: str, secret: bytes) -> bool:
        encoded = _scheme_value(presented, "basic")
        try:
            user, _, password = (
                base64.b64decode(encoded or "", validate=True).decode().partition(":")
            )
        except (ValueError, UnicodeDecodeError):  # not Base64 (binascii.Error), or not ASCII
            return False
        user_ok = self.username is None or hmac.compare_digest(
            user.encode(), self.username.encode()
        )
        return _equal(password, secret) and user_ok

    def _hmac(self, presented: str, body: bytes, secret: bytes) -> bool:
        if not presented.startswith(self.prefix):
            return False
        digest = hmac.new(secret, body, hashlib.sha256).digest()
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


def build_verifier(config: Mapping[str, Any], secrets: Mapping[str, str]) -> Verifier:
    """A Verifier from a mapping file's auth entry; a missing or short secret is a ConfigError
    naming its variable (`previous_secret_env`, for a rotation, may be unset)."""
    kind = config["type"]
    found = [_secret(secrets, config["secret_env"], required=True)]
    if config.get("previous_secret_env"):
        found.append(_secret(secrets, config["previous_secret_env"], required=False))
    defaults = {
        "bearer": ("Authorization", ""),
        "basic": ("Authorization", ""),
        "header": (None, ""),
        "hmac-sha256": ("X-Hub-Signature", "sha256="),
    }
    default_header, default_prefix = defaults[kind]
    return Verifier(
        kind=kind,
        secrets=tuple(secret.encode() for secret in found if secret),
        username=config.get("username"),
        header=config.get("header") or default_header,
        prefix=config.get("prefix", default_prefix),
        encoding=config.get("encoding", "hex"),
    )


def _secret(secrets: Mapping[str, str], name: str, required: bool) -> str | None:
    secret = secrets.get(name)
    if not secret:
        if required:
            raise ConfigError(f"environment variable {name} is not set")
        return None
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} is {len(secret)} characters; a secret needs at least {MIN_SECRET_LENGTH}"
        )
    return secret


def _scheme_value(presented: str, scheme: str) -> str | None:
    name, _, value = presented.strip().partition(" ")
    return value.strip() if name.lower() == scheme else None


def _equal(presented: str, secret: bytes) -> bool:
    return hmac.compare_digest(presented.encode(), secret)

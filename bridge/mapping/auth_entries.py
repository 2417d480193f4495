"""A mapping file's `auth:` entries -> the verifiers (how a source proves itself, with the
secrets from the environment); web/auth.py checks requests against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError

from ..errors import ConfigError
from .positions import Where, leaves
from .schema import AuthSchema

MIN_SECRET_LENGTH = 16
# Header and prefix of each method when the file names none (Jira signs `sha256=<hex>`).
DEFAULT_HEADERS = {
    "bearer": ("Authorization", ""),
    "basic": ("Authorization", ""),
    "header": (None, ""),
    "hmac-sha256": ("X-Hub-Signature", "sha256="),
}


@dataclass(frozen=True)
class Verifier:
    """One accepted way for a source to prove itself; the secret comes from the environment."""

    kind: str  # bearer, basic, header, hmac-sha256, or refuse (accepts nothing)
    secrets: tuple[bytes, ...] = field(repr=False)  # the current one, then the previous one
    username: str | None = None
    header: str = "Authorization"
    prefix: str = ""
    encoding: str = "hex"


REFUSE = Verifier(kind="refuse", secrets=())


def verifiers_of(
    auth: Any, secrets: Mapping[str, str] | None
) -> tuple[tuple[Verifier, ...], list[tuple[Where, str]]]:
    """`auth: none` must be said explicitly; otherwise methods, any of which passes. Every bad
    entry and missing secret is reported."""
    if auth == "none":
        return (), []
    if auth is None:
        return (), [(("auth",), "missing: list the methods senders use, or say `auth: none`")]
    entries = auth if isinstance(auth, list) else [auth]
    if not entries:
        return (), [(("auth",), "list at least one method, or say `auth: none`")]
    verifiers: list[Verifier] = []
    errors: list[tuple[Where, str]] = []
    for index, entry in enumerate(entries):
        try:
            config = AuthSchema().load(entry if isinstance(entry, dict) else {})
        except ValidationError as exc:
            errors += leaves(exc.messages, ("auth", index))
            continue
        if secrets is None:  # loaded to check or preview: accept no webhook at all
            verifiers.append(REFUSE)
        elif config["optional"] and not secrets.get(config["secret_env"]):
            continue  # an optional method whose secret is unset is off
        else:
            try:
                verifiers.append(build_verifier(config, secrets))
            except ConfigError as exc:
                errors.append((("auth", index, "secret_env"), str(exc)))
    if not verifiers and not errors:
        # Never read as `auth: none`: a source whose methods are all off accepts nothing.
        message = "every method is optional and none has its secret set"
        return (REFUSE,), [(("auth",), message)]
    return tuple(verifiers), errors


def build_verifier(config: Mapping[str, Any], secrets: Mapping[str, str]) -> Verifier:
    """A Verifier from a mapping file's auth entry; a missing or short secret is a ConfigError
    naming its variable (`previous_secret_env`, for a rotation, may be unset)."""
    kind = config["type"]
    found = [_secret(secrets, config["secret_env"], required=True)]
    if config.get("previous_secret_env"):
        found.append(_secret(secrets, config["previous_secret_env"], required=False))
    default_header, default_prefix = DEFAULT_HEADERS[kind]
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

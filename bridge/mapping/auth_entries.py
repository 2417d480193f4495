"""A mapping file's `auth:` entries -> the verifiers that check its webhooks (web/auth.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError

from ..errors import ConfigError
from ..web.auth import Verifier, build_verifier
from .positions import Where, leaves
from .schema import AuthSchema


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
            verifiers.append(Verifier(kind="refuse", secrets=()))
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
        return (Verifier(kind="refuse", secrets=()),), [(("auth",), message)]
    return tuple(verifiers), errors

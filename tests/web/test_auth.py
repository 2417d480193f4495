"""Webhook authentication: bearer, basic, static header and HMAC-SHA256 over the exact body."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from bridge.errors import ConfigError
from bridge.mapping.auth_entries import Verifier, build_verifier
from bridge.web.auth import accepts, attempted, authenticate

SECRET = "s3cret-token-of-the-tests"
SECRETS = {"WEBHOOK_SECRET": SECRET}
BODY = b'{"number": "CHG0030412"}'

# The reference payloads' signatures (shared/reference/payloads/headers_examples.json) are real
# HMAC-SHA256 values keyed with this test secret over the exact bytes of each file. The
# ServiceNow sample below is a byte-for-byte copy of the signed file.
SIGNING_SECRET = "bridge-test-secret-not-real"
SIGNED_PAYLOAD = (
    Path(__file__).parent.parent / "payloads" / "servicenow" / "servicenow_change_scheduled.json"
)
# X-SN-Signature of servicenow_change_scheduled.json in headers_examples.json (Base64, as
# ServiceNow's CertificateEncryption.generateMac returns it) ...
SN_SIGNATURE = "WoZu47JVBKixH4siD4rquRZ+xKPcBRDvB/55l3VfRz8="
# ... and the same MAC in hex, as Jira sends it in X-Hub-Signature.
HEX_SIGNATURE = "sha256=5a866ee3b25504a8b11f8b220f8aeab9167ec4a3dc0510ef07fe7997755f473f"
# Authorization of the same sample in headers_examples.json: Basic bridge:not-a-real-password.
SAMPLE_BASIC = "Basic YnJpZGdlOm5vdC1hLXJlYWwtcGFzc3dvcmQ="


def verifier(kind: str, secrets=SECRETS, **options) -> Verifier:
    return build_verifier({"type": kind, "secret_env": "WEBHOOK_SECRET", **options}, secrets)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def signed_body() -> bytes:
    return SIGNED_PAYLOAD.read_bytes()


# --- bearer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "ok"),
    [
        ({"Authorization": f"Bearer {SECRET}"}, True),
        ({"Authorization": f"bearer {SECRET}"}, True),
        ({"Authorization": f"  Bearer   {SECRET}  "}, True),
        ({"Authorization": "Bearer wrong-token"}, False),
        ({"Authorization": f"Bearer {SECRET}x"}, False),
        ({"Authorization": f"Bearer {SECRET[:-1]}"}, False),
        ({"Authorization": "Bearer "}, False),
        ({"Authorization": "Bearer"}, False),
        ({"Authorization": f"Token {SECRET}"}, False),
        ({"Authorization": SECRET}, False),
        ({"Authorization": basic("bridge", SECRET)}, False),
        ({"X-Api-Key": SECRET}, False),
        ({}, False),
    ],
)
def test_bearer(headers, ok):
    assert accepts(verifier("bearer"), headers, BODY) is ok


# --- basic ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["bridge", "servicenow.integration", ""])
def test_basic_without_a_named_user_accepts_any_user(user):
    assert accepts(verifier("basic"), {"Authorization": basic(user, SECRET)}, BODY)


def test_basic_checks_the_password():
    assert not accepts(verifier("basic"), {"Authorization": basic("bridge", "wrong")}, BODY)


def test_basic_password_may_hold_colons():
    v = verifier("basic", secrets={"WEBHOOK_SECRET": "a:b:c-and-some-more"})
    assert accepts(v, {"Authorization": basic("bridge", "a:b:c-and-some-more")}, BODY)
    assert not accepts(v, {"Authorization": basic("bridge", "a:b")}, BODY)


def test_basic_with_a_named_user():
    v = verifier("basic", username="bridge")
    assert accepts(v, {"Authorization": basic("bridge", SECRET)}, BODY)
    assert not accepts(v, {"Authorization": basic("someone", SECRET)}, BODY)
    assert not accepts(v, {"Authorization": basic("Bridge", SECRET)}, BODY)
    assert not accepts(v, {"Authorization": basic("bridge", "wrong")}, BODY)


def test_basic_accepts_the_servicenow_sample_header():
    v = verifier("basic", secrets={"WEBHOOK_SECRET": "not-a-real-password"}, username="bridge")
    assert accepts(v, {"Authorization": SAMPLE_BASIC}, BODY)


@pytest.mark.parametrize(
    "value",
    [
        "Basic !!!not-base64!!!",
        "Basic YnJpZGdl",  # bad padding
        "Basic " + base64.b64encode(b"\xff\xfe:" + SECRET.encode()).decode(),  # not UTF-8
        "Basic " + base64.b64encode(SECRET.encode()).decode(),  # no colon: all user, no password
        "Basic",
        f"Bearer {SECRET}",
    ],
)
def test_basic_malformed_is_rejected_not_raised(value):
    assert accepts(verifier("basic"), {"Authorization": value}, BODY) is False


# --- static header --------------------------------------------------------------------------------


def test_header_token():
    v = verifier("header", header="X-Api-Key")
    assert accepts(v, {"X-Api-Key": SECRET}, BODY)
    assert not accepts(v, {"X-Api-Key": "not-a-real-api-key"}, BODY)
    assert not accepts(v, {"X-Api-Key": f"Bearer {SECRET}"}, BODY)
    assert not accepts(v, {"Authorization": SECRET}, BODY)
    assert not accepts(v, {}, BODY)


# --- hmac-sha256 ----------------------------------------------------------------------------------


@pytest.fixture
def hub() -> Verifier:
    """hmac-sha256 with its defaults: X-Hub-Signature, sha256=<hex>, as Jira sends it."""
    return verifier("hmac-sha256", secrets={"WEBHOOK_SECRET": SIGNING_SECRET})


@pytest.fixture
def sn_signature() -> Verifier:
    """hmac-sha256 as a ServiceNow script sends it: Base64, no prefix, its own header."""
    return verifier(
        "hmac-sha256",
        secrets={"WEBHOOK_SECRET": SIGNING_SECRET},
        header="X-SN-Signature",
        prefix="",
        encoding="base64",
    )


def test_hmac_defaults():
    v = verifier("hmac-sha256")
    assert (v.header, v.prefix, v.encoding) == ("X-Hub-Signature", "sha256=", "hex")


def test_hmac_hex_verifies_the_signed_sample(hub, signed_body):
    assert accepts(hub, {"X-Hub-Signature": HEX_SIGNATURE}, signed_body)


def test_hmac_hex_is_case_insensitive(hub, signed_body):
    upper = "sha256=" + HEX_SIGNATURE.removeprefix("sha256=").upper()
    assert accepts(hub, {"X-Hub-Signature": upper}, signed_body)


@pytest.mark.parametrize("position", [0, 100, -2, -1])
def test_hmac_one_changed_byte_fails(hub, signed_body, position):
    body = bytearray(signed_body)
    body[position] ^= 0x01
    assert not accepts(hub, {"X-Hub-Signature": HEX_SIGNATURE}, bytes(body))


def test_hmac_is_over_the_exact_bytes_not_the_json(hub, signed_body):
    assert not accepts(hub, {"X-Hub-Signature": HEX_SIGNATURE}, signed_body.rstrip(b"\n"))
    assert not accepts(hub, {"X-Hub-Signature": HEX_SIGNATURE}, signed_body + b" ")


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Hub-Signature": HEX_SIGNATURE.removeprefix("sha256=")},  # prefix missing
        {"X-Hub-Signature": HEX_SIGNATURE.replace("sha256=", "sha1=")},
        {"X-Hub-Signature": HEX_SIGNATURE.replace("sha256=", "sha512=")},  # same length
        {"X-Hub-Signature": "sha256=" + SN_SIGNATURE},  # right MAC, wrong encoding
        {"X-Hub-Signature": HEX_SIGNATURE[:-2]},
        {"X-Hub-Signature": "sha256="},
        {"X-Signature": HEX_SIGNATURE},
        {},
    ],
)
def test_hmac_hex_rejects(hub, signed_body, headers):
    assert not accepts(hub, headers, signed_body)


def test_hmac_with_another_secret_fails(signed_body):
    v = verifier("hmac-sha256", secrets={"WEBHOOK_SECRET": "another-secret-entirely"})
    assert not accepts(v, {"X-Hub-Signature": HEX_SIGNATURE}, signed_body)


def test_hmac_base64_verifies_the_servicenow_sample(sn_signature, signed_body):
    assert accepts(sn_signature, {"X-SN-Signature": SN_SIGNATURE}, signed_body)


def test_hmac_base64_rejects(sn_signature, signed_body):
    body = signed_body.replace(b"CHG0030412", b"CHG0030413", 1)
    assert body != signed_body
    assert not accepts(sn_signature, {"X-SN-Signature": SN_SIGNATURE}, body)
    assert not accepts(sn_signature, {"X-SN-Signature": SN_SIGNATURE.lower()}, signed_body)
    assert not accepts(sn_signature, {"X-SN-Signature": HEX_SIGNATURE[7:]}, signed_body)
    assert not accepts(sn_signature, {"X-Hub-Signature": SN_SIGNATURE}, signed_body)


# --- several methods, none, and configuration -----------------------------------------------------


@pytest.fixture
def bearer_or_basic() -> tuple[Verifier, ...]:
    """What the shipped mappings/servicenow.yaml accepts."""
    return (verifier("bearer"), verifier("basic"))


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {SECRET}"}, {"Authorization": basic("anyone", SECRET)}],
)
def test_any_of_several_verifiers_passes(bearer_or_basic, headers):
    assert authenticate(bearer_or_basic, headers, BODY)


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong"},
        {"Authorization": basic("anyone", "wrong")},
        {"X-Api-Key": SECRET},
        {},
    ],
)
def test_none_of_several_verifiers_passes(bearer_or_basic, headers):
    assert not authenticate(bearer_or_basic, headers, BODY)


def test_signature_or_header_token(signed_body):
    verifiers = (
        verifier("hmac-sha256", secrets={"WEBHOOK_SECRET": SIGNING_SECRET}),
        verifier("header", header="X-Bridge-Token"),
    )
    assert authenticate(verifiers, {"X-Hub-Signature": HEX_SIGNATURE}, signed_body)
    assert authenticate(verifiers, {"X-Bridge-Token": SECRET}, signed_body)
    assert not authenticate(verifiers, {"X-Hub-Signature": HEX_SIGNATURE}, signed_body + b"\n")


def test_auth_none_passes_everything():
    assert authenticate((), {}, BODY)


def test_missing_secret_is_a_config_error_naming_the_variable():
    with pytest.raises(ConfigError) as caught:
        build_verifier({"type": "bearer", "secret_env": "ACME_SN_TOKEN"}, {})
    assert str(caught.value) == "environment variable ACME_SN_TOKEN is not set"


def test_empty_secret_is_a_config_error():
    with pytest.raises(ConfigError, match="ACME_SN_TOKEN"):
        build_verifier({"type": "basic", "secret_env": "ACME_SN_TOKEN"}, {"ACME_SN_TOKEN": ""})


def test_the_secret_never_shows_in_repr():
    assert SECRET not in repr(verifier("bearer"))


# --- operators' needs: rotation, minimum length, undecodable credentials ---------------------

ROTATING = {"WEBHOOK_SECRET": "the-new-secret-0001", "WEBHOOK_SECRET_OLD": "the-old-secret-0001"}


@pytest.mark.parametrize("kind", ["bearer", "basic", "header", "hmac-sha256"])
def test_during_a_rotation_both_the_new_and_the_previous_secret_pass(kind):
    options = {"header": "X-Api-Key"} if kind == "header" else {}
    v = verifier(kind, secrets=ROTATING, previous_secret_env="WEBHOOK_SECRET_OLD", **options)

    def proof(secret: str) -> dict[str, str]:
        if kind == "bearer":
            return {"Authorization": f"Bearer {secret}"}
        if kind == "basic":
            return {"Authorization": basic("bridge", secret)}
        if kind == "header":
            return {"X-Api-Key": secret}
        digest = hmac.new(secret.encode(), BODY, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature": f"sha256={digest}"}

    assert accepts(v, proof("the-new-secret-0001"), BODY)
    assert accepts(v, proof("the-old-secret-0001"), BODY)
    assert not accepts(v, proof("some-other-secret-01"), BODY)


def test_a_previous_secret_variable_left_unset_is_fine_once_the_rotation_is_over():
    v = verifier("bearer", previous_secret_env="WEBHOOK_SECRET_OLD")
    assert accepts(v, {"Authorization": f"Bearer {SECRET}"}, BODY)
    assert len(v.secrets) == 1


@pytest.mark.parametrize("name", ["WEBHOOK_SECRET", "WEBHOOK_SECRET_OLD"])
def test_a_secret_shorter_than_16_characters_is_refused_naming_its_variable(name):
    secrets = {**ROTATING, name: "fifteen-chars15"}
    with pytest.raises(ConfigError) as caught:
        verifier("bearer", secrets=secrets, previous_secret_env="WEBHOOK_SECRET_OLD")
    assert str(caught.value) == f"{name} is 15 characters; a secret needs at least 16"
    assert "fifteen" not in str(caught.value)


@pytest.mark.parametrize(
    "presented",
    ["Basic \u00e9", "Basic ===", "Basic \u00e9\u00e9:\u00e9", "Bearer \u00e9", "Basic"],
)
def test_undecodable_credentials_are_refused_not_raised(presented):
    verifiers = (verifier("basic"), verifier("bearer"))
    assert not authenticate(verifiers, {"Authorization": presented}, BODY)


def test_attempted_names_the_methods_a_request_tried():
    bearer, hub = verifier("bearer"), verifier("hmac-sha256")
    assert attempted(bearer, {"Authorization": "Bearer nope"})
    assert not attempted(bearer, {"Authorization": "Basic bm9wZQ=="})
    assert attempted(hub, {"X-Hub-Signature": "sha256=00"})
    assert not attempted(hub, {})

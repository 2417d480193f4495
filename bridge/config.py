"""Settings: one frozen dataclass built once per process from the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DEFAULT_API_URL = "https://api.bigpanda.io"
MIB = 1024 * 1024
INSTANCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # as mapping files name their source


# BigPanda counts its 5 requests per second. Slots 5 a 1.15 s: sends that leave up to 150 ms
# unevenly late (a busy host, the network) still never put 6 into one second; 1.05 s once did
# (6 calls within 997 ms, 2 web and 4 worker processes on 2 cores).
RATE_PERIOD_SECONDS = 1.15
# A change's memory is kept this long after its last event and its plan's end (BigPanda returns
# a plan for 60 days after its end); then every Redis key of it expires by itself.
RETENTION_SECONDS = 60 * 24 * 3600
# An event of a change the bridge holds nothing for, and that wants no plan, is remembered a day:
# long enough to order the sender's retries, short enough that a ServiceNow posting every
# change leaves no growing pile.
IGNORED_RETENTION_SECONDS = 24 * 3600
LOOPBACK_NAMES = frozenset({"localhost", "::1"})


def insecure_url(url: str) -> bool:
    """A remote API's URL that is not https, unless it is on this machine (sandboxes, tests):
    credentials never travel in the clear."""
    parts = urlsplit(url)
    local = parts.hostname in LOOPBACK_NAMES or (parts.hostname or "").startswith("127.")
    return parts.scheme != "https" and not (parts.scheme == "http" and local)


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to know about its surroundings."""

    redis_url: str | None = None
    bigpanda_api_url: str = DEFAULT_API_URL
    bigpanda_api_key: str | None = field(default=None, repr=False)
    sandbox: bool = False
    sandbox_forced: bool = False  # served outside `bridge dev`: warned about at every start
    sandbox_token: str | None = field(default=None, repr=False)
    mappings_dir: Path = Path("mappings")
    admin_token: str | None = field(default=None, repr=False)
    port: int = 5000
    max_body_bytes: int = MIB
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    rate_limit: float = 5.0  # BigPanda requests per second per organization, all workers together
    # The limiter's period: `rate_limit` calls per period; BigPanda counts per second and the 5%
    # is a margin for jitter. Not read from the environment: tests shorten it (a faster clock),
    # so that a flushed Redis costs them no real second before the first call.
    rate_period: float = RATE_PERIOD_SECONDS
    sources: frozenset[str] | None = None  # BRIDGE_SOURCES: serve only these (None: every file)
    redis_verify_tls: bool = True  # False: accept a rediss:// certificate that is self-signed
    instance: str = "default"  # this deployment's name in the ownership mark of its plans
    dry_run: bool = False  # read BigPanda, write nothing, record what would have been written
    # The environment mapping files take their secrets from (by variable name).
    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the environment once; an invalid value fails naming its variable."""
        env = dict(os.environ if environ is None else environ)
        port = _int(env, "PORT", 5000)
        key = env.get("BIGPANDA_API_KEY") or None
        sandbox = env.get("BRIDGE_SANDBOX") == "1" and key is None
        forced = sandbox and _sandbox_forced(env)
        default_url = f"http://127.0.0.1:{port}/sandbox" if sandbox else DEFAULT_API_URL
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            bigpanda_api_url=env.get("BIGPANDA_API_URL") or default_url,
            bigpanda_api_key=key,
            sandbox=sandbox,
            sandbox_forced=forced,
            sandbox_token=env.get("BRIDGE_SANDBOX_TOKEN") or None,
            mappings_dir=Path(env.get("BRIDGE_MAPPINGS") or "mappings"),
            admin_token=_admin_token(env),
            port=port,
            max_body_bytes=_int(env, "BRIDGE_MAX_BODY_BYTES", MIB),
            connect_timeout=_float(env, "BIGPANDA_CONNECT_TIMEOUT", 5.0),
            read_timeout=_float(env, "BIGPANDA_READ_TIMEOUT", 30.0),
            rate_limit=_float(env, "BIGPANDA_RATE_LIMIT", 5.0),
            sources=_sources(env),
            redis_verify_tls=_cert_reqs(env),
            instance=_instance(env),
            dry_run=_flag(env, "BRIDGE_DRY_RUN"),
            secrets=env,
        )

    @property
    def bigpanda_token(self) -> str:
        """The bearer token the worker sends: the real key, or the sandbox's."""
        token = self.bigpanda_api_key or (self.sandbox_token if self.sandbox else None)
        if not token:
            raise ConfigError(
                "BIGPANDA_API_KEY is not set (set BRIDGE_SANDBOX=1 with BRIDGE_SANDBOX_TOKEN "
                "to target the built-in sandbox instead)"
            )
        return token

    def require_service(self) -> None:
        """Fail fast, naming the variable, when web or worker cannot run as configured."""
        if not self.redis_url:
            raise ConfigError("REDIS_URL is not set")
        self.bigpanda_token  # noqa: B018 - raises when neither a key nor the sandbox is set


def _sandbox_forced(env: Mapping[str, str]) -> bool:
    """The sandbox is for `bridge dev`; elsewhere only BRIDGE_SANDBOX_FORCE=1 turns it on, so a
    production process never writes its plans to a stand-in by mistake."""
    if env.get("BRIDGE_STARTED_BY") == "dev":
        return False
    if _flag(env, "BRIDGE_SANDBOX_FORCE"):
        return True
    raise ConfigError(
        "BRIDGE_SANDBOX=1 serves the built-in sandbox, which is for `bridge dev`: set "
        "BIGPANDA_API_KEY, or BRIDGE_SANDBOX_FORCE=1 to serve the sandbox anyway"
    )


def _sources(env: Mapping[str, str]) -> frozenset[str] | None:
    raw = env.get("BRIDGE_SOURCES", "").strip()
    if not raw:
        return None
    names = frozenset(name.strip() for name in raw.split(",") if name.strip())
    bad = sorted(name for name in names if not SOURCE_NAME.match(name))
    if bad or not names:
        raise ConfigError(f"BRIDGE_SOURCES must list source names, comma-separated; got {raw!r}")
    return names


def _cert_reqs(env: Mapping[str, str]) -> bool:
    """REDIS_SSL_CERT_REQS=none: Heroku Key-Value Store's rediss:// certificates are self-signed
    (and its URL rotates, so the setting cannot live in the URL)."""
    raw = (env.get("REDIS_SSL_CERT_REQS") or "required").strip().lower()
    if raw not in ("required", "none"):
        raise ConfigError(f"REDIS_SSL_CERT_REQS must be required or none, got {raw!r}")
    return raw == "required"


def _admin_token(env: Mapping[str, str]) -> str | None:
    token = env.get("BRIDGE_ADMIN_TOKEN") or None
    if token is not None and len(token) < 16:
        raise ConfigError(f"BRIDGE_ADMIN_TOKEN is {len(token)} characters; it needs at least 16")
    return token


def _instance(env: Mapping[str, str]) -> str:
    name = env.get("BRIDGE_INSTANCE") or "default"
    if not INSTANCE_NAME.match(name):
        raise ConfigError(
            f"BRIDGE_INSTANCE must be 1-64 lowercase letters, digits, - and _, got {name!r}"
        )
    return name


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "0").strip().lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
    return raw in ("1", "true", "yes")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_positive(env, name, default, int, "a whole number"))


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    return _positive(env, name, default, float, "a number")


def _positive(env: Mapping[str, str], name: str, default: float, kind: type, what: str) -> float:
    """A positive number from the environment; an invalid one fails naming the variable."""
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value

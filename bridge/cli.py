"""`bridge`: dev, serve, worker and mappings check."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from . import jobs
from .config import Settings
from .errors import ConfigError, FieldError
from .mapping.loader import check_mappings, load_mappings
from .preview import preview
from .store import connect

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


@click.group()
def main() -> None:
    """Webhook bridge from change management to BigPanda maintenance plans."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format=LOG_FORMAT)


@main.command()
@click.option("--port", type=int, default=None, help="web port (default: $PORT or 5000)")
def dev(port: int | None) -> None:
    """Web + worker + embedded Redis + sandbox BigPanda on this machine; Ctrl-C stops all."""
    from .dev import run_dev

    sys.exit(run_dev(port or int(os.environ.get("PORT") or 5000)))


@main.command()
def serve() -> None:
    """The web tier under gunicorn on $PORT (what the Procfile's web line runs)."""
    settings = _settings()
    args = ["gunicorn", "--bind", f"0.0.0.0:{settings.port}", "bridge.app:create_app()"]
    os.execvp(sys.executable, [sys.executable, "-m", *args])


@main.command()
@click.option("--burst", is_flag=True, help="work until the queue is empty, then exit")
def worker(burst: bool) -> None:
    """An RQ worker with its scheduler (retry intervals need it). SIGTERM finishes the job."""
    settings = _settings()
    mappings = _fail_on(lambda: load_mappings(settings.mappings_dir, settings.secrets))
    _fail_on(lambda: jobs.configure(settings, mappings))
    connection = connect(settings.redis_url)  # type: ignore[arg-type]
    queue = Queue(jobs.QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    rq_worker = Worker([queue], connection=connection, serializer=JSONSerializer)
    rq_worker.work(with_scheduler=True, burst=burst)


@main.group()
def mappings() -> None:
    """Mapping files."""


@mappings.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--ignore-secrets", is_flag=True, help="do not require the secrets to be set")
def mappings_check(directory: Path | None, ignore_secrets: bool) -> None:
    """Validate every mapping file: prints OK or every error (missing secrets included)."""
    settings = _fail_on(Settings.from_env)
    secrets = None if ignore_secrets else settings.secrets
    errors, files = check_mappings(directory or settings.mappings_dir, secrets)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)
    click.echo(f"OK: {len(files)} mapping file(s): {', '.join(files)}")


@main.command("preview")
@click.argument("source")
@click.argument("payload", type=click.File("rb"))
def preview_command(source: str, payload) -> None:
    """What SOURCE's mapping would make of the PAYLOAD file (JSON): rules, plan, action.
    Nothing is stored or sent; secrets are not needed."""
    settings = _fail_on(Settings.from_env)
    mappings = _fail_on(lambda: load_mappings(settings.mappings_dir, None))
    if source not in mappings:
        known = ", ".join(sorted(mappings))
        _exit(f"no mapping file defines the source {source!r} (known: {known})")
    try:
        raw = json.loads(payload.read())
    except (ValueError, UnicodeDecodeError) as exc:
        _exit(f"{payload.name} is not JSON: {exc}")
    if not isinstance(raw, dict):
        _exit(f"{payload.name} must hold a JSON object")
    try:
        result = preview(mappings[source], raw, time.time())
    except FieldError as exc:
        _exit(f"invalid change: {exc}")
    click.echo(json.dumps(result, indent=2, default=str))


def _exit(message: str) -> NoReturn:
    click.echo(f"bridge: {message}", err=True)
    sys.exit(2)


def _settings() -> Settings:
    settings = _fail_on(Settings.from_env)
    _fail_on(settings.require_service)
    return settings


def _fail_on(step):
    """Run a start-up step; a ConfigError ends the process with one clear line."""
    try:
        return step()
    except ConfigError as exc:
        _exit(f"cannot start: {exc}")

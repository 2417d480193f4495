"""`bridge`: dev, serve, worker and mappings check."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from . import jobs
from .config import Settings
from .errors import ConfigError
from .mapping.loader import check_mappings, load_mappings
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
    _fail_on(lambda: load_mappings(settings.mappings_dir, settings.secrets))
    jobs.configure(settings)
    connection = connect(settings.redis_url)  # type: ignore[arg-type]
    queue = Queue(jobs.QUEUE_NAME, connection=connection, serializer=JSONSerializer)
    rq_worker = Worker([queue], connection=connection, serializer=JSONSerializer)
    rq_worker.work(with_scheduler=True, burst=burst)


@main.group()
def mappings() -> None:
    """Mapping files."""


@mappings.command("check")
@click.argument("directory", required=False, type=click.Path(path_type=Path))
def mappings_check(directory: Path | None) -> None:
    """Validate every mapping file: prints OK or every error (secrets included)."""
    settings = Settings.from_env()
    errors, files = check_mappings(directory or settings.mappings_dir, settings.secrets)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)
    click.echo(f"OK: {len(files)} mapping file(s): {', '.join(files)}")


def _settings() -> Settings:
    settings = _fail_on(Settings.from_env)
    _fail_on(settings.require_service)
    return settings


def _fail_on(step):
    """Run a start-up step; a ConfigError ends the process with one clear line."""
    try:
        return step()
    except ConfigError as exc:
        click.echo(f"bridge: cannot start: {exc}", err=True)
        sys.exit(2)

"""`bridge`: dev, serve, worker, reconcile, show, forget, mappings check, preview and jobs."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import click

from .. import logs
from ..bigpanda.organizations import build_clients
from ..config import Settings
from ..engine.drift import find_drift
from ..errors import BadPayload, ConfigError, FieldError
from ..jobs import failed as failed_jobs
from ..jobs import tasks as jobs
from ..jobs.queue import WORKER_ROLES, queue_of, store_of
from ..jobs.sweep import sweep
from ..jobs.worker import run_worker
from ..mapping.loader import check_mappings, load_mappings
from ..model import ChangeRef
from ..state.store import connect
from ..web import strict_json
from ..web.preview import preview
from .story import story


@click.group()
def main() -> None:
    """Webhook bridge from change management to BigPanda maintenance plans."""
    _fail_on(lambda: logs.configure_from_env(os.environ))


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
@click.option(
    "--role",
    type=click.Choice(WORKER_ROLES),
    default="all",
    show_default=True,
    help="all: reconciles here, notes in a child process; or one queue alone",
)
def worker(burst: bool, role: str) -> None:
    """An RQ worker with its scheduler (retry intervals need it). SIGTERM finishes the job."""
    settings = _settings()
    mappings = _fail_on(
        lambda: load_mappings(settings.mappings_dir, settings.secrets, settings.sources)
    )
    connection = connect(settings.redis_url, settings.redis_verify_tls)  # type: ignore[arg-type]
    _fail_on(lambda: jobs.configure(settings, mappings, connection))
    run_worker(connection, burst=burst, role=role)


@main.command("reconcile")
@click.option("--every", type=click.IntRange(min=60), help="repeat every N seconds (Ctrl-C stops)")
@click.option(
    "--dry-run", is_flag=True, help="print what would be repaired, and why; queue nothing"
)
def reconcile_command(every: int | None, dry_run: bool) -> None:
    """Compare every remembered change with one listing of BigPanda's plans and queue a repair
    for each that differs (the workers make the calls, at the shared rate limit); expire changes
    BigPanda has forgotten."""
    if dry_run and every is not None:
        raise click.UsageError("--dry-run runs once: leave out --every")
    settings, connection, clients = _bigpanda_clients()
    store = store_of(connection)
    while True:
        click.echo("listing BigPanda's plans...", err=True)
        with click.progressbar(length=store.count_changes(), label="comparing changes") as bar:
            if dry_run:
                report = find_drift(
                    store, clients, settings.instance, time.time(), lambda _c: bar.update(1)
                )
            else:
                queue = queue_of(connection)
                counts = sweep(
                    store, queue, clients, settings.instance, time.time(), lambda _c: bar.update(1)
                )
        if dry_run:
            for repair in report.repairs:
                click.echo(repair.line())
        click.echo(report.summary() if dry_run else counts.summary())
        if every is None:
            return
        time.sleep(every)


def _bigpanda_clients():
    """Settings, Redis and the BigPanda clients (each paced by the shared limiter)."""
    settings = _settings()
    mappings = _fail_on(lambda: load_mappings(settings.mappings_dir, None, settings.sources))
    connection = connect(settings.redis_url, settings.redis_verify_tls)  # type: ignore[arg-type]
    clients = _fail_on(lambda: build_clients(settings, mappings, connection))
    return settings, connection, clients


@main.command("show")
@click.argument("source")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="print the story as JSON")
def show_command(source: str, key: str, as_json: bool) -> None:
    """One change's story: each webhook and its verdict, each call and outcome of the worker,
    and its remembered plans as BigPanda holds them now (one read each, at the shared rate
    limit). Without BIGPANDA_API_KEY the story is told without BigPanda."""
    settings = _fail_on(Settings.from_env)
    if not settings.redis_url:
        _exit("cannot start: REDIS_URL is not set")
    connection = connect(settings.redis_url, settings.redis_verify_tls)
    store = store_of(connection)
    change = ChangeRef(source, key)
    if not store.is_known(change):
        _exit(f"no change {key!r} of source {source!r} is known")
    clients, unread = _story_clients(settings, connection)
    told = story(store, clients, change, instance=settings.instance, unread=unread)
    if as_json:
        click.echo(json.dumps(told.to_json(), indent=2))
    else:
        click.echo("\n".join(told.lines()))


def _story_clients(settings: Settings, connection) -> tuple[dict | None, str]:
    """The BigPanda clients `show` reads through (as the worker's), or None and why not."""
    try:
        mappings = load_mappings(settings.mappings_dir, None, settings.sources)
        return build_clients(settings, mappings, connection), ""
    except ConfigError as exc:
        return None, "not read: " + " ".join(str(exc).split())


@main.command("forget")
@click.argument("source")
@click.argument("key")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def forget_command(source: str, key: str, yes: bool) -> None:
    """Drop the bridge's memory of one change (version, plan ids, history); BigPanda is not
    called, its plans stay as they are. The next webhook of the change starts afresh."""
    store = store_of(_redis())
    change = ChangeRef(source, key)
    if not store.is_known(change):
        _exit(f"no change {key!r} of source {source!r} is known")
    summary = store.summary(change)
    click.echo(f"{change}: will drop")
    click.echo(f"  version seen: {summary['version']}")
    for plan_key, plan_id in summary["plans"].items() or [("(none)", "-")]:
        click.echo(f"  plan remembered: {plan_key} -> {plan_id} (stays in BigPanda)")
    click.echo(f"  pending job: {summary['pending_job'] or '-'}")
    click.echo(f"  history entries: {summary['history_entries']}")
    if not yes and not click.confirm("Drop it?", default=False):
        click.echo("nothing dropped")
        sys.exit(1)
    store.forget(change)
    click.echo(f"forgot {change}")


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
    errors, files = check_mappings(directory or settings.mappings_dir, secrets, settings.sources)
    for error in errors:
        click.echo(f"error: {error}", err=True)
    if errors:
        sys.exit(1)
    click.echo(f"OK: {len(files)} mapping file(s): {', '.join(files)}")


@main.command("preview")
@click.argument("source")
@click.argument("payload", type=click.File("rb"))
@click.option(
    "--at",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"]),
    help="evaluate as if it were this UTC time (e.g. to preview an old sample payload)",
)
def preview_command(source: str, payload, at: datetime | None) -> None:
    """What SOURCE's mapping would make of the PAYLOAD file (JSON): rules, plan, action.
    Nothing is stored or sent; secrets are not needed."""
    settings = _fail_on(Settings.from_env)
    mappings = _fail_on(lambda: load_mappings(settings.mappings_dir, None, settings.sources))
    if source not in mappings:
        known = ", ".join(sorted(mappings))
        _exit(f"no mapping file defines the source {source!r} (known: {known})")
    try:
        raw = strict_json.loads(payload.read())
    except BadPayload as exc:
        _exit(f"{payload.name}: {exc}")
    if not isinstance(raw, dict):
        _exit(f"{payload.name} must hold a JSON object")
    try:
        now = at.replace(tzinfo=UTC).timestamp() if at else time.time()
        result = preview(mappings[source], raw, now)
    except FieldError as exc:
        _exit(f"invalid change: {exc}")
    click.echo(json.dumps(result, indent=2, default=str))


@main.group("jobs")
def jobs_group() -> None:
    """Failed reconcile jobs: list them, run them again."""


@jobs_group.command("failed")
def jobs_failed() -> None:
    """Failed reconcile jobs, the latest failure first, with BigPanda's message."""
    found = [job.to_json() for job in failed_jobs.list_failed(_redis())]
    columns = ["id", "source", "maintenance_key", "tries", "failed_at", "error"]
    rows = [[str(job[c] if job[c] is not None else "-") for c in columns] for job in found]
    if rows:
        table = [["JOB ID", "SOURCE", "KEY", "TRIES", "FAILED AT", "ERROR"], *rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(columns) - 1)]
        for row in table:  # the error, last, is not padded: it may be long
            padded = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)]
            click.echo("  ".join([*padded, row[-1]]))
    click.echo(f"{len(rows)} failed job{'' if len(rows) == 1 else 's'}")


@jobs_group.command("requeue")
@click.argument("job_id", required=False)
@click.option("--all", "everything", is_flag=True, help="requeue every failed job")
def jobs_requeue(job_id: str | None, everything: bool) -> None:
    """Run the failed job JOB_ID (or --all of them) again, with its retries restored."""
    if bool(job_id) == everything:
        raise click.UsageError("give a JOB_ID or --all (not both)")
    connection = _redis()
    if everything:
        requeued = failed_jobs.requeue_all(connection)
    else:
        change = failed_jobs.requeue(connection, job_id)  # type: ignore[arg-type]
        if change is None:
            _exit(f"no failed reconcile job has the id {job_id!r} (see: bridge jobs failed)")
        requeued = {job_id: change}  # type: ignore[dict-item]
    for requeued_id, change in requeued.items():
        click.echo(f"requeued {requeued_id} ({change})")
    click.echo(f"{len(requeued)} job{'' if len(requeued) == 1 else 's'} requeued")


def _redis():
    """The Redis of the queue: only REDIS_URL is needed (no BigPanda key) to manage jobs."""
    settings = _fail_on(Settings.from_env)
    if not settings.redis_url:
        _exit("cannot start: REDIS_URL is not set")
    return connect(settings.redis_url, settings.redis_verify_tls)


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

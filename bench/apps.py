"""The two reference apps bench/ingest.py serves beside the bridge, under the same gunicorn.

`baseline()` is the bare stack (parse the JSON body, answer 202): the ceiling any webhook handler
is measured against. `naive()` adds one plain RQ enqueue per webhook: what the bridge's
one-round-trip ingest is designed to beat.
"""

from __future__ import annotations

import json
import os

from flask import Flask, request
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer


def baseline() -> Flask:
    """Flask answering 202 to a JSON POST, doing nothing else."""
    app = _app("bench-baseline")

    @app.post("/webhooks/<source>")
    def receive(source: str):
        payload = json.loads(request.get_data())
        return {"status": "accepted", "source": source, "fields": len(payload)}, 202

    return app


def naive() -> Flask:
    """Flask answering 202 after one `Queue.enqueue` of the payload (REDIS_URL from the env)."""
    app = _app("bench-naive")
    queue = Queue(
        "bench-naive", connection=Redis.from_url(os.environ["REDIS_URL"]), serializer=JSONSerializer
    )

    @app.post("/webhooks/<source>")
    def receive(source: str):
        payload = json.loads(request.get_data())
        # By dotted name: nothing runs the job, and the web process need not import it.
        job = queue.enqueue("bench.apps.handle", source, payload)
        return {"status": "accepted", "source": source, "job_id": job.id}, 202

    return app


def handle(source: str, payload: dict) -> None:
    """The job the naive app enqueues (never run by the benchmark)."""


def _app(name: str) -> Flask:
    app = Flask(name)

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app


def one_round_trip() -> Flask:
    """Flask answering 202 after one Redis command (a SET of the body): the floor of any handler
    that stores each webhook in Redis, with none of the bridge's own work."""
    app = _app("bench-one-round-trip")
    redis = Redis.from_url(os.environ["REDIS_URL"])

    @app.post("/webhooks/<source>")
    def receive(source: str):
        payload = json.loads(request.get_data())
        redis.set(f"bench:{source}:last", request.get_data())
        return {"status": "accepted", "source": source, "fields": len(payload)}, 202

    return app

"""A scripted BigPanda over real HTTP: answers requests in order from a script, records them all."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from requests.structures import CaseInsensitiveDict


@dataclass(frozen=True)
class Reply:
    """One scripted answer: status, body, headers, delay, or a dropped connection.

    The body is sent as JSON; bytes are sent as they are; None sends no body.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class Received:
    """One request as the server saw it; `json` is the parsed body, None when empty or not JSON."""

    method: str
    path: str
    headers: CaseInsensitiveDict
    json: Any
    raw: bytes


EMPTY_SCRIPT = Reply(500, {"status": 500, "errors": ["scripted BigPanda: script is empty"]})


class ScriptedBigPanda:
    """Serves scripted replies in order on 127.0.0.1; use as a context manager, read `.url`."""

    def __init__(self, default: Reply | Callable[[Received], Reply] = EMPTY_SCRIPT):
        self.default = default
        self.received: list[Received] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True  # a handler stuck in a delay must not block shutdown
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def reply(self, status: int = 200, body: Any = None, **options: Any) -> ScriptedBigPanda:
        """Queue one answer (options: headers, delay); returns self so calls chain."""
        with self._lock:
            self._script.append(Reply(status, body, **options))
        return self

    def drop(self, delay: float = 0.0) -> ScriptedBigPanda:
        """Queue a closed connection without any answer."""
        with self._lock:
            self._script.append(Reply(drop=True, delay=delay))
        return self

    def paths(self) -> list[str]:
        """Method and path (with query) of every request so far, e.g. 'GET /resources/...'."""
        return [f"{r.method} {r.path}" for r in self.received]

    def __enter__(self) -> ScriptedBigPanda:
        # A short poll interval keeps shutdown (once per test) fast.
        options = {"poll_interval": 0.02}
        threading.Thread(target=self._server.serve_forever, kwargs=options, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            if self._script:
                return self._script.popleft()
        return self.default(request) if callable(self.default) else self.default


def _handler_for(fake: ScriptedBigPanda) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real API

        def _answer(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = None
            headers = CaseInsensitiveDict(self.headers.items())
            reply = fake._next(Received(self.command, self.path, headers, parsed, raw))
            time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            body = _encode(reply)
            try:
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if body and not isinstance(reply.body, bytes):
                    self.send_header("Content-Type", "application/json")
                # A scripted Content-Length (with Connection: close) fakes a truncated body.
                scripted = {name.lower() for name in reply.headers}
                if reply.status != 204 and "content-length" not in scripted:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up waiting (a timeout test)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep pytest output quiet

    return Handler


def _encode(reply: Reply) -> bytes:
    if reply.status == 204 or reply.body is None:
        return b""  # a 204 carries no body by definition
    return reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()

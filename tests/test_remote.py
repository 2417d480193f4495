"""The one HTTP base (remote.py) every remote API goes through: errors name the service and the
call, redirects are never followed with a credential, timeouts come from the caller's settings,
and a busy lock is not reported as a remote service's failure."""

from __future__ import annotations

import time

import pytest
from bridge_harness import serve_in_thread
from flask import Flask, redirect, request

from bridge.errors import PermanentError, TransientError
from bridge.itsm.notes import NoteClient
from bridge.mapping.write_back import WriteBack
from bridge.model import ChangeRef
from bridge.remote import RemoteAPI
from bridge.state.keylock import fence_of, key_lock

SECRET = "itsm-secret-for-tests-0123"


def itsm(status: int = 200, body: object = None, stall: float = 0.0) -> Flask:
    """A stand-in of an ITSM API that answers every request the same way."""
    app = Flask("itsm")
    seen = app.config["SEEN"] = []

    @app.route("/<path:path>", methods=["GET", "POST", "PATCH"])
    def answer(path: str):
        seen.append((request.method, "/" + path, request.headers.get("Authorization")))
        time.sleep(stall)
        return (body if body is not None else {"result": {}}), status

    return app


def client(api: str, port: int, read_timeout: float = 5.0) -> NoteClient:
    target = WriteBack(api, f"http://127.0.0.1:{port}", "bearer", "X_SECRET")
    return NoteClient(target, SECRET, connect_timeout=1.0, read_timeout=read_timeout)


@pytest.mark.parametrize(("api", "service"), [("servicenow", "ServiceNow"), ("jira", "Jira")])
def test_an_itsm_refusal_names_its_service_and_the_call(api, service):
    body = {"error": {"message": "User Not Authorized"}, "errorMessages": ["Forbidden"]}
    with serve_in_thread(itsm(403, body)) as port, pytest.raises(PermanentError) as caught:
        client(api, port).write("REC1", "a note")
    text = str(caught.value)
    assert text.startswith(f"{service} 403: ")
    assert "BigPanda" not in text and SECRET not in text
    assert caught.value.service == service


def test_a_5xx_is_transient_and_names_the_service():
    busy = itsm(503, {"error": {"message": "busy"}})
    with serve_in_thread(busy) as port, pytest.raises(TransientError) as caught:
        client("servicenow", port).write("REC1", "a note")
    assert str(caught.value) == "ServiceNow 503: PATCH /api/now/table/change_request/REC1: busy"


def test_a_redirect_is_never_followed_with_the_credential():
    target_app = itsm()
    with serve_in_thread(target_app) as elsewhere:
        moved = Flask("moved")

        @moved.route("/<path:path>", methods=["GET", "POST", "PATCH"])
        def away(path: str):
            return redirect(f"http://127.0.0.1:{elsewhere}/{path}", code=307)

        with serve_in_thread(moved) as port, pytest.raises(PermanentError) as caught:
            client("jira", port).write("ITSM-1", "a note")
    assert caught.value.http_status == 307
    assert target_app.config["SEEN"] == []  # the credential never went to the other address


def test_the_read_timeout_is_the_callers_setting():
    with serve_in_thread(itsm(stall=1.0)) as port:
        started = time.monotonic()
        with pytest.raises(TransientError) as caught:
            client("servicenow", port, read_timeout=0.2).write("REC1", "a note")
        waited = time.monotonic() - started
    assert caught.value.http_status == 0 and "ReadTimeout" in caught.value.message
    assert waited < 0.9  # the caller's 0.2 s, not a built-in 20 s


def test_no_answer_at_all_is_transient():
    api = RemoteAPI("Jira", SECRET, connect_timeout=0.5, read_timeout=0.5)
    with pytest.raises(TransientError) as caught:
        api.call("GET", "http://127.0.0.1:9/rest/api/2/myself")  # discard port: refused
    assert str(caught.value).startswith("Jira no answer: GET /rest/api/2/myself: ")


def test_a_lost_lock_names_the_lock_not_a_remote_service(redis_conn):
    change = ChangeRef("servicenow", "CHG1")
    with key_lock(redis_conn, "job-a", change) as lock:
        redis_conn.delete(lock.name)  # expired, or taken over by a retry of the job
        with pytest.raises(TransientError) as caught:
            fence_of(lock)()
    text = str(caught.value)
    assert text.startswith("the change's lock: ") and "BigPanda" not in text

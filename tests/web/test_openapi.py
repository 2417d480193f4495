"""GET /openapi.json: in sync with the app's routes, valid OpenAPI 3.1, and what the app answers."""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial

import hypothesis
import pytest
import schemathesis
from bridge_harness import SERVICENOW_TOKEN, servicenow_payload
from flask import Flask
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.app import create_app
from bridge.web.openapi import document
from bridge.web.openapi_schemas import SAMPLE_KEY

ADMIN_TOKEN = "admin-test-token-not-real"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
CONVERTER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")  # <source>, <path:key> -> {source}, {key}
OPERATIONS = [
    (method.upper(), path)
    for path, item in document()["paths"].items()
    for method in item
    if method in METHODS
]
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


@pytest.fixture
def app(settings, redis_conn) -> Flask:
    """The bridge with its admin API on."""
    return create_app(replace(settings, admin_token=ADMIN_TOKEN), redis=redis_conn)


def test_document_lists_every_route_of_the_app(app):
    served_document = app.test_client().get("/openapi.json").get_json()
    documented = {
        (method.upper(), path)
        for path, item in served_document["paths"].items()
        for method in item
        if method in METHODS
    }
    served = {
        (method, CONVERTER.sub(r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.rule.startswith("/sandbox")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == served


def test_document_is_valid_openapi_3_1(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    assert schema.raw_schema["openapi"].startswith("3.1.")
    schema.validate()  # against the OpenAPI 3.1 meta-schema schemathesis ships
    loaded = list(schema.get_all_operations())  # all but /openapi.json, the schema's own path
    assert loaded
    assert not [result.err() for result in loaded if not isinstance(result, Ok)]


# Hypothesis drives schemathesis' strategies here rather than schemathesis.pytest.from_fixture:
# its lazy loader (4.32) sets Node._nodeid, which pytest 9.2 no longer has.
@pytest.mark.parametrize("run", ["anonymous", "servicenow"])
@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_app_answers_as_documented(app, run, method, path):
    """Schemathesis' cases, valid and invalid: no 5xx, and every answer as documented. The
    servicenow run sends the servicenow source's and the admin's credentials, knows a change."""
    operation = schemathesis.openapi.from_wsgi("/openapi.json", app)[path][method]
    fixed: dict = {}
    if run == "servicenow":
        _remember_sample_change(app)
        token = ADMIN_TOKEN if path.startswith("/api/") else SERVICENOW_TOKEN
        fixed["headers"] = {"Authorization": f"Bearer {token}"}
        if "{source}" in path:
            fixed["path_parameters"] = {"source": "servicenow"}
    strategies = [operation.as_strategy(mode, **fixed) for mode in MODES]
    if run == "servicenow" and path.startswith("/webhooks/"):
        case = partial(operation.Case, media_type="application/json", **fixed)
        strategies.append(_sample_changes().map(lambda body: case(body=body)))
    cases = st.one_of(*strategies, *operation.get_strategies_from_examples(**fixed))

    @hypothesis.given(case=cases)
    @hypothesis.settings(
        max_examples=200 if path.startswith("/webhooks/") else 40,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def answers_as_documented(case):
        case.call_and_validate(checks=CHECKS)

    answers_as_documented()


def _sample_changes() -> st.SearchStrategy[dict]:
    """The sample ServiceNow change, up to four of its fields replaced by any JSON value."""
    sample = servicenow_payload("servicenow_change_scheduled.json")
    finite = st.floats(allow_nan=False, allow_infinity=False)
    scalars = st.none() | st.booleans() | st.integers() | finite | st.text()
    values = st.recursive(scalars, lambda more: st.lists(more) | st.dictionaries(st.text(), more))
    changed = st.dictionaries(st.sampled_from(sorted(sample)), values, max_size=4)
    return changed.map(lambda fields: {**sample, **fields})


def _remember_sample_change(app: Flask) -> None:
    """Post the sample change whose key the document gives as example."""
    answer = app.test_client().post(
        "/webhooks/servicenow",
        json=servicenow_payload("servicenow_change_scheduled.json"),
        headers={"Authorization": f"Bearer {SERVICENOW_TOKEN}"},
    )
    assert answer.get_json()["maintenance_key"] == SAMPLE_KEY, answer.get_json()

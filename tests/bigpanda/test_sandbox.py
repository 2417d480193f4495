"""The sandbox behaves like BigPanda's Maintenance Plans V2 API, documented rules included."""

from __future__ import annotations

import json
import re

import pytest
from flask import Flask

from bridge.bigpanda.sandbox import create_sandbox

BASE = "/sandbox/resources/v2.0"
PLANS = f"{BASE}/maintenance-plans"
AUTH = {"Authorization": "Bearer tok"}
T0 = 1_800_000_000


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client(redis_conn, clock):
    app = Flask(__name__)
    app.register_blueprint(create_sandbox(redis_conn, "tok", clock=clock))
    return app.test_client()


def plan_body(**overrides):
    body = {
        "name": "CHG0001 maintenance",
        "condition": {"=": ["host", "prod-api-1"]},
        "start": T0 + 600,
        "end": T0 + 3600,
        "maintenance_key": "CHG0001",
    }
    return {**body, **overrides}


def create(client, **overrides):
    response = client.post(PLANS, json=plan_body(**overrides), headers=AUTH)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def refused(response, status, *words):
    """Assert BigPanda's error shape, with a message naming each of `words`."""
    assert response.status_code == status
    body = response.get_json()
    assert body["status"] == status
    assert all(word in body["errors"][0] for word in words), body


def seed(redis_conn, count, start, end):
    """Store `count` plans directly (the API would be slow to reach thousands)."""
    plans = {
        f"{i:08x}{'0' * 16}": json.dumps({"id": f"{i:08x}{'0' * 16}", "start": start, "end": end})
        for i in range(1, count + 1)
    }
    redis_conn.hset("sandbox:plans", mapping=plans)
    redis_conn.set("sandbox:seq", count)


def test_every_route_requires_the_bearer_token(client):
    plan = create(client)
    calls = [
        client.post(PLANS, json=plan_body()),
        client.get(PLANS, headers={"Authorization": "Bearer wrong"}),
        client.get(f"{PLANS}/{plan['id']}", headers={"Authorization": "tok"}),
        client.patch(f"{PLANS}/{plan['id']}", json={"name": "x"}),
        client.post(f"{PLANS}/{plan['id']}/stop"),
        client.delete(f"{PLANS}/{plan['id']}"),
    ]
    for response in calls:
        refused(response, 401, "Bearer")
    assert client.get(f"{PLANS}/{plan['id']}", headers=AUTH).get_json()["name"] == plan["name"]


def test_create_returns_the_stored_plan_with_bigpanda_defaults(client):
    plan = create(client)
    assert re.fullmatch(r"[0-9a-f]{24}", plan["id"])
    assert plan["status"] == "planned"
    assert plan["created_at"] == plan["updated_at"] == T0
    assert plan["time_zone"] == "UTC" and plan["frequency"] == "Once"
    assert plan["post_maintenance_action"] == "None"
    assert plan["maintenance_key"] == "CHG0001"
    assert client.get(f"{PLANS}/{plan['id']}", headers=AUTH).get_json() == plan


def test_unknown_plan_is_404(client):
    refused(client.get(f"{PLANS}/{'a' * 24}", headers=AUTH), 404, "a" * 24)
    refused(client.delete(f"{PLANS}/{'a' * 24}", headers=AUTH), 404, "not found")


def test_status_follows_the_clock(client, clock):
    plan = create(client)
    url = f"{PLANS}/{plan['id']}"
    for now, status in [(T0 + 599, "planned"), (T0 + 600, "running"), (T0 + 3600, "done")]:
        clock.now = now
        assert client.get(url, headers=AUTH).get_json()["status"] == status


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([1, 2], ["JSON object"]),
        (plan_body(name=""), ["name"]),
        ({k: v for k, v in plan_body().items() if k != "condition"}, ["condition", "required"]),
        (plan_body(start=(T0 + 600) * 1000, end=(T0 + 3600) * 1000), ["start", "milliseconds"]),
        (plan_body(end=float(T0 + 3600)), ["end", "seconds"]),
        (plan_body(start="1800000600"), ["start", "seconds"]),
        (plan_body(end=T0 + 600), ["end", "start"]),
        (plan_body(end=T0), ["end", "start"]),
        (plan_body(condition="host = a"), ["condition"]),
        (plan_body(condition={"LIKE": ["host", "a"]}), ["condition", "LIKE"]),
        (plan_body(condition={"=": ["host", "a"], "!=": ["host", "b"]}), ["condition"]),
        (plan_body(condition={"=": [1, "a"]}), ["condition.="]),
        (plan_body(condition={"=": ["host", {"type": "glob", "value": "a*"}]}), ["condition"]),
        (plan_body(condition={"IN": ["host", "a"]}), ["condition.IN"]),
        (plan_body(condition={"AND": []}), ["condition.AND"]),
        (plan_body(condition={"OR": [{"=": ["host", "a"]}, {"=": ["host"]}]}), ["OR[1]"]),
        (plan_body(frequency="daily"), ["frequency", "Daily"]),
        (plan_body(post_maintenance_action="Close"), ["post_maintenance_action"]),
        (plan_body(time_zone=3), ["time_zone"]),
        (plan_body(custom_tags=[{"name": "app"}]), ["custom_tags"]),
        (plan_body(custom_tags={"app": "esp"}), ["custom_tags"]),
        (plan_body(owner="me"), ["owner"]),
        (plan_body(status="running"), ["status"]),
    ],
)
def test_create_refuses_invalid_plans_naming_the_field(client, redis_conn, body, words):
    refused(client.post(PLANS, json=body, headers=AUTH), 400, *words)
    assert not redis_conn.exists("sandbox:plans")


def test_create_accepts_every_documented_condition_form(client):
    condition = {
        "AND": [
            {"=": ["host", "prod-api-1"]},
            {"!=": ["check", "cpu"]},
            {"===": ["priority", 1]},
            {"IN": ["service", ["web", {"type": "regex", "value": "api-*"}]]},
            {"NOT IN": ["env", ["dev", "test"]]},
            {"OR": [{"=": ["host", {"type": "formal-regex", "value": "db-[0-9]+"}]}]},
        ]
    }
    tags = [{"name": "maintenance_key", "value": "CHG0001"}]
    plan = create(client, condition=condition, custom_tags=tags, frequency="Daily")
    assert plan["condition"] == condition and plan["custom_tags"] == tags


def test_condition_limit_is_25000_characters_of_compact_json(client):
    def condition(length):
        # {"=":["host",""]} is 17 characters; "é" counts as one character, not two bytes.
        return {"=": ["host", "é" * (length - 17)]}

    assert len(json.dumps(condition(25_000), separators=(",", ":"), ensure_ascii=False)) == 25_000
    create(client, condition=condition(25_000))
    response = client.post(PLANS, json=plan_body(condition=condition(25_001)), headers=AUTH)
    refused(response, 400, "condition", "25,000")


def test_planned_plan_accepts_any_field(client):
    plan = create(client)
    url = f"{PLANS}/{plan['id']}"
    change = {"name": "renamed", "condition": {"=": ["host", "b"]}, "start": T0 + 60}
    response = client.patch(url, json=change, headers=AUTH)
    assert response.status_code == 204 and response.data == b""
    assert client.get(url, headers=AUTH).get_json().items() >= change.items()


def test_patch_validates_fields_and_the_resulting_window(client):
    url = f"{PLANS}/{create(client)['id']}"
    refused(client.patch(url, json={"end": T0 + 600}, headers=AUTH), 400, "end", "start")
    refused(client.patch(url, json={"start": 1_800_000_000_000}, headers=AUTH), 400, "millisec")
    refused(client.patch(url, json={"id": "x"}, headers=AUTH), 400, "id")
    refused(client.patch(f"{PLANS}/{'b' * 24}", json={"end": T0}, headers=AUTH), 404, "b" * 24)


def test_running_plan_accepts_only_a_new_end(client, clock):
    plan = create(client)
    url = f"{PLANS}/{plan['id']}"
    clock.now = T0 + 1000
    refused(client.patch(url, json={"name": "renamed"}, headers=AUTH), 400, "name", "running")
    response = client.patch(url, json={"condition": {"=": ["host", "b"]}}, headers=AUTH)
    refused(response, 400, "condition")
    # The bridge may resend unchanged fields alongside the new end.
    unchanged = {k: plan[k] for k in ("name", "condition", "start", "time_zone")}
    response = client.patch(url, json={**unchanged, "end": T0 + 7200}, headers=AUTH)
    assert response.status_code == 204
    stored = client.get(url, headers=AUTH).get_json()
    assert stored["end"] == T0 + 7200 and stored["name"] == plan["name"]
    assert stored["status"] == "running" and stored["updated_at"] == T0 + 1000


def test_done_plan_cannot_be_updated(client, clock):
    url = f"{PLANS}/{create(client)['id']}"
    clock.now = T0 + 3600
    refused(client.patch(url, json={"end": T0 + 7200}, headers=AUTH), 409, "done")


def test_only_running_plans_can_be_stopped(client, clock):
    url = f"{PLANS}/{create(client)['id']}"
    refused(client.post(f"{url}/stop", headers=AUTH), 409, "planned")
    clock.now = T0 + 1000
    response = client.post(f"{url}/stop", headers=AUTH)
    assert response.status_code == 204 and response.data == b""
    stopped = client.get(url, headers=AUTH).get_json()
    assert stopped["status"] == "done" and stopped["end"] == T0 + 1000
    refused(client.post(f"{url}/stop", headers=AUTH), 409, "done")


def test_delete_removes_the_plan(client):
    url = f"{PLANS}/{create(client)['id']}"
    response = client.delete(url, headers=AUTH)
    assert response.status_code == 204 and response.data == b""
    refused(client.get(url, headers=AUTH), 404, "not found")
    assert client.get(PLANS, headers=AUTH).status_code == 204


def test_empty_list_is_204_without_body(client):
    response = client.get(PLANS, headers=AUTH)
    assert response.status_code == 204 and response.data == b""


def test_list_pages_by_100_through_bigpandas_link_header(client):
    created = [create(client, name=f"plan {i}")["id"] for i in range(250)]
    seen, url, links = [], PLANS, []
    while url:
        response = client.get(url, headers=AUTH)
        assert response.status_code == 200
        page = response.get_json()
        assert isinstance(page, list) and len(page) <= 100
        seen += [plan["id"] for plan in page]
        link = response.headers.get("Link")
        links.append(link)
        # The documented target lacks /resources/v2.0: resolve it against that prefix.
        url = f"{BASE}{link[1 : link.index('>')]}" if link else None
    assert seen == created
    assert links[0] == f"</maintenance-plans?pagination=true&next={created[99]}>; rel=next"
    assert links[1] == f"</maintenance-plans?pagination=true&next={created[199]}>; rel=next"
    assert links[2] is None


def test_list_filters_on_active(client, clock):
    done = create(client, start=T0 + 10, end=T0 + 20)["id"]
    running = create(client, start=T0 + 10, end=T0 + 500)["id"]
    planned = create(client)["id"]
    clock.now = T0 + 100

    def ids(query):
        return [plan["id"] for plan in client.get(f"{PLANS}{query}", headers=AUTH).get_json()]

    assert ids("") == [done, running, planned]
    assert ids("?active=true") == [running, planned]
    assert ids("?active=false") == [done]
    refused(client.get(f"{PLANS}?active=yes", headers=AUTH), 400, "active")
    refused(client.get(f"{PLANS}?next=bogus", headers=AUTH), 400, "next")


def test_next_page_keeps_the_active_filter(client, clock):
    done = [create(client, start=T0 + 10, end=T0 + 20)["id"] for _ in range(50)]
    live = [create(client)["id"] for _ in range(101)]
    clock.now = T0 + 100
    first = client.get(f"{PLANS}?active=true", headers=AUTH)
    link = first.headers["Link"]
    assert link == f"</maintenance-plans?pagination=true&next={live[99]}&active=true>; rel=next"
    second = client.get(f"{BASE}{link[1 : link.index('>')]}", headers=AUTH)
    assert [p["id"] for p in second.get_json()] == [live[100]]
    assert "Link" not in second.headers and done[0] not in first.get_data(as_text=True)


def test_organization_limit_is_3500_live_plans(client, redis_conn):
    seed(redis_conn, 3_500, start=T0 + 60, end=T0 + 120)
    refused(client.post(PLANS, json=plan_body(), headers=AUTH), 400, "3,500")


def test_done_plans_do_not_count_toward_the_limit(client, redis_conn, clock):
    seed(redis_conn, 3_500, start=T0 - 120, end=T0 - 60)
    create(client)
    ids = sorted(redis_conn.hkeys("sandbox:plans"))
    assert len(ids) == 3_501 and ids[-1].decode().startswith(f"{3_501:08x}")

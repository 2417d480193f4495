"""End to end with the generic source: conditions split over several plans, other organizations."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from bridge_harness import bridge_settings
from scripted_bigpanda import Received, Reply, ScriptedBigPanda

from bridge.mapping.condition import MAX_CONDITION_CHARS, condition_length

TOKEN = "generic-test-token"
MAPPING = """
source: inventory
parser: generic
auth: [{type: bearer, secret_env: GENERIC_TOKEN}]
maintenance_key: "{{ id }}"
version: [revision]
cis: [{field: hosts}]
targets:
  eu: {api_url: "%(eu_url)s", api_key_env: EU_KEY}
defaults:
  start: {field: window.start, format: epoch_s}
  end: {field: window.end, format: epoch_s}
  name: "{{ id }}"
  condition: {split: true}
rules:
  - name: eu
    filter: {field: region, equals: eu}
    plan: {target: eu}
  - name: everything-else
    plan: {}
"""


@pytest.fixture
def eu():
    def created(request: Received) -> Reply:
        if request.method == "POST":
            return Reply(201, {**request.json, "id": f"eu-{len(eu_server.received)}"})
        if request.method == "GET" and request.path.endswith("maintenance-plans"):
            return Reply(204)  # the listing that rebuilds the ledger: no plans yet
        return Reply(500, {"status": 500, "errors": ["not scripted"]})

    with ScriptedBigPanda(default=created) as eu_server:
        yield eu_server


@pytest.fixture
def settings(tmp_path: Path, redis_url, bigpanda, eu):
    (tmp_path / "inventory.yaml").write_text(MAPPING % {"eu_url": eu.url})
    settings = bridge_settings(redis_url, bigpanda.url)
    secrets = {**settings.secrets, "GENERIC_TOKEN": TOKEN, "EU_KEY": "eu-key"}
    return replace(settings, mappings_dir=tmp_path, secrets=secrets)


def send(web, revision: int, hosts: list[str], region: str = "us"):
    now = int(time.time())
    change = {
        "id": "MW-7",
        "revision": revision,
        "region": region,
        "hosts": hosts,
        "window": {"start": now + 600, "end": now + 4200},
    }
    return web.post(
        "/webhooks/inventory", json=change, headers={"Authorization": f"Bearer {TOKEN}"}
    )


def hosts(count: int) -> list[str]:
    return [f"app-server-{n:05d}.datacenter-one.example.com" for n in range(count)]


def test_a_condition_too_long_for_one_plan_is_split_and_rejoined(web, work, bigpanda):
    many = hosts(1500)  # about 72,000 characters of host names

    send(web, 1, many)
    work()
    split = sorted(bigpanda.plans(), key=lambda p: p["maintenance_key"])
    send(web, 2, many[:10])
    work()
    joined = bigpanda.plans()

    assert len(split) == 3  # 1,500 names of 48 characters: three plans of up to 25,000
    assert [p["maintenance_key"] for p in split] == ["MW-7#1", "MW-7#2", "MW-7#3"]
    assert all(condition_length(p["condition"]) <= MAX_CONDITION_CHARS for p in split)
    covered = [host for p in split for host in p["condition"]["IN"][1]]
    assert sorted(covered) == sorted(many)
    assert [p["maintenance_key"] for p in joined] == ["MW-7"]  # the parts were deleted
    assert joined[0]["condition"] == {"IN": ["host", many[:10]]}


def test_a_rule_can_send_its_plan_to_another_organization(web, work, bigpanda, eu):
    answer = send(web, 1, hosts(2), region="eu")
    work()

    assert answer.status_code == 202
    assert bigpanda.plans() == []
    [create] = [r for r in eu.received if r.method != "GET"]
    assert (create.method, create.path) == ("POST", "/resources/v2.0/maintenance-plans")
    assert create.headers["Authorization"] == "Bearer eu-key"
    assert create.json["maintenance_key"] == "MW-7"

"""The shipped alert rules and dashboard name only series the bridge serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from bridge_harness import SERVICENOW_TOKEN, servicenow_payload
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).parent.parent / "deploy"
SERIES = re.compile(r"\bbridge_[a-z_]+")


def served(web, work) -> set[str]:
    """Every sample name /metrics serves once a change went through."""
    auth = {"Authorization": f"Bearer {SERVICENOW_TOKEN}"}
    payload = servicenow_payload("servicenow_change_scheduled.json")
    assert web.post("/webhooks/servicenow", json=payload, headers=auth).status_code == 202
    work()
    text = web.get("/metrics").get_data(as_text=True)
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_alert_rule_names_served_series(web, work):
    rules = yaml.safe_load((DEPLOY / "prometheus-rules.yaml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    named = {name for expr in exprs for name in SERIES.findall(expr)}

    assert len(exprs) >= 5
    assert named and named <= served(web, work), named - served(web, work)


def test_every_dashboard_panel_names_served_series(web, work):
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in exprs for name in SERIES.findall(expr)}

    assert named and named <= served(web, work), named - served(web, work)

"""Settings from the environment: each variable read once, an invalid one named."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.app import create_app
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.mapping.loader import check_mappings, load_mappings
from bridge.state.store import connect

MAPPINGS = Path(__file__).parent.parent / "mappings"
SERVICENOW_ONLY = {"SERVICENOW_WEBHOOK_TOKEN": "servicenow-only-token"}


def test_bridge_sources_names_the_sources_to_serve():
    assert Settings.from_env({}).sources is None
    assert Settings.from_env({"BRIDGE_SOURCES": "servicenow"}).sources == {"servicenow"}
    assert Settings.from_env({"BRIDGE_SOURCES": " jira , servicenow,"}).sources == {
        "jira",
        "servicenow",
    }


@pytest.mark.parametrize("raw", [",", "Service Now", "jira;servicenow"])
def test_bridge_sources_of_anything_but_names_is_refused(raw):
    with pytest.raises(ConfigError, match="BRIDGE_SOURCES"):
        Settings.from_env({"BRIDGE_SOURCES": raw})


def test_a_servicenow_only_deployment_needs_no_jira_secret():
    mappings = load_mappings(MAPPINGS, SERVICENOW_ONLY, {"servicenow"})
    assert sorted(mappings) == ["servicenow"]
    errors, files = check_mappings(MAPPINGS, SERVICENOW_ONLY, {"servicenow"})
    assert (errors, files) == ([], [str(MAPPINGS / "servicenow.yaml")])


def test_a_named_source_with_a_missing_secret_still_refuses_to_start():
    with pytest.raises(ConfigError, match="JIRA_WEBHOOK_SECRET is not set"):
        load_mappings(MAPPINGS, SERVICENOW_ONLY, {"servicenow", "jira"})


def test_a_named_source_no_file_defines_is_refused():
    with pytest.raises(ConfigError, match="BRIDGE_SOURCES names 'remedy'"):
        load_mappings(MAPPINGS, SERVICENOW_ONLY, {"servicenow", "remedy"})


def test_an_invalid_file_of_an_unnamed_source_is_not_loaded(tmp_path):
    shutil.copy(MAPPINGS / "servicenow.yaml", tmp_path)
    (tmp_path / "other.yaml").write_text("source: other\nparser: nope\n")  # invalid
    with pytest.raises(ConfigError):
        load_mappings(tmp_path, SERVICENOW_ONLY, None)
    assert sorted(load_mappings(tmp_path, SERVICENOW_ONLY, {"servicenow"})) == ["servicenow"]


def test_a_file_whose_source_cannot_be_read_is_still_reported(tmp_path):
    shutil.copy(MAPPINGS / "servicenow.yaml", tmp_path)
    (tmp_path / "broken.yaml").write_text("source: jira\nrules: [oops\n")  # not YAML
    with pytest.raises(ConfigError, match=r"broken\.yaml: cannot read YAML"):
        load_mappings(tmp_path, SERVICENOW_ONLY, {"servicenow"})


def test_an_unnamed_source_is_a_404(settings, redis_conn):
    web = create_app(replace(settings, sources=frozenset({"servicenow"})), redis=redis_conn)
    client = web.test_client()

    answer = client.post("/webhooks/jira", json={}, headers={"X-Hub-Signature": "sha256=00"})

    assert answer.status_code == 404
    assert client.get("/readyz").json["sources"] == ["servicenow"]


def test_rediss_self_signed_certificates_are_accepted_only_when_said():
    assert Settings.from_env({}).redis_verify_tls
    assert not Settings.from_env({"REDIS_SSL_CERT_REQS": "none"}).redis_verify_tls
    with pytest.raises(ConfigError, match="REDIS_SSL_CERT_REQS"):
        Settings.from_env({"REDIS_SSL_CERT_REQS": "maybe"})
    lenient = connect("rediss://h.example.com:6380/0", verify_tls=False)
    strict = connect("rediss://h.example.com:6380/0")
    assert lenient.connection_pool.connection_kwargs["ssl_cert_reqs"] == "none"
    assert strict.connection_pool.connection_kwargs.get("ssl_cert_reqs", "required") == "required"
    plain = connect("redis://127.0.0.1:6379/0", verify_tls=False)  # no TLS: nothing to relax
    assert "ssl_cert_reqs" not in plain.connection_pool.connection_kwargs


@pytest.mark.parametrize(
    ("environ", "problem"),
    [
        ({"BRIDGE_INSTANCE": "Prod Org"}, "BRIDGE_INSTANCE"),
        ({"BRIDGE_INSTANCE": "a/b"}, "BRIDGE_INSTANCE"),
        ({"BRIDGE_DRY_RUN": "perhaps"}, "BRIDGE_DRY_RUN"),
        ({"BRIDGE_ADMIN_TOKEN": "short"}, "BRIDGE_ADMIN_TOKEN"),
    ],
)
def test_invalid_values_are_refused_naming_the_variable(environ, problem):
    with pytest.raises(ConfigError, match=problem):
        Settings.from_env(environ)


def test_instance_and_dry_run_are_read():
    settings = Settings.from_env({"BRIDGE_INSTANCE": "staging-eu", "BRIDGE_DRY_RUN": "1"})
    assert (settings.instance, settings.dry_run) == ("staging-eu", True)
    assert (Settings.from_env({}).instance, Settings.from_env({}).dry_run) == ("default", False)

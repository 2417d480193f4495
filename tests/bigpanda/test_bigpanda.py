"""The BigPanda client over real HTTP against a scripted fake: paths, paging, error classes."""

from __future__ import annotations

import logging
from email.utils import formatdate

import pytest
from scripted_bigpanda import ScriptedBigPanda

from bridge.bigpanda.client import BigPandaClient, plan_from_api
from bridge.errors import ConfigError, PermanentError, TransientError

TOKEN = "s3cret-user-api-key"
NOW = 1_750_000_000
PLANS = "/resources/v2.0/maintenance-plans"


def plan_json(plan_id: str = "64f0b24f340000bbd269595c", **extra) -> dict:
    body = {
        "id": plan_id,
        "status": "planned",
        "name": "CHG001 maintenance",
        "condition": {"=": ["host", "web-1"]},
        "start": NOW + 600,
        "end": NOW + 4200,
        "maintenance_key": "CHG001",
    }
    return body | extra


@pytest.fixture
def bigpanda():
    with ScriptedBigPanda() as server:
        yield server


@pytest.fixture
def client(bigpanda):
    return BigPandaClient(bigpanda.url, TOKEN, read_timeout=2.0, clock=lambda: NOW)


def test_every_call_carries_the_bearer_token_and_json_headers(bigpanda, client):
    bigpanda.reply(201, plan_json())
    client.create({"name": "x"})
    headers = bigpanda.received[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/json"
    assert headers["Content-Type"] == "application/json"
    assert "bridge" in headers["User-Agent"]


def test_create_accepts_201_with_a_bare_plan(bigpanda, client):
    bigpanda.reply(201, plan_json("abc"))
    plan = client.create({"name": "CHG001 maintenance"})
    assert (plan.id, plan.status, plan.maintenance_key) == ("abc", "planned", "CHG001")
    assert bigpanda.paths() == [f"POST {PLANS}"]
    assert bigpanda.received[0].json == {"name": "CHG001 maintenance"}


def test_create_accepts_200_with_the_plan_wrapped_in_data(bigpanda, client):
    bigpanda.reply(200, {"status": 200, "data": plan_json(12345)})
    assert client.create({}).id == "12345"


@pytest.mark.parametrize(
    "body", [None, b"<html>ok</html>", {"data": {"name": "no id"}}, [plan_json()]]
)
def test_create_refuses_a_2xx_answer_that_is_not_a_plan(bigpanda, client, body):
    bigpanda.reply(201, body)
    with pytest.raises(PermanentError):
        client.create({})


def test_get_reads_a_plan_and_404_means_none(bigpanda, client):
    bigpanda.reply(200, plan_json("p1", status="in progress")).reply(404, {"status": 404})
    assert client.get("p1").status == "running"
    assert client.get("gone") is None
    assert bigpanda.paths() == [f"GET {PLANS}/p1", f"GET {PLANS}/gone"]


def test_update_stop_delete_use_the_documented_paths(bigpanda, client):
    bigpanda.reply(204).reply(200, {"status": 204, "data": {}}).reply(204).reply(204)
    client.update("p1", {"end": NOW + 60})
    client.update("p1", {"end": NOW + 120})
    client.stop("p1")
    client.delete("p1")
    assert bigpanda.paths() == [
        f"PATCH {PLANS}/p1",
        f"PATCH {PLANS}/p1",
        f"POST {PLANS}/p1/stop",
        f"DELETE {PLANS}/p1",
    ]
    assert bigpanda.received[0].json == {"end": NOW + 60}


def test_delete_of_an_unknown_plan_counts_as_deleted(bigpanda, client):
    bigpanda.reply(404, {"status": 404, "errors": ["not found"]})
    assert client.delete("gone") is None


def test_update_of_an_unknown_plan_is_permanent(bigpanda, client):
    bigpanda.reply(404, {"status": 404, "errors": ["Plan not found"]})
    with pytest.raises(PermanentError) as caught:
        client.update("gone", {"end": NOW})
    assert caught.value.http_status == 404
    assert "Plan not found" in caught.value.message


def test_plan_ids_are_quoted_into_one_path_segment(bigpanda, client):
    bigpanda.reply(204)
    client.delete("a/../b?c")
    assert bigpanda.paths() == [f"DELETE {PLANS}/a%2F..%2Fb%3Fc"]


def three_pages(bigpanda: ScriptedBigPanda, link: str = "/maintenance-plans") -> None:
    for page, token in (("1", "abc"), ("2", "def")):
        next_link = f"<{link}?pagination=true&next={token}>; rel=next"
        bigpanda.reply(200, [plan_json(f"p{page}")], headers={"Link": next_link})
    bigpanda.reply(200, [plan_json("p3"), plan_json("p4")])


@pytest.mark.parametrize("prefix", ["", "/sandbox"])
def test_list_follows_every_documented_relative_link(bigpanda, prefix):
    three_pages(bigpanda)
    client = BigPandaClient(bigpanda.url + prefix + "/", TOKEN, clock=lambda: NOW)
    assert [plan.id for plan in client.list_plans()] == ["p1", "p2", "p3", "p4"]
    assert bigpanda.paths() == [
        f"GET {prefix}{PLANS}",
        f"GET {prefix}{PLANS}?pagination=true&next=abc",
        f"GET {prefix}{PLANS}?pagination=true&next=def",
    ]


@pytest.mark.parametrize("link", [PLANS, "/sandbox" + PLANS, "{url}/sandbox" + PLANS])
def test_list_follows_links_that_name_the_full_path(bigpanda, link):
    three_pages(bigpanda, link.format(url=bigpanda.url))
    client = BigPandaClient(bigpanda.url + "/sandbox", TOKEN, clock=lambda: NOW)
    assert len(list(client.list_plans())) == 4
    assert bigpanda.paths()[1] == f"GET /sandbox{PLANS}?pagination=true&next=abc"


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example.com/resources/v2.0/maintenance-plans?next=abc",
        "{scheme_swapped}/resources/v2.0/maintenance-plans?next=abc",
        "http://localhost:{port}/resources/v2.0/maintenance-plans?next=abc",  # another host name
    ],
)
def test_list_never_follows_a_link_off_the_configured_host(bigpanda, client, link):
    port = bigpanda.url.rsplit(":", 1)[1]
    target = link.format(scheme_swapped=bigpanda.url.replace("http://", "https://"), port=port)
    bigpanda.reply(200, [plan_json("p1")], headers={"Link": f"<{target}>; rel=next"})

    with pytest.raises(PermanentError, match="next page is not on"):
        list(client.list_plans())

    assert len(bigpanda.received) == 1  # the key was sent nowhere else


@pytest.mark.parametrize(
    "url",
    ["http://api.bigpanda.io", "http://10.0.0.5:8080", "ftp://api.bigpanda.io", "api.bigpanda.io"],
)
def test_an_api_url_that_is_not_https_off_loopback_is_refused(url):
    with pytest.raises(ConfigError, match="must use https"):
        BigPandaClient(url, TOKEN)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.bigpanda.io",
        "http://127.0.0.1:5000/sandbox",
        "http://localhost:1",
        "http://[::1]:5",
    ],
)
def test_https_and_loopback_urls_are_accepted(url):
    BigPandaClient(url, TOKEN)


def test_list_204_means_no_plans(bigpanda, client):
    bigpanda.reply(204)
    assert list(client.list_plans()) == []


def test_list_accepts_an_array_wrapped_in_data(bigpanda, client):
    bigpanda.reply(200, {"data": [plan_json("p1")]})
    assert [plan.id for plan in client.list_plans()] == ["p1"]


def test_list_refuses_an_answer_that_is_not_an_array(bigpanda, client):
    bigpanda.reply(200, {"plans": []})
    with pytest.raises(PermanentError, match="array"):
        list(client.list_plans())


def test_list_stops_on_a_link_loop_naming_the_url(bigpanda, client):
    loop = {"Link": "</maintenance-plans?pagination=true&next=same>; rel=next"}
    bigpanda.reply(200, [plan_json("p1")], headers=loop)
    bigpanda.reply(200, [plan_json("p2")], headers=loop)
    with pytest.raises(PermanentError, match="next=same"):
        list(client.list_plans())
    assert len(bigpanda.received) == 2


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("running", "running"),
        ("in progress", "running"),
        ("Active", "running"),
        ("live", "running"),
        ("planned", "planned"),
        ("done", "ended"),
        ("expired", "ended"),
    ],
)
def test_status_is_read_tolerantly(status, expected):
    assert plan_from_api(plan_json(status=status), NOW).status == expected


@pytest.mark.parametrize(
    ("now", "expected"), [(NOW, "planned"), (NOW + 600, "running"), (NOW + 4200, "ended")]
)
@pytest.mark.parametrize("status", ["paused", None])
def test_unknown_status_is_judged_by_the_clock(now, expected, status):
    assert plan_from_api(plan_json(status=status), now).status == expected


def test_plan_fields_are_normalized_and_the_id_is_a_string():
    plan = plan_from_api(plan_json(7, custom_tags=[{"name": "b", "value": "2"}]), NOW)
    assert plan.id == "7"
    assert plan.fields["time_zone"] == "UTC"
    assert plan.fields["custom_tags"] == [("b", "2")]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_rate_limits_are_transient(bigpanda, client, status):
    bigpanda.reply(status, {"status": status, "errors": ["try later"]})
    with pytest.raises(TransientError) as caught:
        client.get("p1")
    assert caught.value.http_status == status
    assert caught.value.retry_after is None
    assert "try later" in str(caught.value)


def test_retry_after_in_seconds_is_kept(bigpanda, client):
    bigpanda.reply(429, {"status": 429, "errors": ["slow down"]}, headers={"Retry-After": "7"})
    with pytest.raises(TransientError) as caught:
        client.create({})
    assert caught.value.retry_after == 7.0


def test_retry_after_as_http_date_becomes_seconds_from_now(bigpanda, client):
    bigpanda.reply(503, headers={"Retry-After": formatdate(NOW + 30, usegmt=True)})
    with pytest.raises(TransientError) as caught:
        client.get("p1")
    assert caught.value.retry_after == 30.0


def test_a_slow_answer_is_a_transient_timeout(bigpanda):
    bigpanda.reply(200, plan_json(), delay=1.0)
    client = BigPandaClient(bigpanda.url, TOKEN, read_timeout=0.3)
    with pytest.raises(TransientError) as caught:
        client.get("p1")
    assert caught.value.http_status == 0


def test_a_dropped_connection_is_transient(bigpanda, client):
    bigpanda.drop()
    with pytest.raises(TransientError) as caught:
        client.create({"name": "x"})
    assert caught.value.http_status == 0


def test_a_body_cut_short_is_transient(bigpanda, client):
    cut = {"Content-Length": "500", "Connection": "close"}
    bigpanda.reply(200, b'[{"id": "p1", "na', headers=cut)
    with pytest.raises(TransientError) as caught:
        list(client.list_plans())
    assert caught.value.http_status == 0


def test_nobody_listening_is_transient():
    with ScriptedBigPanda() as gone:
        url = gone.url
    with pytest.raises(TransientError):
        BigPandaClient(url, TOKEN, connect_timeout=0.5).get("p1")


def test_a_bad_request_is_permanent_with_bigpandas_message(bigpanda, client):
    bigpanda.reply(400, {"status": 400, "errors": ["condition: too long", "name: missing"]})
    with pytest.raises(PermanentError) as caught:
        client.create({})
    assert caught.value.http_status == 400
    assert caught.value.message.endswith("condition: too long; name: missing")


def test_an_error_without_bigpanda_json_keeps_a_short_body(bigpanda, client):
    bigpanda.reply(403, b"<html>" + b"forbidden " * 100 + b"</html>")
    with pytest.raises(PermanentError) as caught:
        client.get("p1")
    assert "forbidden" in caught.value.message
    assert len(caught.value.message) < 300


@pytest.mark.parametrize(
    "script",
    [
        lambda s: s.reply(401, {"status": 401, "errors": [f"bad token {TOKEN}"]}),
        lambda s: s.reply(500, f"Bearer {TOKEN}".encode()),
        lambda s: s.drop(),
        lambda s: s.reply(200, delay=1.0),
    ],
)
def test_the_token_never_appears_in_an_error(bigpanda, script):
    script(bigpanda)
    client = BigPandaClient(bigpanda.url, TOKEN, read_timeout=0.3)
    with pytest.raises((TransientError, PermanentError)) as caught:
        client.get("p1")
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


def test_a_redirect_is_not_followed(bigpanda, client):
    bigpanda.reply(302, headers={"Location": "http://127.0.0.1:9/elsewhere"})
    with pytest.raises(PermanentError) as caught:
        client.create({})
    assert caught.value.http_status == 302
    assert len(bigpanda.received) == 1


def test_each_call_is_one_log_line_with_method_status_and_duration(bigpanda, client, caplog):
    bigpanda.reply(204)
    with caplog.at_level(logging.INFO, logger="bridge.bigpanda.client"):
        client.stop("p1")
    (record,) = [r for r in caplog.records if r.name == "bridge.bigpanda.client"]
    assert record.getMessage() == "bigpanda call"
    fields = dict(record.fields)
    assert 0 < float(fields.pop("duration_ms")) < 5000  # a measured call, in milliseconds
    assert fields == {"method": "POST", "path": f"{PLANS}/p1/stop", "status": "204"}
    assert TOKEN not in caplog.text


def test_an_observer_sees_each_call_and_each_network_error(bigpanda):
    seen = []
    client = BigPandaClient(
        bigpanda.url, TOKEN, read_timeout=0.2, observer=lambda *call: seen.append(call)
    )
    bigpanda.reply(201, plan_json()).reply(200, plan_json(), delay=1.0)
    client.create({"name": "x"})
    with pytest.raises(TransientError):
        client.get("p1")
    assert [(method, status) for method, status, _ in seen] == [
        ("POST", "201"),
        ("GET", "ReadTimeout"),
    ]
    assert seen[0][2] < 1.0  # the create, answered at once
    assert seen[1][2] >= 0.2  # the read that timed out took its whole read timeout


def test_the_client_never_retries(bigpanda, client):
    bigpanda.reply(503).reply(201, plan_json())
    with pytest.raises(TransientError):
        client.create({})
    assert len(bigpanda.received) == 1


def test_a_dropped_create_is_not_resent(bigpanda, client):
    bigpanda.drop().reply(201, plan_json())
    with pytest.raises(TransientError):
        client.create({})
    assert len(bigpanda.received) == 1

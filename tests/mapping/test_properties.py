"""Property tests: arbitrary input never crashes a parser or the mapping loader."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import yaml
from bridge_harness import json_values as any_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.errors import ConfigError, InvalidChange
from bridge.mapping.condition import matches_everything
from bridge.mapping.extract import read_change
from bridge.mapping.loader import load_file, load_mappings
from bridge.mapping.rules import evaluate
from bridge.model import Change, plans_of
from bridge.sources import PARSERS

SHIPPED = load_mappings(Path(__file__).parent.parent.parent / "mappings", None)
SECRETS = {"TOKEN": "secret-of-16-chars"}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = any_json()
# Keys the mapping language knows, so that generated files get past the first check.
words = st.sampled_from(
    ["source", "parser", "auth", "maintenance_key", "rules", "plan", "name", "start", "end",
     "filter", "states", "condition", "tags", "split", "defaults", "cis", "field", "type",
     "secret_env", "bearer", "none", "servicenow", "generic", "{{ number }}", "equals", "all"]
)  # fmt: skip
documents = st.recursive(
    scalars | words,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(words, inner, max_size=6),
    max_leaves=30,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(payload=st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_every_parser_returns_a_change_or_invalid_change(payload):
    for parse in PARSERS.values():
        with contextlib.suppress(InvalidChange):
            assert isinstance(parse(payload), Change)


PAYLOADS = Path(__file__).parent.parent / "payloads"
NOT_SAMPLES = {"headers_examples.json", "jira_automation_custom_body.json"}  # not issue bodies
SAMPLES = [
    (source, json.loads(path.read_text()))
    for source in ("servicenow", "jira")
    for path in sorted((PAYLOADS / source).glob("*.json"))
    if path.name not in NOT_SAMPLES
]
JUNE_2024 = 1718409600  # 2024-06-15 00:00 UTC: the samples' windows lie around it


@st.composite
def mutated_samples(draw) -> tuple[str, dict]:
    """A real sample with a few of its fields (top level, or inside `result`/`issue.fields`)
    replaced by arbitrary JSON, or removed: shapes a buggy sender could send."""
    source, sample = draw(st.sampled_from(SAMPLES))
    payload = json.loads(json.dumps(sample))
    for _ in range(draw(st.integers(0, 3))):
        record = _record(payload)
        name = draw(st.sampled_from(sorted(record)))
        if draw(st.booleans()):
            record[name] = draw(json_values)
        else:
            del record[name]
    return source, payload


def _record(payload: dict) -> dict:
    """Where a sample keeps its fields: ServiceNow's record, or the Jira issue's fields."""
    if isinstance(payload.get("result"), dict):
        return payload["result"]
    issue = payload.get("issue", payload)
    fields = issue.get("fields") if isinstance(issue, dict) else None
    return fields if isinstance(fields, dict) and fields else payload


def test_mutated_samples_reach_the_rules_and_keep_their_promises():
    """Any mutation of a real sample is refused with InvalidChange or decided; a decided plan
    has a key, a window that is not over and within the bounds, and a condition that names CIs.
    Most examples must reach rule evaluation, else the property checks nothing."""
    reached: list[bool] = []

    @FAST
    @given(case=mutated_samples(), offset=st.integers(-3 * 86400, 3 * 86400))
    def check(case, offset):
        source, payload = case
        mapping, now = SHIPPED[source], JUNE_2024 + offset
        try:
            # Received when it was sent, as far as the sender dates it (a Jira body's
            # `timestamp`): one sent over a day earlier is refused as a replay.
            sent = payload.get("timestamp")
            sent_at = sent / 1000 if isinstance(sent, int) and not isinstance(sent, bool) else None
            change = read_change(mapping, payload, now, also_at=sent_at)
            decision = evaluate(mapping, change, now).decision
        except InvalidChange:
            reached.append(False)
            return
        reached.append(True)
        assert decision.maintenance_key
        for plan in plans_of(decision).values():
            assert now < plan.end and plan.start < plan.end
            assert plan.end - plan.start <= 14 * 86400  # the shipped max_duration
            assert matches_everything(plan.condition) is None

    check()
    assert sum(reached) / len(reached) > 0.5, f"{sum(reached)} of {len(reached)} reached the rules"


@FAST
@given(document=documents)
def test_any_yaml_document_loads_or_fails_with_config_error(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("mapping") / "any.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_file(path, SECRETS)
    except ConfigError as exc:
        assert str(path) in str(exc)


@FAST
@given(text=st.text(max_size=200))
def test_any_text_loads_or_fails_with_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("mapping") / "any.yaml"
    path.write_text(text)
    try:
        load_file(path, SECRETS)
    except ConfigError as exc:
        assert str(path) in str(exc)


def test_servicenow_samples_survive_a_json_round_trip_of_every_shape():
    """The samples themselves, once more through JSON, parse with the shipped file."""
    for sample in sorted((Path(__file__).parent.parent / "payloads" / "servicenow").glob("*.json")):
        payload = json.loads(sample.read_text())
        change = read_change(SHIPPED["servicenow"], payload)
        assert change.fields["number"]

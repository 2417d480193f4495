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
from bridge.mapping.extract import read_change
from bridge.mapping.loader import load_file, load_mappings
from bridge.mapping.rules import evaluate
from bridge.model import Change
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


@FAST
@given(
    payload=st.dictionaries(st.text(max_size=12), json_values, max_size=8),
    now=st.integers(0, 2**33),
)
def test_the_shipped_mappings_decide_or_refuse_with_invalid_change(payload, now):
    for mapping in SHIPPED.values():
        with contextlib.suppress(InvalidChange):
            evaluate(mapping, read_change(mapping, payload), now)


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

"""Mapping files: read as YAML, validated by the schema, compiled into SourceMappings.
Errors name the file, the line, the rule and the field."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from marshmallow import ValidationError

from ..errors import ConfigError
from ..sources import PARSERS, Parser
from ..sources.servicenow_display import DisplayValues
from .auth_entries import Verifier, verifiers_of
from .condition import DEFAULT_CLASS, ConditionRule
from .dates import DateSpec
from .filters import Filter
from .overrun_rule import OverrunRule
from .positions import Where, describe, leaves, line_numbers
from .schema import DEFAULT_MAX_DURATION, DEFAULT_MAX_JUMP, MappingFileSchema, with_defaults
from .templates import Template
from .write_back import WriteBack


@dataclass(frozen=True)
class Target:
    """A BigPanda organization other than the default one: its URL and the env var of its key."""

    api_url: str
    api_key_env: str


@dataclass(frozen=True)
class CISource:
    """Where in a change's fields its CIs are (Jira and generic payloads)."""

    field: str
    name: str | None = None
    ci_class: str = ""
    separator: str | None = None


@dataclass(frozen=True)
class VersionField:
    """A field that orders a change's events: a counter (bounded by `max_jump` past the newest
    seen), or a time (epoch ms or s, or ISO 8601; bounded by the clock); `auto` tells by value."""

    field: str
    kind: str = "auto"  # auto, counter, epoch_ms, epoch_s, date
    max_jump: int = DEFAULT_MAX_JUMP


@dataclass(frozen=True)
class PlanRule:
    """How a rule turns a change into a plan."""

    start: DateSpec
    end: DateSpec
    pad_before: int
    pad_after: int
    name: Template
    description: Template
    custom_tags: tuple[tuple[str, Template], ...]
    condition: ConditionRule
    time_zone: str
    frequency: str
    frequency_data: Mapping[str, Any] | None
    duration_unit: str
    post_maintenance_action: str
    running_policy: str
    target: str | None
    max_duration: int = DEFAULT_MAX_DURATION  # seconds: a longer window is refused (422)
    max_cis: int | None = None  # more CIs than this is more likely a mistake than a maintenance
    overrun: OverrunRule | None = None  # let a running plan follow an overrunning change


@dataclass(frozen=True)
class Rule:
    """Which changes a rule selects, and the plan they get (None: no plan)."""

    name: str
    states: frozenset[str] | None
    filter: Filter | None
    maintenance_key: Template | None
    plan: PlanRule | None


@dataclass(frozen=True)
class SourceMapping:
    """A loaded mapping file: who may send, how to parse, which rules apply."""

    source: str
    path: Path
    parse: Parser
    verifiers: tuple[Verifier, ...]
    maintenance_key: Template
    version_fields: tuple[VersionField, ...]
    ci_sources: tuple[CISource, ...]
    targets: Mapping[str, Target]
    rules: tuple[Rule, ...]
    adopt_unmarked_plans: bool = False  # take over unmarked plans of keys its webhooks name
    delivery_id_header: str | None = None  # the sender's id of each delivery: repeats ignored
    write_back: WriteBack | None = None  # notes on the change in the sender's system
    note_record: Template | None = None  # which record of the sender a note goes on


def load_mappings(
    directory: Path, secrets: Mapping[str, str] | None, sources: Collection[str] | None = None
) -> dict[str, SourceMapping]:
    """Every `*.yaml` in `directory`, by source name; any error stops the process. With secrets
    None the files are checked without them (and accept no webhook): for previews and checks.
    With `sources` (BRIDGE_SOURCES) only the files of those sources are loaded."""
    errors, mappings = _load_all(directory, secrets, sources)
    if errors:
        more = f" (and {len(errors) - 1} more: run `bridge mappings check`)" if errors[1:] else ""
        raise ConfigError(errors[0] + more)
    return mappings


def check_mappings(
    directory: Path, secrets: Mapping[str, str] | None, sources: Collection[str] | None = None
) -> tuple[list[str], list[str]]:
    """(every error, the files that loaded) for `bridge mappings check`."""
    errors, mappings = _load_all(directory, secrets, sources)
    return errors, sorted(str(m.path) for m in mappings.values())


def _load_all(
    directory: Path, secrets: Mapping[str, str] | None, sources: Collection[str] | None
) -> tuple[list[str], dict[str, SourceMapping]]:
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not paths:
        return [f"{directory}: no mapping files (*.yaml) found"], {}
    errors: list[str] = []
    mappings: dict[str, SourceMapping] = {}
    for path in paths:
        if sources is not None and _declared_source(path) not in (*sources, None):
            continue  # a source BRIDGE_SOURCES leaves out: not loaded, its secrets not needed
        try:
            mapping = load_file(path, secrets)
        except ConfigError as exc:
            errors.extend(str(exc).split("\n"))
            continue
        if mapping.source in mappings:
            first = mappings[mapping.source].path
            errors.append(f"{path}: source: {mapping.source!r} is already defined in {first}")
            continue
        mappings[mapping.source] = mapping
    for name in sorted(set(sources or ()) - set(mappings)):
        errors.append(
            f"BRIDGE_SOURCES names {name!r}, which no mapping file in {directory} defines"
        )
    return errors, mappings


def _declared_source(path: Path) -> str | None:
    """The `source:` a file declares; None when it cannot be read (then it is loaded, so that
    its errors are reported)."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    source = document.get("source") if isinstance(document, dict) else None
    return source if isinstance(source, str) else None


def load_file(path: Path, secrets: Mapping[str, str] | None) -> SourceMapping:
    """Read, validate and compile one file; a ConfigError carries one line per error."""
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.safe_load(text)
        lines = line_numbers(yaml.compose(text))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: must be a mapping of settings, not {type(document).__name__}")
    data, errors = None, []
    try:
        data = MappingFileSchema().load(document)
    except ValidationError as exc:
        errors = [e for e in leaves(exc.messages) if not _from_defaults(e[0], document)]
    verifiers, auth_errors = verifiers_of(document.get("auth"), secrets)
    errors += auth_errors + _unknown_targets(document) + _write_back_secret(document, secrets)
    if errors or data is None:
        found = [describe(path, where, message, lines, document) for where, message in errors]
        raise ConfigError("\n".join(dict.fromkeys(found)))
    return _compile(path, data, verifiers)


def _from_defaults(where: Where, document: dict) -> bool:
    """A rule's plan error about a key the rule took from `defaults`: reported there, once."""
    if len(where) < 4 or where[0] != "rules" or where[2] != "plan" or not isinstance(where[1], int):
        return False
    rules, defaults = document.get("rules"), document.get("defaults")
    if not isinstance(rules, list) or not isinstance(defaults, dict) or where[1] >= len(rules):
        return False
    own = rules[where[1]].get("plan") if isinstance(rules[where[1]], dict) else None
    return where[3] in defaults and not (isinstance(own, dict) and where[3] in own)


def _unknown_targets(document: dict) -> list[tuple[Where, str]]:
    """Every rule whose plan names a target the file does not define under `targets:`."""
    targets = document.get("targets")
    known = set(targets) if isinstance(targets, dict) else set()
    rules = document.get("rules") if isinstance(document.get("rules"), list) else []
    defaults = document.get("defaults") if isinstance(document.get("defaults"), dict) else {}
    errors = []
    for index, rule in enumerate(rules):
        plan = with_defaults(rule, defaults).get("plan") if isinstance(rule, dict) else None
        target = plan.get("target") if isinstance(plan, dict) else None
        if isinstance(target, str) and target not in known:
            message = f"unknown target {target!r}; define it under `targets:`"
            errors.append((("rules", index, "plan", "target"), message))
    return errors


def _compile(path: Path, data: dict[str, Any], verifiers: tuple[Verifier, ...]) -> SourceMapping:
    return SourceMapping(
        source=data["source"],
        path=path,
        parse=_parser(data),
        verifiers=verifiers,
        maintenance_key=data["maintenance_key"],
        version_fields=tuple(VersionField(**entry) for entry in data.get("version") or ()),
        ci_sources=tuple(CISource(**entry) for entry in data["cis"]),
        targets={name: Target(**t) for name, t in (data.get("targets") or {}).items()},
        rules=tuple(_rule(rule) for rule in data["rules"]),
        adopt_unmarked_plans=data["adopt_unmarked_plans"],
        delivery_id_header=data.get("delivery_id_header"),
        **_write_back(data.get("write_back")),
    )


def _parser(data: dict[str, Any]) -> Parser:
    """The file's parser, told how the sender's display values read when the file says so."""
    display = data.get("display_values")
    if display is None:
        return PARSERS[data["parser"]]
    return partial(PARSERS[data["parser"]], display=DisplayValues(**display))


def _write_back_secret(
    document: dict, secrets: Mapping[str, str] | None
) -> list[tuple[Where, str]]:
    """The credential of `write_back`, like a webhook secret, must be set to start."""
    write_back = document.get("write_back")
    auth = write_back.get("auth") if isinstance(write_back, dict) else None
    name = auth.get("secret_env") if isinstance(auth, dict) else None
    if secrets is None or not isinstance(name, str) or secrets.get(name):
        return []
    return [(("write_back", "auth", "secret_env"), f"environment variable {name} is not set")]


def _write_back(data: dict[str, Any] | None) -> dict[str, Any]:
    if data is None:
        return {}
    auth = data["auth"]
    target = WriteBack(data["api"], data["url"], auth["type"], auth["secret_env"],
                       auth.get("username"), data["table"], data["rate_limit"])  # fmt: skip
    return {"write_back": target, "note_record": data["record"]}


def _rule(data: dict[str, Any]) -> Rule:
    states = data.get("states")
    return Rule(
        name=data["name"],
        states=frozenset(str(s).lower() for s in states) if states else None,
        filter=data.get("filter"),
        maintenance_key=data.get("maintenance_key"),
        plan=_plan(data["plan"]) if data["plan"] is not None else None,
    )


def _plan(plan: dict[str, Any]) -> PlanRule:
    condition = plan["condition"]
    return PlanRule(
        start=plan["start"],
        end=plan["end"],
        pad_before=plan["pad_before"],
        pad_after=plan["pad_after"],
        name=plan["name"],
        description=plan["description"],
        custom_tags=tuple(plan["custom_tags"].items()),
        condition=ConditionRule(
            tags=condition["tags"] or {DEFAULT_CLASS: ("host",)},
            match=condition["match"],
            lowercase_values=condition["lowercase_values"],
            also=tuple(condition["also"]),
            split=condition["split"],
        ),
        time_zone=plan["time_zone"],
        frequency=plan["frequency"],
        frequency_data=plan.get("frequency_data"),
        duration_unit=plan["duration_unit"],
        post_maintenance_action=plan["post_maintenance_action"],
        running_policy=plan["running_policy"],
        target=plan.get("target"),
        max_duration=plan["max_duration"],
        max_cis=plan.get("max_cis"),
        overrun=plan.get("overrun"),
    )

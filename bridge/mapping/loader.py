"""Mapping files: YAML read safely, validated with marshmallow, compiled into SourceMappings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate

from ..auth import Verifier, build_verifier
from ..errors import ConfigError
from ..sources import PARSERS, Parser
from .templates import Template, compile_template

NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_-]*$", error="use lowercase letters, digits, - and _")


class NoneOr(fields.Nested):
    """A nested section that may also be the word `none` (e.g. `plan: none`)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "none":
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class AuthSchema(Schema):
    type = fields.Str(
        required=True, validate=validate.OneOf(["bearer", "basic", "header", "hmac-sha256"])
    )
    secret_env = fields.Str(required=True, validate=validate.Length(min=1))
    username = fields.Str()
    header = fields.Str()
    prefix = fields.Str()
    encoding = fields.Str(validate=validate.OneOf(["hex", "base64"]))


class WindowSchema(Schema):
    start = fields.Str(required=True)
    end = fields.Str(required=True)


class ConditionSchema(Schema):
    tag = fields.Str(required=True, validate=validate.Regexp(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"))


class PlanSchema(Schema):
    window = fields.Nested(WindowSchema, required=True)
    name = fields.Str(required=True)
    description = fields.Str(load_default="")
    condition = fields.Nested(ConditionSchema, required=True)
    custom_tags = fields.Dict(keys=fields.Str(), values=fields.Str(), load_default=dict)
    post_maintenance_action = fields.Str(
        load_default="None", validate=validate.OneOf(["None", "Resolve", "Reactivate"])
    )
    running_policy = fields.Str(
        load_default="end_only", validate=validate.OneOf(["end_only", "restart"])
    )


class RuleSchema(Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1))
    states = fields.List(fields.Raw(), validate=validate.Length(min=1))
    plan = NoneOr(PlanSchema, required=True)


class MappingFileSchema(Schema):
    source = fields.Str(required=True, validate=NAME)
    parser = fields.Str(required=True, validate=validate.OneOf(sorted(PARSERS)))
    auth = fields.Raw(required=True)
    maintenance_key = fields.Str(required=True)
    rules = fields.List(fields.Nested(RuleSchema), required=True, validate=validate.Length(min=1))


@dataclass(frozen=True)
class PlanRule:
    """How a rule turns a change into a plan."""

    start_field: str
    end_field: str
    name: Template
    description: Template
    condition_tag: str
    custom_tags: tuple[tuple[str, Template], ...]
    post_maintenance_action: str
    running_policy: str


@dataclass(frozen=True)
class Rule:
    """One rule: which changes it selects, and the plan they get (None: no plan)."""

    name: str
    states: frozenset[str] | None
    plan: PlanRule | None


@dataclass(frozen=True)
class SourceMapping:
    """A loaded mapping file: who may send, how to parse, which rules apply."""

    source: str
    path: Path
    parse: Parser
    verifiers: tuple[Verifier, ...]
    maintenance_key: Template
    rules: tuple[Rule, ...]


def load_mappings(directory: Path, secrets: Mapping[str, str]) -> dict[str, SourceMapping]:
    """Every `*.yaml` in `directory`, by source name; the first error stops the process."""
    errors, mappings = _load_all(directory, secrets)
    if errors:
        more = (
            f" (and {len(errors) - 1} more: run `bridge mappings check`)" if len(errors) > 1 else ""
        )
        raise ConfigError(errors[0] + more)
    return mappings


def check_mappings(directory: Path, secrets: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(errors, checked file names) for `bridge mappings check`."""
    errors, mappings = _load_all(directory, secrets)
    return errors, sorted(str(m.path) for m in mappings.values())


def _load_all(
    directory: Path, secrets: Mapping[str, str]
) -> tuple[list[str], dict[str, SourceMapping]]:
    paths = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not paths:
        return [f"{directory}: no mapping files (*.yaml) found"], {}
    errors: list[str] = []
    mappings: dict[str, SourceMapping] = {}
    for path in paths:
        try:
            mapping = load_file(path, secrets)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        if mapping.source in mappings:
            errors.append(
                f"{path}: source: {mapping.source!r} is already defined in "
                f"{mappings[mapping.source].path}"
            )
            continue
        mappings[mapping.source] = mapping
    return errors, mappings


def load_file(path: Path, secrets: Mapping[str, str]) -> SourceMapping:
    """Read, validate and compile one mapping file; errors name the file and the field."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: the file must be a mapping of settings, not {type(document).__name__}"
        )
    try:
        data = MappingFileSchema().load(document)
        return _compile(path, data, secrets)
    except ValidationError as exc:
        field, message = _first_message(exc.messages)
        raise ConfigError(f"{path}: {field}: {message}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _compile(path: Path, data: dict[str, Any], secrets: Mapping[str, str]) -> SourceMapping:
    return SourceMapping(
        source=data["source"],
        path=path,
        parse=PARSERS[data["parser"]],
        verifiers=_verifiers(path, data["auth"], secrets),
        maintenance_key=_template(data["maintenance_key"], "maintenance_key"),
        rules=tuple(_rule(index, rule) for index, rule in enumerate(data["rules"])),
    )


def _verifiers(path: Path, auth: Any, secrets: Mapping[str, str]) -> tuple[Verifier, ...]:
    """`auth: none` must be said explicitly; otherwise a list of methods, any of which passes."""
    if auth == "none":
        return ()
    entries = auth if isinstance(auth, list) else [auth]
    if not entries:
        raise ValidationError({"auth": ["list at least one method, or say `auth: none`"]})
    verifiers = []
    for index, entry in enumerate(entries):
        try:
            config = AuthSchema().load(entry if isinstance(entry, dict) else {})
        except ValidationError as exc:
            raise ValidationError({f"auth[{index}]": exc.messages}) from None
        if config["type"] == "header" and not config.get("header"):
            raise ValidationError(
                {f"auth[{index}].header": ["name the header that carries the token"]}
            )
        verifiers.append(build_verifier(config, secrets, f"{path}: auth[{index}]"))
    return tuple(verifiers)


def _rule(index: int, data: dict[str, Any]) -> Rule:
    states = data.get("states")
    plan = data["plan"]
    where = f"rules[{index}] ({data['name']})"
    return Rule(
        name=data["name"],
        states=frozenset(str(s).lower() for s in states) if states else None,
        plan=_plan_rule(where, plan) if plan is not None else None,
    )


def _plan_rule(where: str, plan: dict[str, Any]) -> PlanRule:
    return PlanRule(
        start_field=plan["window"]["start"],
        end_field=plan["window"]["end"],
        name=_template(plan["name"], f"{where} plan name"),
        description=_template(plan["description"], f"{where} plan description"),
        condition_tag=plan["condition"]["tag"],
        custom_tags=tuple(
            (tag.lower(), _template(value, f"{where} custom tag {tag}"))
            for tag, value in plan["custom_tags"].items()
        ),
        post_maintenance_action=plan["post_maintenance_action"],
        running_policy=plan["running_policy"],
    )


def _template(source: str, used_for: str) -> Template:
    try:
        return compile_template(source, used_for)
    except ValueError as exc:
        raise ValueError(f"{used_for}: {exc}") from None


def _first_message(messages: Any, prefix: str = "") -> tuple[str, str]:
    """The first leaf of marshmallow's nested error dict, as ("rules.0.plan.name", "...")."""
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        return _first_message(value, f"{prefix}.{key}" if prefix else str(key))
    if isinstance(messages, list) and messages:
        first = messages[0]
        if isinstance(first, dict | list):
            return _first_message(first, prefix)
        return prefix, str(first)
    return prefix, str(messages)

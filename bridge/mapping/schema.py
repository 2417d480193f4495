"""The mapping-file language as marshmallow schemas; values are compiled as they are loaded,
so a bad template, filter, date spec or condition is reported at its place in the file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import (
    INCLUDE,
    Schema,
    ValidationError,
    fields,
    post_load,
    pre_load,
    validate,
    validates,
    validates_schema,
)

from ..config import insecure_url
from ..model import OWNER_TAG
from ..sources import PARSERS
from ..sources.servicenow_display import DATE_FORMATS, TIME_FORMATS
from .condition import matches_everything, validate_bpql
from .dates import compile_date_spec, parse_duration
from .filter_spec import compile_filter
from .overrun_rule import DEFAULT_NEAR_SECONDS, OverrunRule
from .templates import compile_template

DEFAULT_MAX_DURATION = 14 * 86400  # a change window longer than two weeks is refused (422)
DEFAULT_MAX_JUMP = 10_000  # a version counter may move this far past the newest seen
VERSION_KINDS = ("auto", "counter", "epoch_ms", "epoch_s", "date")


def _https_only(url: str) -> None:
    if insecure_url(url):
        raise ValidationError("must use https (plain http only on loopback): credentials go there")


NAME = validate.Regexp(r"^[a-z0-9][a-z0-9_-]*$", error="use lowercase letters, digits, - and _")
TAG = validate.Regexp(
    r"^[a-z][a-z0-9_-]{0,63}$",
    error="BigPanda tag names start with a lowercase letter and hold only a-z, 0-9, _ and -",
)


class Compiled(fields.Field):
    """A value compiled at load; the compiler's ValueError becomes an error at this place."""

    def __init__(self, compile: Callable[[Any], Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.compile = compile

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        try:
            return self.compile(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def template(**kwargs: Any) -> Compiled:
    return Compiled(lambda source: compile_template(_text(source)), **kwargs)


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be text (a template)")
    return str(value)


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown time zone {name!r} (use an IANA name)") from None
    return name


def _tags(value: Any) -> tuple[str, ...]:
    names = value if isinstance(value, list) else [value]
    for name in names:
        TAG(name) if isinstance(name, str) else _fail("tag names must be text")
    return tuple(names)


def _clause(value: Any) -> dict:
    validate_bpql(value, "clause")
    for tag in _clause_tags(value):
        TAG(tag)
    reason = matches_everything(value)
    if reason:
        raise ValueError(f"clause would match every alert ({reason})")
    return value


def _custom_tag_name(name: str) -> None:
    TAG(name)
    if name == OWNER_TAG:
        raise ValidationError(f"{OWNER_TAG} is the bridge's ownership mark: it sets it itself")


def _clause_tags(node: dict) -> list[str]:
    ((op, args),) = node.items()
    if op in ("AND", "OR"):
        return [tag for sub in args for tag in _clause_tags(sub)]
    return [args[0]]


def _fail(message: str) -> None:
    raise ValidationError(message)


class AuthSchema(Schema):
    type = fields.Str(
        required=True, validate=validate.OneOf(["bearer", "basic", "header", "hmac-sha256"])
    )
    secret_env = fields.Str(required=True, validate=validate.Length(min=1))
    previous_secret_env = fields.Str(validate=validate.Length(min=1))  # during a rotation
    optional = fields.Bool(load_default=False)  # off while its secret is unset
    username = fields.Str()
    header = fields.Str()
    prefix = fields.Str()
    encoding = fields.Str(validate=validate.OneOf(["hex", "base64"]))

    @validates_schema
    def _header_named(self, data: dict, **kwargs: Any) -> None:
        if data["type"] == "header" and not data.get("header"):
            raise ValidationError("name the header that carries the token", "header")


class CISourceSchema(Schema):
    field = fields.Str(required=True)
    name = fields.Str()  # the key of each list item that holds the CI's name
    ci_class = fields.Str(data_key="class", load_default="")
    separator = fields.Str(validate=validate.Length(min=1))  # "a, b" -> two CIs


class TargetSchema(Schema):
    api_url = fields.Url(required=True, require_tld=False, validate=_https_only)
    api_key_env = fields.Str(required=True, validate=validate.Length(min=1))


class ConditionSchema(Schema):
    tags = fields.Dict(keys=fields.Str(), values=Compiled(_tags), load_default=lambda: {})
    match = fields.Str(load_default="exact", validate=validate.OneOf(["exact", "prefix"]))
    lowercase_values = fields.Bool(load_default=False)
    also = fields.List(Compiled(_clause), load_default=list)
    split = fields.Bool(load_default=False)


class FrequencyDataSchema(Schema):
    class Meta:
        unknown = INCLUDE  # BigPanda's other frequency_data fields pass through as written

    duration = Compiled(parse_duration)


class OverrunSchema(Schema):
    """While the change is in `states` and its running plan's end is `near`, extend the end by
    `step`, up to `cap` past the planned end."""

    states = fields.List(fields.Raw(), required=True, validate=validate.Length(min=1))
    step = Compiled(parse_duration, required=True)
    cap = Compiled(parse_duration, required=True)
    near = Compiled(parse_duration, load_default=DEFAULT_NEAR_SECONDS)

    @validates_schema
    def _positive(self, data: dict, **kwargs: Any) -> None:
        for name in ("step", "cap", "near"):
            if name in data and data[name] <= 0:
                raise ValidationError("must be a positive duration", name)

    @post_load
    def _rule(self, data: dict, **kwargs: Any) -> OverrunRule:
        states = frozenset(str(state).lower() for state in data["states"])
        return OverrunRule(states, data["step"], data["cap"], data["near"])


class PlanSchema(Schema):
    start = Compiled(compile_date_spec, required=True)
    end = Compiled(compile_date_spec, required=True)
    pad_before = Compiled(parse_duration, load_default=0)
    pad_after = Compiled(parse_duration, load_default=0)
    name = template(required=True)
    description = template(load_default=lambda: compile_template(""))
    custom_tags = fields.Dict(
        keys=fields.Str(validate=_custom_tag_name), values=template(), load_default=dict
    )
    condition = fields.Nested(ConditionSchema, load_default=lambda: ConditionSchema().load({}))
    time_zone = fields.Str(load_default="UTC", validate=_zone)
    frequency = fields.Str(
        load_default="Once", validate=validate.OneOf(["Once", "Daily", "Weekly", "Monthly"])
    )
    frequency_data = fields.Nested(FrequencyDataSchema)
    duration_unit = fields.Str(load_default="ms", validate=validate.OneOf(["ms", "s"]))
    post_maintenance_action = fields.Str(
        load_default="None", validate=validate.OneOf(["None", "Resolve", "Reactivate"])
    )
    running_policy = fields.Str(
        load_default="end_only", validate=validate.OneOf(["end_only", "restart"])
    )
    target = fields.Str(validate=NAME)
    max_duration = Compiled(parse_duration, load_default=DEFAULT_MAX_DURATION)
    max_cis = fields.Int(strict=True, validate=validate.Range(min=1))
    overrun = fields.Nested(OverrunSchema)

    @validates("max_duration")
    def _positive_duration(self, value: int, **kwargs: Any) -> None:
        if value <= 0:
            raise ValidationError("must be a positive duration, e.g. 14d")


class VersionFieldSchema(Schema):
    """`version:` entries: a field name, or {field, as, max_jump}."""

    field = fields.Str(required=True, validate=validate.Length(min=1))
    kind = fields.Str(data_key="as", load_default="auto", validate=validate.OneOf(VERSION_KINDS))
    max_jump = fields.Int(strict=True, load_default=DEFAULT_MAX_JUMP,
                          validate=validate.Range(min=1, max=10**15))  # fmt: skip

    @pre_load
    def _name_alone(self, data: Any, **kwargs: Any) -> Any:
        return {"field": data} if isinstance(data, str) else data


class DisplayValuesSchema(Schema):
    """How the ServiceNow integration user's display values read (its profile's settings)."""

    time_zone = fields.Str(required=True, validate=_zone)
    date_format = fields.Str(load_default="yyyy-MM-dd", validate=validate.OneOf(DATE_FORMATS))
    time_format = fields.Str(load_default="HH:mm:ss", validate=validate.OneOf(TIME_FORMATS))


class PlanOrNone(fields.Nested):
    """A rule's plan, or the word `none` (changes this rule selects get no plan)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value == "none":
            return None
        return super()._deserialize(value, attr, data, **kwargs)


class RuleSchema(Schema):
    name = fields.Str(required=True, validate=validate.Length(min=1))
    states = fields.List(fields.Raw(), validate=validate.Length(min=1))
    filter = Compiled(compile_filter)
    maintenance_key = template()
    plan = PlanOrNone(PlanSchema, required=True)


class WriteBackAuthSchema(Schema):
    type = fields.Str(required=True, validate=validate.OneOf(["basic", "bearer"]))
    secret_env = fields.Str(required=True, validate=validate.Length(min=1))
    username = fields.Str()  # basic: ServiceNow's integration user, or a Jira Cloud email


class WriteBackSchema(Schema):
    """Notes on the change in the sender's system (itsm/notes.py)."""

    api = fields.Str(required=True, validate=validate.OneOf(["servicenow", "jira"]))
    url = fields.Url(
        required=True, require_tld=False, schemes={"https", "http"}, validate=_https_only
    )
    record = template(required=True)  # the record a note goes on: "{{ sys_id }}", "{{ key }}"
    auth = fields.Nested(WriteBackAuthSchema, required=True)
    table = fields.Str(load_default="change_request", validate=NAME)
    rate_limit = fields.Float(load_default=2.0, validate=validate.Range(min=0.1, max=100))


class MappingFileSchema(Schema):
    source = fields.Str(required=True, validate=NAME)
    parser = fields.Str(required=True, validate=validate.OneOf(sorted(PARSERS)))
    auth = fields.Raw()  # checked by the loader, entry by entry, with the secrets
    maintenance_key = template(required=True)
    version = fields.List(fields.Nested(VersionFieldSchema), validate=validate.Length(min=1))
    display_values = fields.Nested(DisplayValuesSchema)
    cis = fields.List(fields.Nested(CISourceSchema), load_default=list)
    targets = fields.Dict(keys=fields.Str(validate=NAME), values=fields.Nested(TargetSchema))
    defaults = fields.Dict()
    rules = fields.List(fields.Nested(RuleSchema), required=True, validate=validate.Length(min=1))
    adopt_unmarked_plans = fields.Bool(load_default=False)
    write_back = fields.Nested(WriteBackSchema)
    delivery_id_header = fields.Str(validate=validate.Regexp(r"^[A-Za-z0-9-]{1,64}$"))

    @pre_load
    def _apply_defaults(self, data: Any, **kwargs: Any) -> Any:
        """Each rule's plan is the file's `defaults` overridden key by key (and condition and
        custom_tags entry by entry). `defaults` itself is checked on its own, at its place."""
        if not isinstance(data, dict) or not isinstance(data.get("defaults"), dict):
            return data
        rules = data.get("rules")
        if isinstance(rules, list):
            data = {**data, "rules": [with_defaults(rule, data["defaults"]) for rule in rules]}
        return data

    @validates_schema
    def _display_values_of_servicenow(self, data: dict, **kwargs: Any) -> None:
        if "display_values" in data and data.get("parser") != "servicenow":
            raise ValidationError(
                "only the servicenow parser reads display values", "display_values"
            )

    @validates("defaults")
    def _defaults_valid(self, value: dict, **kwargs: Any) -> None:
        PlanSchema(partial=True).load(value)


MERGED_SECTIONS = ("condition", "custom_tags")


def with_defaults(rule: Any, defaults: dict) -> Any:
    """A rule whose plan starts from `defaults`; sections such as `condition` merge one level."""
    if not isinstance(rule, dict) or not isinstance(rule.get("plan"), dict):
        return rule
    plan = {**defaults, **rule["plan"]}
    for section in MERGED_SECTIONS:
        if isinstance(defaults.get(section), dict) and isinstance(rule["plan"].get(section), dict):
            plan[section] = {**defaults[section], **rule["plan"][section]}
    return {**rule, "plan": plan}

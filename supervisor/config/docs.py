"""Markdown reference of every configuration key, generated from the schema.

`redis-gateway config schema --format markdown` prints it; `scripts/gen-config-docs`
writes it to docs/configuration.md, and a unit test fails when that file is stale.
Everything here is deterministic (no machine-dependent defaults), so the file only
changes when the schema does.
"""

from __future__ import annotations

import json
import typing

from pydantic import AfterValidator, BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway_worker.config import Config
from supervisor.config import schema
from supervisor.config.formats import Data
from supervisor.config.profiles import RULES
from supervisor.config.schema import Annotation

# Why a value is refused beyond its type, for the custom validators in the schema.
_VALIDATORS = {
    "_check_method": "an HTTP method (GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS)",
    "_check_origin": "'*' or an origin scheme://host[:port]",
    "_check_prefix": "a URL path starting with '/'",
    "_check_command_name": "a Redis command name (case-insensitive)",
}

_CROSS_FIELD_RULES = (
    "`auth.enabled = true` needs `auth.jwt_secret` or at least one `auth.api_keys` entry.",
    "API key names (`auth.api_keys[].name`) are unique.",
    "`observability.metrics.port` differs from `server.port` while metrics are enabled.",
    "`features.admin_endpoints` needs an admin credential (an API key with `admin = true`, "
    "or a `jwt_secret`) when auth is off.",
    "`api.upstash_prefix` and `api.webdis_prefix` differ when both protocols are enabled.",
    "`kubernetes.enabled = true` needs `kubernetes.configmap`, `kubernetes.secret` or both; "
    "`kubernetes.backoff_initial_seconds` ≤ `kubernetes.backoff_max_seconds`.",
    "`kubernetes.*` is set in the main file, a profile overlay, env or `--set`, never in a "
    "ConfigMap or secrets directory (the API source is set up before they are read).",
    "`redis.mode`: `standalone` uses `redis.url` and no `redis.nodes`; `cluster` and "
    "`sentinel` use `redis.nodes` and no `redis.url`; `cluster` needs `redis.db = 0`; "
    "`sentinel` needs `redis.sentinel_master`; `redis.sentinel_*` only with `sentinel`; "
    "`redis.tls.enabled` only with `cluster` or `sentinel` (docs/redis-topologies.md).",
)


def _type_name(annotation: Annotation) -> str:
    members = schema.members(annotation)
    optional = len(typing.get_args(annotation)) > 1 and type(None) in typing.get_args(annotation)
    names = []
    for member in members:
        if member is SecretStr:
            names.append("string (secret)")
        elif typing.get_origin(member) is typing.Literal:
            names.append("one of " + ", ".join(f"`{a}`" for a in typing.get_args(member)))
        elif typing.get_origin(member) is list:
            names.append("list of " + _type_name(typing.get_args(member)[0]))
        elif isinstance(member, type) and issubclass(member, BaseModel):
            names.append("table")
        else:
            plain: dict[object, str] = {
                int: "integer",
                float: "number",
                bool: "boolean",
                str: "string",
            }
            names.append(plain.get(member, str(member)))
    text = " or ".join(names)
    return f"{text}, optional" if optional else text


def _constraints(field: FieldInfo) -> list[str]:
    out = []
    symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    for meta in field.metadata:
        for attr, symbol in symbols.items():
            if getattr(meta, attr, None) is not None:
                out.append(f"{symbol} {getattr(meta, attr)}")
        for attr, label in (("min_length", "length ≥"), ("max_length", "length ≤")):
            if getattr(meta, attr, None) is not None:
                out.append(f"{label} {getattr(meta, attr)}")
        if getattr(meta, "pattern", None):
            out.append(f"matches `{meta.pattern}`")
    for member in schema.members(field.annotation):
        item = schema.item_type(member)
        for candidate in (member, item):
            for meta in (
                typing.get_args(candidate)[1:]
                if typing.get_origin(candidate) is typing.Annotated
                else ()
            ):
                if isinstance(meta, AfterValidator):
                    name = getattr(meta.func, "__name__", "")
                    prefix = "each item is " if candidate is item else ""
                    out.append(prefix + _VALIDATORS.get(name, "custom check"))
    if any(m is SecretStr for m in schema.members(field.annotation)):
        out.append("secret: never shown; can be read from a file (`<key>_file`)")
    return out


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, int | float):
            # A machine-dependent default (e.g. CPU count): the description says it.
            return "computed at start-up (see description)"
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return f"`{json.dumps(value)}`"


def _example(dotted: str, field: FieldInfo) -> str:
    if field.examples:
        value: Data = field.examples[0]
    elif field.default not in (None, PydanticUndefined):
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, int | float):
            value = 4
    elif any(m is SecretStr for m in schema.members(field.annotation)):
        return f'`{dotted}_file = "/run/secrets/{dotted}"`'
    else:
        return "-"
    if any(m is SecretStr for m in schema.members(field.annotation)):
        return f'`{dotted}_file = "/run/secrets/{dotted}"`'
    if isinstance(value, str):
        return f"`{dotted} = {json.dumps(value)}`"
    return f"`{dotted} = {json.dumps(value)}`"


def _section(
    lines: list[str], model: type[BaseModel], path: tuple[str, ...], in_list: bool
) -> None:
    title = ".".join(path) + ("[]" if in_list else "") if path else "(top level)"
    lines += [f"## `{title}`", "", (model.__doc__ or "").strip(), ""]
    nested: list[tuple[type[BaseModel], tuple[str, ...], bool]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        sub = schema.model_in(annotation)
        item = schema.item_type(annotation)
        item_model = schema.model_in(item) if item is not None else None
        if sub is not None:
            nested.append((sub, (*path, name), in_list))
            continue
        dotted = ".".join((*path, name))
        key = f"{'.'.join(path)}[].{name}" if in_list else dotted
        if in_list:
            env = f"part of `{schema.env_var_name('.'.join(path))}` (JSON list)"
        else:
            env = f"`{schema.env_var_name(dotted)}`"
            if item is not None:
                env += " (JSON list)"
        lines += [
            f"### `{key}`",
            "",
            field.description or "",
            "",
            f"- Type: {_type_name(annotation)}",
            f"- Default: {_default(field)}",
        ]
        constraints = _constraints(field)
        if constraints:
            lines.append(f"- Constraints: {'; '.join(constraints)}")
        lines += [f"- Env: {env}", f"- Example: {_example(name if in_list else key, field)}", ""]
        if item_model is not None:
            nested.append((item_model, (*path, name), True))
    for sub_model, sub_path, sub_in_list in nested:
        _section(lines, sub_model, sub_path, sub_in_list)


def render_markdown() -> str:
    """docs/configuration.md content."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen-config-docs from gateway_worker/config/; "
        "do not edit by hand. -->",
        "",
        "Every key, its type, default, constraints, environment variable and an example. "
        "How the layers (file, profile overlay, ConfigMap, secrets, env, `--set`) combine "
        "is in [configuration-loading.md](configuration-loading.md).",
        "",
        "Environment variables: prefix `REDIS_GATEWAY_`, `__` between levels; lists and "
        "tables are JSON (`REDIS_GATEWAY_SERVER__CORS__ALLOWED_ORIGINS='[\"https://a.example\"]'`).",
        "",
        "## Rules across keys",
        "",
        *[f"- {rule}" for rule in _CROSS_FIELD_RULES],
        "",
        "## Profile rules",
        "",
        "| key | rule | profiles |",
        "|-----|------|----------|",
        *[
            f"| `{r.key}` | {r.rule.format(profile='the profile')} | "
            f"{', '.join(p for p in ('staging', 'prod') if p in r.profiles)} |"
            for r in RULES
        ],
        "",
    ]
    _section(lines, Config, (), False)
    text = "\n".join(lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.rstrip("\n") + "\n"

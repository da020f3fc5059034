"""Profile rules: what `staging` and `prod` refuse on top of the schema's own rules.

| rule                                                      | dev | staging | prod |
|-----------------------------------------------------------|-----|---------|------|
| features.debug_mode is off                                |     |    x    |  x   |
| auth.enabled is on                                        |     |         |  x   |
| auth.jwt_secret, if set, is at least 32 bytes             |     |    x    |  x   |
| auth.jwt_previous_secrets: each at least 32 bytes          |     |    x    |  x   |
| CORS: no '*' origin together with allow_credentials       |     |    x    |  x   |
| CORS: no '*' origin while auth is off                     |     |         |  x   |
| features.admin_endpoints only with auth.enabled           |     |    x    |  x   |
| redis.url set, or redis.mode cluster/sentinel (no embedded) |     |    x    |  x   |
| no secret is a placeholder (REPLACE-ME, changeme, ...)    |     |    x    |  x   |

docs/configuration-loading.md documents the same table; keep them together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, SecretStr

from gateway_worker.config import Config
from supervisor.config import schema
from supervisor.config.errors import Problem, render_value

MIN_JWT_SECRET_BYTES = 32

#: Secrets refused in staging and prod as a whole value (case-insensitive, trimmed):
#: what example files, quick starts and tutorials put where a secret goes.
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "change_me",
        "placeholder",
        "secret",
        "password",
        "passw0rd",
        "replaceme",
        "replace-me",
        "replace_me",
        "todo",
        "fixme",
        "example",
        "dummy",
        "default",
        "test",
        "xxx",
        "...",
        "<secret>",
        "<password>",
    }
)
#: ... and anywhere in a value ("REPLACE-ME-with-at-least-32-random-bytes").
PLACEHOLDER_MARKS = ("replace-me", "replace_me", "replaceme", "changeme", "change-me")


def is_placeholder(value: str) -> bool:
    """A secret that was never filled in."""
    text = value.strip().lower()
    return text in PLACEHOLDER_SECRETS or any(mark in text for mark in PLACEHOLDER_MARKS)


def secret_values(value: object, path: str = "") -> Iterator[tuple[str, str]]:
    """Every secret set in a config: (dotted key, value); list items by index."""
    if isinstance(value, SecretStr):
        yield path, value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from secret_values(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_values(item, f"{path}.{index}")


def secret_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every key of the schema that holds a secret (``auth.api_keys[].key``)."""
    keys = []
    for name, field in model.model_fields.items():
        for member in schema.members(field.annotation):
            item = schema.item_type(member)
            inner = schema.model_in(item if item is not None else member)
            key = f"{prefix}{name}" + ("[]" if item is not None else "")
            if member is SecretStr:
                keys.append(key)
            elif inner is not None:
                keys.extend(secret_keys(inner, f"{key}."))
    return keys


#: Defaults that depend on the profile, applied below every layer (so any file, env
#: var or --set overrides them). `dev` serves on loopback only: README command 1
#: starts an unauthenticated gateway with raw commands, which must not face a network
#: unless someone says so (`server.host = "0.0.0.0"`).
#: `dev` also logs in the console format (JSON stays the default of staging and prod,
#: where logs go to a collector).
PROFILE_DEFAULTS: dict[str, dict[tuple[str, ...], object]] = {
    "dev": {
        ("server", "host"): "127.0.0.1",
        ("observability", "logging", "format"): "pretty",
    },
}

# dotted key -> (source description, value is secret)
SourceOf = Callable[[str], tuple[str, bool]]


@dataclass(frozen=True)
class _Rule:
    key: str
    profiles: frozenset[str]
    rule: str
    broken: Callable[[Config], bool]
    show_value: Callable[[Config], object] | None = None
    #: For a rule over several keys: the keys that break it (``key`` names them all).
    broken_keys: Callable[[Config], list[str]] | None = None


def _wildcard_cors(c: Config) -> bool:
    return c.server.cors.enabled and "*" in c.server.cors.allowed_origins


_STRICT = frozenset({"staging", "prod"})
_PROD = frozenset({"prod"})

RULES: tuple[_Rule, ...] = (
    _Rule(
        "features.debug_mode",
        _STRICT,
        "debug mode is refused in {profile}",
        lambda c: c.features.debug_mode,
        lambda c: c.features.debug_mode,
    ),
    _Rule(
        "auth.enabled",
        _PROD,
        "authentication must be enabled in {profile}",
        lambda c: not c.auth.enabled,
        lambda c: c.auth.enabled,
    ),
    _Rule(
        "auth.jwt_secret",
        _STRICT,
        f"must be at least {MIN_JWT_SECRET_BYTES} bytes in {{profile}}",
        lambda c: (
            c.auth.jwt_secret is not None
            and len(c.auth.jwt_secret.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES
        ),
    ),
    _Rule(
        "auth.jwt_previous_secrets",
        _STRICT,
        f"each must be at least {MIN_JWT_SECRET_BYTES} bytes in {{profile}}",
        lambda c: any(
            len(s.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES
            for s in c.auth.jwt_previous_secrets
        ),
    ),
    _Rule(
        "server.cors.allowed_origins",
        _STRICT,
        "a '*' origin cannot be combined with server.cors.allow_credentials in {profile}",
        lambda c: _wildcard_cors(c) and c.server.cors.allow_credentials,
        lambda c: c.server.cors.allowed_origins,
    ),
    _Rule(
        "server.cors.allowed_origins",
        _PROD,
        "a '*' origin needs auth.enabled in {profile}",
        lambda c: _wildcard_cors(c) and not c.auth.enabled,
        lambda c: c.server.cors.allowed_origins,
    ),
    _Rule(
        "features.admin_endpoints",
        _STRICT,
        "admin endpoints need auth.enabled in {profile}",
        lambda c: c.features.admin_endpoints and not c.auth.enabled,
        lambda c: c.features.admin_endpoints,
    ),
    _Rule(
        "redis.url",
        _STRICT,
        "must be set explicitly in {profile} (the embedded Redis is for dev only)",
        lambda c: c.redis.uses_embedded,
    ),
    _Rule(
        ", ".join(secret_keys()),
        _STRICT,
        "must not be a placeholder (such as REPLACE-ME or changeme) in {profile}",
        lambda c: False,
        broken_keys=lambda c: [k for k, v in secret_values(c) if is_placeholder(v)],
    ),
)


def check_profile(config: Config, source_of: SourceOf) -> list[Problem]:
    """Every profile rule `config` breaks, as problems naming key, source and rule."""
    problems = []
    for rule in RULES:
        if config.profile not in rule.profiles:
            continue
        if rule.broken_keys is not None:
            keys = rule.broken_keys(config)
        else:
            keys = [rule.key] if rule.broken(config) else []
        for key in keys:
            source, secret = source_of(key)
            value = None
            if rule.show_value is not None and not secret:
                value = render_value(rule.show_value(config))
            problems.append(
                Problem(key, source, rule.rule.format(profile=config.profile), value, secret=secret)
            )
    return problems

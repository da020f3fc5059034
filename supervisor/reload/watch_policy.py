"""Which config changes the file watcher may apply by itself (issue 14).

A change seen on disk is applied by the watcher only when it cannot take the service
away or open it up: a half-written or mistaken file must never move the listener or
weaken security unattended. The changes below are *held*: reported as drift
``pending`` with the reason (``redis-gateway status``, the ``reload.held`` log event),
and applied only by an explicit SIGHUP, `redis-gateway reload` or the admin endpoint.
docs/operations.md prints this table; keep them together.

| key                          | held when                                          |
|------------------------------|----------------------------------------------------|
| server.host, server.port     | the listen address changes                         |
| profile                      | the profile changes                                |
| auth.enabled                 | authentication is turned off                       |
| auth.api_keys                | a credential's policy widens, it becomes admin, or |
|                              | its key_prefix is removed or widened               |
| auth.rate_limiting.enabled   | rate limiting is turned off                        |
| policy.denied_commands       | a denied command is removed                        |
| policy.allowed_commands      | an allowed command is added                        |
| features.raw_commands        | raw commands are turned on                         |
| features.admin_endpoints     | the admin endpoints are turned on                  |
| features.debug_mode          | debug mode is turned on                            |
| server.cors.allowed_origins  | CORS opens to '*'                                  |
| redis.url                    | it is removed and no cluster or sentinel named     |
|                              | (the data would move to the embedded Redis of dev) |

Adding or removing an API key is not held: rotating keys through a Secret mount must
work unattended (removing one only tightens; a new one is as strong as its policy).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway_worker.config import Config

#: Credential policies from narrowest to widest.
_POLICY_RANK = {"read_only": 0, "safe": 1, "all_but_dangerous": 2, "all": 3}


@dataclass(frozen=True)
class HeldChange:
    """One row of the table: the key it is about and what makes the change unsafe."""

    key: str
    reason: Callable[[Config, Config], str | None]


def _changed(label: str, get: Callable[[Config], object]) -> Callable[[Config, Config], str | None]:
    def reason(old: Config, new: Config) -> str | None:
        before, after = get(old), get(new)
        return f"{label} ({before!r} -> {after!r})" if before != after else None

    return reason


def _turned(
    label: str, get: Callable[[Config], bool], to: bool
) -> Callable[[Config, Config], str | None]:
    def reason(old: Config, new: Config) -> str | None:
        return label if get(old) != to and get(new) == to else None

    return reason


def _credentials_widened(old: Config, new: Config) -> str | None:
    before = {k.name: k for k in old.auth.api_keys}
    widened = []
    for key in new.auth.api_keys:
        was = before.get(key.name)
        if was is None:
            continue
        if _POLICY_RANK[key.policy] > _POLICY_RANK[was.policy]:
            widened.append(f"{key.name}: policy {was.policy} -> {key.policy}")
        if key.admin and not was.admin:
            widened.append(f"{key.name}: becomes admin")
        if was.key_prefix is not None and (
            key.key_prefix is None or not key.key_prefix.startswith(was.key_prefix)
        ):
            widened.append(f"{key.name}: key_prefix {was.key_prefix!r} -> {key.key_prefix!r}")
    return "credentials widened (" + "; ".join(widened) + ")" if widened else None


def _denied_removed(old: Config, new: Config) -> str | None:
    removed = sorted(set(old.policy.denied_commands) - set(new.policy.denied_commands))
    return f"denied commands removed ({', '.join(removed)})" if removed else None


def _allowed_added(old: Config, new: Config) -> str | None:
    added = sorted(set(new.policy.allowed_commands) - set(old.policy.allowed_commands))
    return f"allowed commands added ({', '.join(added)})" if added else None


def _cors_wildcard(config: Config) -> bool:
    return config.server.cors.enabled and "*" in config.server.cors.allowed_origins


def _cors_opened(old: Config, new: Config) -> str | None:
    return "CORS opened to '*'" if _cors_wildcard(new) and not _cors_wildcard(old) else None


def _redis_url_removed(old: Config, new: Config) -> str | None:
    # Moving to a cluster or a sentinel master drops redis.url too: only a config that
    # names no Redis at all falls back to the embedded one.
    if not old.redis.uses_embedded and new.redis.uses_embedded:
        return "removed: the data would move to the embedded Redis"
    return None


HELD_CHANGES: tuple[HeldChange, ...] = (
    HeldChange("server.host", _changed("listen address moves", lambda c: c.server.host)),
    HeldChange("server.port", _changed("listen address moves", lambda c: c.server.port)),
    HeldChange("profile", _changed("profile switches", lambda c: c.profile)),
    HeldChange(
        "auth.enabled", _turned("authentication turned off", lambda c: c.auth.enabled, to=False)
    ),
    HeldChange("auth.api_keys", _credentials_widened),
    HeldChange(
        "auth.rate_limiting.enabled",
        _turned("rate limiting turned off", lambda c: c.auth.rate_limiting.enabled, to=False),
    ),
    HeldChange("policy.denied_commands", _denied_removed),
    HeldChange("policy.allowed_commands", _allowed_added),
    HeldChange(
        "features.raw_commands",
        _turned("raw commands turned on", lambda c: c.features.raw_commands, to=True),
    ),
    HeldChange(
        "features.admin_endpoints",
        _turned("admin endpoints turned on", lambda c: c.features.admin_endpoints, to=True),
    ),
    HeldChange(
        "features.debug_mode",
        _turned("debug mode turned on", lambda c: c.features.debug_mode, to=True),
    ),
    HeldChange("server.cors.allowed_origins", _cors_opened),
    HeldChange("redis.url", _redis_url_removed),
)


def held_reasons(old: Config, new: Config) -> list[str]:
    """Why the watcher must not apply ``new`` over ``old`` by itself ([] when it may)."""
    reasons = []
    for row in HELD_CHANGES:
        reason = row.reason(old, new)
        if reason is not None:
            reasons.append(f"{row.key}: {reason}")
    return reasons

"""Field types and validators shared by every section, and the sections' base class."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Profile = Literal["dev", "staging", "prod"]
PROFILES: tuple[Profile, ...] = ("dev", "staging", "prod")

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Commands refused unless a credential's policy explicitly allows them. Scripting is
# here because one script that never yields makes Redis answer BUSY to everyone (and
# scripts reach keys they never declared): see docs/security.md, "Scripts".
DANGEROUS_COMMANDS: tuple[str, ...] = (
    "ACL",
    "BGREWRITEAOF",
    "BGSAVE",
    "CLIENT",
    "CLUSTER",
    "CONFIG",
    "DEBUG",
    "EVAL",
    "EVALSHA",
    "EVALSHA_RO",
    "EVAL_RO",
    "FAILOVER",
    "FCALL",
    "FCALL_RO",
    "FLUSHALL",
    "FLUSHDB",
    "FUNCTION",
    "KEYS",
    "MIGRATE",
    "MODULE",
    "MONITOR",
    "PSYNC",
    "REPLCONF",
    "REPLICAOF",
    "RESTORE",
    "SAVE",
    "SCRIPT",
    "SHUTDOWN",
    "SLAVEOF",
    "SWAPDB",
    "SYNC",
)

Port = Annotated[int, Field(ge=1, le=65535)]
#: sun_path holds 108 bytes with the terminating NUL (Linux).
UNIX_SOCKET_PATH_MAX = 107
#: A duration in seconds: finite, positive, at most a day (`inf`, `nan` or 1e300 would
#: overflow the event loop's timers and select()).
PositiveFloat = Annotated[float, Field(gt=0, le=86_400, allow_inf_nan=False)]


def _check_method(value: str) -> str:
    upper = value.upper()
    if upper not in HTTP_METHODS:
        raise ValueError(f"{value!r} is not an HTTP method (one of {sorted(HTTP_METHODS)})")
    return upper


def _check_origin(value: str) -> str:
    if value == "*":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
        raise ValueError(f"{value!r} is not an origin (expected '*' or scheme://host[:port])")
    return value.rstrip("/")


def _check_prefix(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with '/'")
    return value if value == "/" else value.rstrip("/")


def _check_command_name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.|-]*", value):
        raise ValueError(f"{value!r} is not a Redis command name")
    return value.upper()


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_host(value: str) -> str:
    """An IP address or a host name (RFC 1123 labels); whether the name resolves is
    checked by the supervisor's loader, which binds it."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        labels = value.rstrip(".").split(".")
        if len(value) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
    return value


#: HTTP header names are tokens (RFC 9110 5.1): no spaces, no CR/LF, no separators.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_header_name(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        )
    return value


HttpMethod = Annotated[str, AfterValidator(_check_method)]
Host = Annotated[str, AfterValidator(check_host)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
Origin = Annotated[str, AfterValidator(_check_origin)]
UrlPrefix = Annotated[str, AfterValidator(_check_prefix)]
CommandName = Annotated[str, AfterValidator(_check_command_name)]


class Section(BaseModel):
    """Base for every section: frozen, unknown keys refused, inputs hidden in errors."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        validate_default=True,
    )

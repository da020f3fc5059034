"""The configuration schema: frozen pydantic v2 models, shared by supervisor and workers.

This module is the single source of truth for every key: its type, default,
constraints and description. `docs/configuration.md` and `redis-gateway config
schema` are generated from it. Layering, provenance and profile rules live in
`supervisor.config`; this module only knows what a *valid* configuration is.

Secrets are `SecretStr` everywhere. To hand a config to a worker with the secrets
intact use `dump_with_secrets()`; never `model_dump_json()` (it masks them).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import re
import secrets
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

Profile = Literal["dev", "staging", "prod"]
PROFILES: tuple[Profile, ...] = ("dev", "staging", "prod")

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Commands refused unless a credential's policy explicitly allows them.
DANGEROUS_COMMANDS: tuple[str, ...] = (
    "ACL",
    "BGREWRITEAOF",
    "BGSAVE",
    "CLIENT",
    "CLUSTER",
    "CONFIG",
    "DEBUG",
    "FAILOVER",
    "FLUSHALL",
    "FLUSHDB",
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


def _check_host(value: str) -> str:
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
        raise ValueError(f"{value!r} is not an HTTP header name (letters, digits and "
                         "!#$%&'*+-.^_`|~ only)")
    return value


HttpMethod = Annotated[str, AfterValidator(_check_method)]
Host = Annotated[str, AfterValidator(_check_host)]
HeaderName = Annotated[str, AfterValidator(_check_header_name)]
Origin = Annotated[str, AfterValidator(_check_origin)]
UrlPrefix = Annotated[str, AfterValidator(_check_prefix)]
CommandName = Annotated[str, AfterValidator(_check_command_name)]


class _Model(BaseModel):
    """Base for every section: frozen, unknown keys refused, inputs hidden in errors."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        hide_input_in_errors=True,
        validate_default=True,
    )


class CorsConfig(_Model):
    """Cross-origin resource sharing, including preflight (OPTIONS) answers."""

    enabled: bool = Field(False, description="Answer CORS preflights and add CORS headers.")
    allowed_origins: list[Origin] = Field(
        default_factory=lambda: ["*"],
        description="Origins allowed to call the gateway; '*' allows any.",
        examples=[["https://app.example.com"]],
    )
    allowed_methods: list[HttpMethod] = Field(
        default_factory=lambda: ["GET", "POST", "PUT", "OPTIONS"],
        description="Methods announced in Access-Control-Allow-Methods.",
    )
    allowed_headers: list[HeaderName] = Field(
        # The Upstash-* headers are what @upstash/redis sends from a browser; without
        # them every preflight of a browser client fails.
        default_factory=lambda: [
            "Authorization",
            "Content-Type",
            "X-API-Key",
            "Upstash-Encoding",
            "Upstash-Response-Format",
            "Upstash-Sync-Token",
            "Upstash-Telemetry-Platform",
            "Upstash-Telemetry-Runtime",
            "Upstash-Telemetry-Sdk",
        ],
        description="Request headers announced in Access-Control-Allow-Headers.",
    )
    allow_credentials: bool = Field(
        False, description="Send Access-Control-Allow-Credentials: true."
    )
    max_age_seconds: int = Field(
        600, ge=0, le=86400, description="How long a browser may cache a preflight answer."
    )


class ServerConfig(_Model):
    """The HTTP listener and the worker processes behind it."""

    host: Host = Field(
        "0.0.0.0",
        description="Address to listen on (IPv4 or IPv6, or a host name). The `dev` profile "
        "defaults to 127.0.0.1.",
    )
    port: Port = Field(8080, description="TCP port to listen on.")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="Number of worker processes (default: CPU count).",
    )
    max_connections: int = Field(
        1000, ge=1, description="Open HTTP connections per worker before new ones get 503."
    )
    request_timeout_seconds: PositiveFloat = Field(
        30.0, description="A request still running after this long gets 504."
    )
    graceful_shutdown_timeout_seconds: PositiveFloat = Field(
        30.0,
        description="On reload or stop, how long old workers may drain before being killed.",
    )
    reload_readiness_timeout_seconds: PositiveFloat = Field(
        30.0,
        description="On reload, how long the new workers have to become ready before the "
        "reload is reverted.",
    )
    keepalive_timeout_seconds: PositiveFloat = Field(
        5.0, description="Idle keep-alive connections are closed after this long."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1, description="Largest request body accepted (413 beyond)."
    )
    max_arguments: int = Field(
        10_000, ge=1, description="Most arguments accepted in one command (400 beyond)."
    )
    http_engine: Literal["uvicorn", "native"] = Field(
        "uvicorn",
        description="HTTP server inside each worker: `uvicorn` (httptools protocol), or "
        "`native` (gateway_worker.fasthttp: the same behaviour with less CPU per request).",
    )
    cors: CorsConfig = Field(default_factory=CorsConfig, description="CORS settings.")


class RedisTlsConfig(_Model):
    """TLS options used when `redis.url` is `rediss://`."""

    ca_file: str | None = Field(None, description="CA bundle to verify the server with.")
    cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="Client private key (mutual TLS).")
    verify: bool = Field(True, description="Verify the server certificate and host name.")


class RedisConfig(_Model):
    """How workers reach Redis."""

    url: str | None = Field(
        None,
        description="redis://host:port, rediss://host:port (TLS) or unix:///path. Unset in the "
        "`dev` profile means an embedded Redis started by the supervisor.",
        examples=["redis://127.0.0.1:6379"],
    )
    db: int = Field(0, ge=0, le=15, description="Database number selected on every connection.")
    username: str | None = Field(None, description="ACL user name (Redis 6+).")
    default_password: SecretStr | None = Field(
        None, description="Password sent with AUTH. Secret: prefer a secret file."
    )
    pool_max_size: int = Field(
        10, ge=1, le=1000, description="Dedicated connections (blocking commands, MULTI, pub/sub)."
    )
    pool_timeout_seconds: PositiveFloat = Field(
        5.0, description="How long a request waits for a dedicated connection."
    )
    connection_timeout_seconds: PositiveFloat = Field(
        5.0, description="TCP/TLS connect timeout."
    )
    command_timeout_seconds: PositiveFloat = Field(
        5.0, description="A command without a reply after this long fails (non-blocking ones)."
    )
    refresh_interval_seconds: PositiveFloat = Field(
        60.0, description="How often connection settings are refreshed (DNS re-resolution)."
    )
    health_check_interval_seconds: PositiveFloat = Field(
        30.0, description="How often an idle connection is checked with PING."
    )
    max_retries: int = Field(
        3, ge=0, le=100, description="Reconnect attempts for a failed connection per request."
    )
    retry_delay_ms: int = Field(100, ge=0, le=60_000, description="Delay between retries.")
    tls: RedisTlsConfig = Field(default_factory=RedisTlsConfig, description="TLS options.")

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must start with redis://, rediss:// or unix://")
        if parts.scheme == "unix" and not parts.path:
            raise ValueError("unix:// URL needs a socket path (unix:///run/redis.sock)")
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError("needs a host (redis://host:port)")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("has an invalid port (expected 1-65535)") from None
        if port == 0:
            raise ValueError("has an invalid port (expected 1-65535)")
        return value


CommandPolicyName = Literal["all", "all_but_dangerous", "safe", "read_only"]


class ApiKeyConfig(_Model):
    """One API key (also usable as an Upstash bearer token)."""

    name: str = Field(
        ..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$",
        description="Name used in logs and metrics (never the key itself).",
    )
    key: SecretStr = Field(..., description="The key. Secret: at least 16 characters.")
    policy: CommandPolicyName = Field(
        "all_but_dangerous", description="Commands this key may run."
    )
    key_prefix: str | None = Field(
        None, description="If set, every key this credential touches must start with it."
    )
    admin: bool = Field(False, description="May use /admin/* endpoints.")

    @field_validator("key")
    @classmethod
    def _check_key_length(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value()
        if not key.strip():
            raise ValueError("API key must not be blank")
        if key != key.strip() or any(ord(c) < 32 or ord(c) == 127 for c in key):
            raise ValueError("API key must not hold leading/trailing whitespace or "
                             "control characters (it travels in an HTTP header)")
        if len(key) < 16:
            raise ValueError("API key must be at least 16 characters")
        return value


class RateLimitConfig(_Model):
    """Per-credential (or per client IP) rate limit, shared by all workers through Redis."""

    enabled: bool = Field(False, description="Apply the rate limit.")
    requests_per_minute: int = Field(600, ge=1, description="Sustained rate allowed.")
    burst_size: int = Field(100, ge=1, description="Requests allowed at once above the rate.")
    window_size_seconds: int = Field(60, ge=1, le=86400, description="Accounting window.")
    failure_mode: Literal["open", "closed"] = Field(
        "open",
        description="When Redis cannot be asked: 'open' lets requests through, "
        "'closed' answers 503.",
    )


class AuthConfig(_Model):
    """Who may call the gateway."""

    enabled: bool = Field(False, description="Require a JWT or an API key on every request.")
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 signing secret for JWTs. Secret."
    )

    @field_validator("jwt_secret")
    @classmethod
    def _check_jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty or blank (unset it to turn JWTs off)")
        return value
    jwt_expiry_hours: float = Field(
        24.0, gt=0, le=24 * 366, allow_inf_nan=False,
        description="Longest lifetime accepted for a JWT (exp - iat).",
    )
    jwt_leeway_seconds: int = Field(
        30, ge=0, le=300, description="Clock skew tolerated when checking exp/nbf."
    )
    api_key_header: str = Field(
        "X-API-Key", min_length=1, pattern=r"^[A-Za-z0-9-]+$",
        description="Header carrying an API key.",
    )
    api_keys: list[ApiKeyConfig] = Field(
        default_factory=list, description="API keys (Upstash bearer tokens too)."
    )
    rate_limiting: RateLimitConfig = Field(
        default_factory=RateLimitConfig, description="Rate limiting."
    )

    @model_validator(mode="after")
    def _check_credentials(self) -> AuthConfig:
        if self.enabled and self.jwt_secret is None and not self.api_keys:
            raise ValueError("auth.enabled needs auth.jwt_secret or at least one auth.api_keys")
        names = [k.name for k in self.api_keys]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate API key names: {dupes}")
        return self


class LoggingConfig(_Model):
    """Structured logs (structlog). Hot-reloadable."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Lowest level written."
    )
    format: Literal["json", "pretty"] = Field("json", description="JSON lines or console.")
    output: str = Field(
        "stdout", min_length=1, description="'stdout', 'stderr' or a file path."
    )
    access_log: bool = Field(False, description="Log one event per request (no values).")

    @field_validator("level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class MetricsConfig(_Model):
    """Prometheus endpoint, served by the supervisor for all workers."""

    enabled: bool = Field(True, description="Serve Prometheus metrics.")
    host: Host = Field("127.0.0.1", description="Metrics listen address.")
    port: Port = Field(9090, description="Metrics port (must differ from server.port).")
    path: str = Field("/metrics", pattern=r"^/[^?#]*$", description="Metrics URL path.")


class TracingConfig(_Model):
    """OpenTelemetry tracing (needs the `tracing` extra)."""

    enabled: bool = Field(False, description="Export spans.")
    endpoint: str = Field(
        "http://localhost:4318/v1/traces", description="OTLP/HTTP traces endpoint."
    )
    service_name: str = Field("redis-gateway", min_length=1, description="service.name.")
    sample_rate: float = Field(
        0.1, ge=0.0, le=1.0, allow_inf_nan=False, description="Fraction of requests traced."
    )


class ObservabilityConfig(_Model):
    """Logs, metrics, traces."""

    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Metrics.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="Tracing.")


class FeaturesConfig(_Model):
    """Feature switches."""

    method_override: bool = Field(False, description="Honour X-HTTP-Method-Override on POST.")
    raw_commands: bool = Field(
        True, description="false limits every client to the documented safe command set."
    )
    admin_endpoints: bool = Field(False, description="Expose /admin/* (admin credential needed).")
    debug_mode: bool = Field(False, description="Tracebacks in error bodies. Refused in prod.")


class PolicyConfig(_Model):
    """Command policy applied to every request before the credential's own policy."""

    denied_commands: list[CommandName] = Field(
        default_factory=lambda: list(DANGEROUS_COMMANDS),
        description="Commands refused (403) unless a credential's policy is 'all'.",
    )
    allowed_commands: list[CommandName] = Field(
        default_factory=list,
        description="Extra commands added to the safe set when features.raw_commands is false.",
    )


class ApiConfig(_Model):
    """Where each protocol is mounted."""

    upstash_enabled: bool = Field(True, description="Serve the Upstash REST protocol.")
    upstash_prefix: UrlPrefix = Field("/", description="URL prefix of the Upstash protocol.")
    webdis_enabled: bool = Field(True, description="Serve the Webdis URL protocol.")
    webdis_prefix: UrlPrefix = Field("/webdis", description="URL prefix of the Webdis protocol.")

    @model_validator(mode="after")
    def _check_prefixes(self) -> ApiConfig:
        if self.upstash_enabled and self.webdis_enabled and (
            self.upstash_prefix == self.webdis_prefix
        ):
            raise ValueError("api.upstash_prefix and api.webdis_prefix must differ")
        return self


class SupervisorConfig(_Model):
    """The supervisor process: control socket, config watching, worker liveness."""

    control_socket: str | None = Field(
        None,
        description="Unix socket for `redis-gateway reload|status`. Default: "
        "$XDG_RUNTIME_DIR (or the temp dir)/redis-gateway-<port>.sock.",
    )

    @field_validator("control_socket")
    @classmethod
    def _check_control_socket(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value.strip():
            raise ValueError("must not be empty (unset it for the default path)")
        if "\0" in value:
            raise ValueError("must not contain a NUL byte")
        if len(os.fsencode(value)) > UNIX_SOCKET_PATH_MAX:
            raise ValueError(f"is {len(os.fsencode(value))} bytes long; a Unix socket path "
                             f"is at most {UNIX_SOCKET_PATH_MAX} bytes")
        return value
    state_dir: str | None = Field(
        None,
        description="Config versions, backups, history and the fingerprint key. Default: "
        "$STATE_DIRECTORY (systemd StateDirectory=), else $XDG_STATE_HOME/redis-gateway, "
        "else /var/lib/redis-gateway for root, else ~/.local/state/redis-gateway.",
    )
    backups_keep: int = Field(
        20, ge=1, le=10_000, description="How many committed configs are kept as backups."
    )
    watch_config: bool = Field(True, description="Reload when a config input changes on disk.")
    watch_debounce_ms: int = Field(
        500, ge=0, le=60_000, description="Quiet time after a file event before reloading."
    )
    watch_settle_ms: int = Field(
        200, ge=0, le=10_000,
        description="After the quiet time, the inputs must hash the same across this "
        "interval before a reload reads them (a file being written is never applied).",
    )
    recheck_interval_seconds: float = Field(
        30.0, ge=0, le=86_400, allow_inf_nan=False,
        description="Periodic hash re-check of config inputs (0 disables).",
    )
    heartbeat_interval_seconds: PositiveFloat = Field(
        1.0, description="How often a worker's event loop reports it is alive."
    )
    heartbeat_timeout_seconds: PositiveFloat = Field(
        10.0, description="Missing heartbeats for this long: the worker is stopped and replaced."
    )
    restart_backoff_max_seconds: PositiveFloat = Field(
        30.0, description="Cap of the exponential backoff between crashed-worker restarts."
    )
    embedded_redis: bool = Field(
        True, description="In `dev` with no redis.url, start an embedded Redis."
    )

    @model_validator(mode="after")
    def _check_heartbeats(self) -> SupervisorConfig:
        if self.heartbeat_timeout_seconds < 2 * self.heartbeat_interval_seconds:
            raise ValueError(
                f"supervisor.heartbeat_timeout_seconds ({self.heartbeat_timeout_seconds}) must "
                "be at least twice supervisor.heartbeat_interval_seconds "
                f"({self.heartbeat_interval_seconds}): a healthy worker would be killed "
                "between two heartbeats")
        return self


class Config(_Model):
    """The whole effective configuration of a gateway."""

    profile: Profile = Field(
        "dev", description="Deployment profile (set by --profile / REDIS_GATEWAY_PROFILE)."
    )
    server: ServerConfig = Field(default_factory=ServerConfig, description="HTTP server.")
    redis: RedisConfig = Field(default_factory=RedisConfig, description="Redis connection.")
    auth: AuthConfig = Field(default_factory=AuthConfig, description="Authentication.")
    policy: PolicyConfig = Field(default_factory=PolicyConfig, description="Command policy.")
    api: ApiConfig = Field(default_factory=ApiConfig, description="Protocol mounts.")
    observability: ObservabilityConfig = Field(
        default_factory=ObservabilityConfig, description="Logs, metrics, traces."
    )
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Features.")
    supervisor: SupervisorConfig = Field(
        default_factory=SupervisorConfig, description="Supervisor process."
    )

    @model_validator(mode="after")
    def _cross_field(self) -> Config:
        m = self.observability.metrics
        if m.enabled and m.port == self.server.port:
            raise ValueError(
                f"observability.metrics.port ({m.port}) must differ from server.port"
            )
        if self.features.admin_endpoints and not self.auth.enabled:
            admins = [k for k in self.auth.api_keys if k.admin]
            if not admins and self.auth.jwt_secret is None:
                raise ValueError("features.admin_endpoints needs an admin credential "
                                 "(an auth.api_keys entry with admin = true, or a jwt_secret)")
        return self


def dump_with_secrets(config: Config) -> dict[str, Any]:
    """Plain dict with secrets revealed, for the supervisor→worker pipe only."""

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, BaseModel):
            return {k: reveal(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, list):
            return [reveal(v) for v in value]
        return value

    result = reveal(config)
    assert isinstance(result, dict)
    return result


_PROCESS_KEY = secrets.token_bytes(32)


def config_hash(config: Config, secret_key: bytes | None = None) -> str:
    """The config's fingerprint: SHA-256 of its canonical form, stable across key order.
    The one definition, for reloads, status, metrics, backups and admin.

    Each secret enters as HMAC-SHA256(secret_key, secret), so a secret cannot be
    recovered from a hash (not even a weak one by trying candidates) and rotating it
    still changes the hash. The supervisor passes the key of its state directory;
    without one (a CLI that cannot read it, a worker alone) a random key of this
    process is used: such a hash is only comparable within the process.
    """
    key = _PROCESS_KEY if secret_key is None else secret_key

    def canon(value: Any) -> Any:
        if isinstance(value, SecretStr):
            digest = hmac.new(key, value.get_secret_value().encode(), "sha256")
            return f"<secret: {digest.hexdigest()}>"
        if isinstance(value, BaseModel):
            return {k: canon(getattr(value, k)) for k in type(value).model_fields}
        if isinstance(value, list):
            return [canon(v) for v in value]
        return value

    canonical = json.dumps(canon(config), sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: What a secret is shown as, everywhere.
SECRET_MASK = "**********"  # noqa: S105 - the mask, not a secret

_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]+@")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|pass|pwd)=)[^&#\s]*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """`redis://user:pw@host` -> `redis://user:**********@host` (also `?password=`)."""
    text = _URL_PASSWORD.sub(rf"\g<1>{SECRET_MASK}@", text)
    return _QUERY_PASSWORD.sub(rf"\g<1>{SECRET_MASK}", text)


def dump_redacted(config: Config) -> dict[str, Any]:
    """Plain JSON-able dict with every secret replaced by the mask (or None if unset),
    and the password inside any URL (redis.url, ...) masked too."""

    def redact(value: Any) -> Any:
        if isinstance(value, str):
            return redact_url(value)
        if isinstance(value, dict):
            return {k: redact(v) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        return value

    result = redact(config.model_dump(mode="json"))
    assert isinstance(result, dict)
    return result

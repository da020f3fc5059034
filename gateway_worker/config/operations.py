"""`observability`, `features`, `api` and `supervisor`: how the gateway is run and watched."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway_worker.config.fields import (
    UNIX_SOCKET_PATH_MAX,
    Host,
    Port,
    PositiveFloat,
    Section,
    UrlPrefix,
)


class LoggingConfig(Section):
    """Structured logs (structlog). Hot-reloadable."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Lowest level written."
    )
    format: Literal["json", "pretty"] = Field(
        "json",
        description="JSON lines, or `pretty`: structlog's console format, coloured on a "
        "terminal (the `dev` profile's default).",
    )
    output: str = Field("stdout", min_length=1, description="'stdout', 'stderr' or a file path.")
    access_log: bool = Field(False, description="Log one event per request (no values).")
    library_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "WARNING",
        description="Lowest level written for the libraries' own loggers (uvicorn, "
        "watchdog, asyncio, ...): their INFO and DEBUG lines are noise unless you are "
        "debugging them; never below `level`.",
    )

    @field_validator("level", "library_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class MetricsConfig(Section):
    """Prometheus endpoint, served by the supervisor for all workers."""

    enabled: bool = Field(True, description="Serve Prometheus metrics.")
    host: Host = Field("127.0.0.1", description="Metrics listen address.")
    port: Port = Field(9090, description="Metrics port (must differ from server.port).")
    path: str = Field("/metrics", pattern=r"^/[^?#]*$", description="Metrics URL path.")


class TracingConfig(Section):
    """OpenTelemetry tracing (needs the `tracing` extra)."""

    enabled: bool = Field(False, description="Export spans.")
    endpoint: str = Field(
        "http://localhost:4318/v1/traces", description="OTLP/HTTP traces endpoint."
    )
    service_name: str = Field("redis-gateway", min_length=1, description="service.name.")
    sample_rate: float = Field(
        0.1, ge=0.0, le=1.0, allow_inf_nan=False, description="Fraction of requests traced."
    )


class ObservabilityConfig(Section):
    """Logs, metrics, traces."""

    logging: LoggingConfig = Field(default_factory=LoggingConfig, description="Logging.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig, description="Metrics.")
    tracing: TracingConfig = Field(default_factory=TracingConfig, description="Tracing.")


class FeaturesConfig(Section):
    """Feature switches."""

    method_override: bool = Field(False, description="Honour X-HTTP-Method-Override on POST.")
    raw_commands: bool = Field(
        True, description="false limits every client to the documented safe command set."
    )
    admin_endpoints: bool = Field(False, description="Expose /admin/* (admin credential needed).")
    debug_mode: bool = Field(False, description="Tracebacks in error bodies. Refused in prod.")


class ApiConfig(Section):
    """Where each protocol is mounted."""

    upstash_enabled: bool = Field(True, description="Serve the Upstash REST protocol.")
    upstash_prefix: UrlPrefix = Field("/", description="URL prefix of the Upstash protocol.")
    webdis_enabled: bool = Field(True, description="Serve the Webdis URL protocol.")
    webdis_prefix: UrlPrefix = Field("/webdis", description="URL prefix of the Webdis protocol.")
    webdis_websockets: bool = Field(
        False,
        description="Serve Webdis's WebSocket endpoints `<webdis_prefix>/.json` (JSON "
        "commands and replies, pub/sub pushes included) and `<webdis_prefix>/.raw` (RESP). "
        "Off by default, as in Webdis.",
    )

    @model_validator(mode="after")
    def _check_prefixes(self) -> ApiConfig:
        if self.webdis_websockets and not self.webdis_enabled:
            raise ValueError("api.webdis_websockets needs api.webdis_enabled")
        if (
            self.upstash_enabled
            and self.webdis_enabled
            and (self.upstash_prefix == self.webdis_prefix)
        ):
            raise ValueError("api.upstash_prefix and api.webdis_prefix must differ")
        return self


class SupervisorConfig(Section):
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
            raise ValueError(
                f"is {len(os.fsencode(value))} bytes long; a Unix socket path "
                f"is at most {UNIX_SOCKET_PATH_MAX} bytes"
            )
        return value

    state_dir: str | None = Field(
        None,
        description="Config versions, backups, history and the fingerprint key. Default: "
        "$STATE_DIRECTORY (systemd StateDirectory=), else $XDG_STATE_HOME/redis-gateway, "
        "else /var/lib/redis-gateway for root, else ~/.local/state/redis-gateway.",
    )
    drift_check_interval_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
        description="How often the sources are compared with the running config without "
        "applying them (drift in `status` and metrics; 0 disables the periodic check).",
    )
    backups_keep: int = Field(
        20, ge=1, le=10_000, description="How many committed configs are kept as backups."
    )
    watch_config: bool = Field(True, description="Reload when a config input changes on disk.")
    watch_debounce_ms: int = Field(
        500, ge=0, le=60_000, description="Quiet time after a file event before reloading."
    )
    watch_settle_ms: int = Field(
        200,
        ge=0,
        le=10_000,
        description="After the quiet time, the inputs must hash the same across this "
        "interval before a reload reads them (a file being written is never applied).",
    )
    recheck_interval_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        allow_inf_nan=False,
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
                "between two heartbeats"
            )
        return self

"""`redis`: how workers reach Redis: one server (`standalone`), a Redis Cluster, or the
master a set of Sentinels names (`mode`); docs/redis-topologies.md."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator

from gateway_worker.config.fields import PositiveFloat, Section, check_host

RedisMode = Literal["standalone", "cluster", "sentinel"]


def split_node(value: str) -> tuple[str, int]:
    """``"host:port"`` (``"[::1]:7000"`` for IPv6) as (host, port); ValueError if not."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"{value!r} is not host:port (an IPv6 address goes in brackets)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{value!r}: an IPv6 address goes in brackets ([::1]:7000)")
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"{value!r} has an invalid port (expected 1-65535)")
    check_host(host)
    return host, number


def _check_node(value: str) -> str:
    split_node(value)
    return value


NodeAddress = Annotated[str, AfterValidator(_check_node)]


class RedisTlsConfig(Section):
    """TLS options used when `redis.url` is `rediss://`."""

    ca_file: str | None = Field(None, description="CA bundle to verify the server with.")
    cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="Client private key (mutual TLS).")
    verify: bool = Field(True, description="Verify the server certificate and host name.")
    enabled: bool = Field(
        False,
        description="TLS to `redis.nodes` (cluster and sentinel modes: nodes, sentinels). "
        "A standalone Redis turns TLS on with a `rediss://` `redis.url` instead.",
    )


class RedisConfig(Section):
    """How workers reach Redis."""

    mode: RedisMode = Field(
        "standalone",
        description="`standalone`: one Redis at `redis.url`. `cluster`: a Redis Cluster "
        "reached through the seed nodes `redis.nodes` (keys routed by slot). `sentinel`: the "
        "master `redis.sentinel_master` that the Sentinels `redis.nodes` name, followed "
        "through failovers. See docs/redis-topologies.md.",
    )
    url: str | None = Field(
        None,
        description="redis://host:port, rediss://host:port (TLS) or unix:///path. Unset in the "
        "`dev` profile means an embedded Redis started by the supervisor. Standalone mode only.",
        examples=["redis://127.0.0.1:6379"],
    )
    nodes: list[NodeAddress] = Field(
        default_factory=list,
        description="`host:port` of the cluster's seed nodes (mode `cluster`: any few nodes; "
        "the rest is discovered) or of the Sentinels (mode `sentinel`, tried in order).",
        examples=[["10.0.0.1:7000", "10.0.0.2:7000"]],
    )
    sentinel_master: str | None = Field(
        None, description="Mode `sentinel`: the master's name in the Sentinels' configuration."
    )
    sentinel_username: str | None = Field(
        None, description="Mode `sentinel`: ACL user name for the Sentinels themselves."
    )
    sentinel_password: SecretStr | None = Field(
        None,
        description="Mode `sentinel`: password for the Sentinels themselves (the master and "
        "replicas use `redis.username`/`redis.default_password`). Secret.",
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
    connection_timeout_seconds: PositiveFloat = Field(5.0, description="TCP/TLS connect timeout.")
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

    @property
    def uses_embedded(self) -> bool:
        """No Redis named at all: standalone without ``url`` (the ``dev`` profile starts
        an embedded Redis then)."""
        return self.mode == "standalone" and self.url is None

    @property
    def selected_db(self) -> int:
        """The database every connection selects: ``db``, or the URL's ``/N`` path when
        ``db`` is 0 (``redis://host:6379/3``); a unix socket URL's path is the socket."""
        if self.db == 0 and self.url is not None:
            parts = urlsplit(self.url)
            path_db = parts.path.strip("/")
            if parts.scheme != "unix" and path_db.isdigit():
                return int(path_db)
        return self.db

    @model_validator(mode="after")
    def _check_mode(self) -> RedisConfig:
        problems = mode_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

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


def mode_problems(cfg: RedisConfig) -> list[str]:
    """What in ``cfg`` does not fit ``redis.mode`` (a config that mixes the modes)."""
    mode = cfg.mode
    sentinel_keys = [
        f"redis.{name}"
        for name in ("sentinel_master", "sentinel_username", "sentinel_password")
        if getattr(cfg, name) is not None
    ]
    problems = []
    if mode == "standalone":
        if cfg.nodes:
            problems.append(
                'redis.nodes is set but redis.mode is "standalone" (which uses redis.url): '
                'set redis.mode = "cluster" (seed nodes) or "sentinel" (Sentinels), or '
                "remove redis.nodes"
            )
        if cfg.tls.enabled:
            problems.append(
                "redis.tls.enabled is for the cluster and sentinel modes; a standalone "
                "Redis turns TLS on with a rediss:// redis.url"
            )
    else:
        what = "seed nodes" if mode == "cluster" else "Sentinels"
        if cfg.url is not None:
            problems.append(
                f'redis.url and redis.mode = "{mode}" do not mix: in {mode} mode Redis is '
                f'reached through redis.nodes ({what}, ["host:port", ...]); remove redis.url'
            )
        if not cfg.nodes:
            problems.append(f'redis.mode = "{mode}" needs redis.nodes ({what}, "host:port")')
    if mode == "cluster" and cfg.db != 0:
        problems.append(f"Redis Cluster has only database 0: redis.db is {cfg.db}")
    if mode == "sentinel" and not cfg.sentinel_master:
        problems.append('redis.mode = "sentinel" needs redis.sentinel_master (the master name)')
    if mode != "sentinel" and sentinel_keys:
        problems.append(
            f'{", ".join(sentinel_keys)} set, but only used when redis.mode = "sentinel" '
            f'(redis.mode is "{mode}")'
        )
    return problems

"""`redis`: how workers reach Redis."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator

from gateway_worker.config.fields import PositiveFloat, Section


class RedisTlsConfig(Section):
    """TLS options used when `redis.url` is `rediss://`."""

    ca_file: str | None = Field(None, description="CA bundle to verify the server with.")
    cert_file: str | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: str | None = Field(None, description="Client private key (mutual TLS).")
    verify: bool = Field(True, description="Verify the server certificate and host name.")


class RedisConfig(Section):
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
    def selected_db(self) -> int:
        """The database every connection selects: ``db``, or the URL's ``/N`` path when
        ``db`` is 0 (``redis://host:6379/3``); a unix socket URL's path is the socket."""
        if self.db == 0 and self.url is not None:
            parts = urlsplit(self.url)
            path_db = parts.path.strip("/")
            if parts.scheme != "unix" and path_db.isdigit():
                return int(path_db)
        return self.db

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

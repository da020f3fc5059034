"""`server`: the HTTP listener, the worker processes behind it, and CORS."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field, model_validator

from gateway_worker.config.fields import (
    HeaderName,
    Host,
    HttpMethod,
    Origin,
    Port,
    PositiveFloat,
    Section,
)


class CorsConfig(Section):
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


class ServerConfig(Section):
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
        30.0,
        description="A request still running after this long gets 504 (408 if its body "
        "had not all arrived).",
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
    request_header_timeout_seconds: PositiveFloat = Field(
        10.0,
        description="A connection must send a complete request head (request line and "
        "headers) within this long of being accepted, and a keep-alive connection within "
        "this long of the first byte of its next request (between requests it may stay "
        "idle for keepalive_timeout_seconds); past it the connection is closed (408 when "
        "part of a request had arrived). The body is bounded by request_timeout_seconds.",
    )
    max_pending_connections: int | None = Field(
        None,
        ge=1,
        description="Connections per worker that have not sent a complete request head "
        "yet, or whose request body is still arriving (idle or slow clients); one more "
        "closes the oldest of them. Must be less than max_connections. Default (unset): "
        "half of max_connections.",
        examples=[250],
    )
    max_header_bytes: int = Field(
        65_536,
        ge=1_024,
        le=16_777_216,
        description="Largest request head (request line and headers, and the trailers "
        "of a chunked body) accepted, whether it arrives whole or in pieces; 431 beyond.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1, description="Largest request body accepted (413 beyond)."
    )
    max_arguments: int = Field(
        10_000, ge=1, description="Most arguments accepted in one command (400 beyond)."
    )
    http_engine: Literal["uvicorn", "native"] = Field(
        "native",
        description="HTTP server inside each worker: `native` (gateway_worker.serving.native: "
        "uvicorn's behaviour with less CPU per request), or `uvicorn` (its httptools protocol).",
    )
    max_streams: int | None = Field(
        None,
        ge=1,
        description="Open streams per worker (Upstash SSE subscriptions and MONITOR, Webdis "
        "chunked SUBSCRIBE, Webdis WebSockets); one more is refused with 503. Must be less "
        "than max_connections (streams hold connections). Default (unset): half of "
        "max_connections.",
        examples=[200],
    )
    stream_drain_seconds: PositiveFloat | None = Field(
        None,
        description="When a worker drains (reload, stop), each of its streams is told to "
        "reconnect at once (SSE: `retry:` and `event: reconnect`; WebSocket: close 1012) "
        "and is closed at the latest this long after, so the client lands on the new "
        "workers. At most graceful_shutdown_timeout_seconds (the worker applies a small "
        "margin so its streams are closed before its own deadline). Default (unset): 5 s, "
        "or half the graceful timeout if that is less.",
        examples=[2.0],
    )
    stream_heartbeat_seconds: PositiveFloat = Field(
        15.0,
        description="A stream with nothing to send for this long gets a heartbeat (SSE: the "
        "comment `: ping`; WebSocket: a ping), so proxies keep it open. A WebSocket that "
        "does not answer a ping within this long, and an SSE or chunked stream whose "
        "writes stay blocked for twice this long, is closed: its client is gone.",
    )
    stream_send_buffer_bytes: int = Field(
        1_048_576,
        ge=4_096,
        le=1_073_741_824,
        description="Bytes queued per stream for a client that reads slower than its "
        "messages arrive; one message more closes the stream (reason `slow_consumer`), so "
        "a slow consumer never grows the worker's memory.",
    )
    cors: CorsConfig = Field(default_factory=CorsConfig, description="CORS settings.")

    @model_validator(mode="after")
    def _pending_below_connections(self) -> ServerConfig:
        pending = self.max_pending_connections
        if pending is not None and pending >= self.max_connections:
            # At the cap, idle connections would again hold every slot (the 503s).
            raise ValueError(
                f"server.max_pending_connections ({pending}) must be less than "
                f"server.max_connections ({self.max_connections})"
            )
        return self

    @model_validator(mode="after")
    def _stream_limits(self) -> ServerConfig:
        streams = self.max_streams
        if streams is not None and streams >= self.max_connections:
            # Streams never end by themselves: at the cap, no slot would be left for requests.
            raise ValueError(
                f"server.max_streams ({streams}) must be less than "
                f"server.max_connections ({self.max_connections})"
            )
        drain = self.stream_drain_seconds
        if drain is not None and drain > self.graceful_shutdown_timeout_seconds:
            raise ValueError(
                f"server.stream_drain_seconds ({drain:g}) must be at most "
                f"server.graceful_shutdown_timeout_seconds "
                f"({self.graceful_shutdown_timeout_seconds:g}): a stream may not keep a "
                "draining worker alive past its deadline"
            )
        return self

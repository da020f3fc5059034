"""Optional OpenTelemetry tracing (the ``tracing`` extra): a span per request and per
Redis call, sampled at ``observability.tracing.sample_rate``, exported over OTLP/HTTP.

OpenTelemetry is imported only when tracing is enabled, so a worker without the extra
pays nothing. The tracer provider is private to the app (never the global one): a
reload builds new workers with a new provider, and tests can build several apps.
Spans carry the protocol, the command name (bounded, see ``metrics.command_label``)
and the HTTP status; never keys, values or credentials.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from types import ModuleType
from typing import Protocol

from gateway_worker.config import TracingConfig
from gateway_worker.errors import GatewayError
from gateway_worker.observability.metrics import command_label
from gateway_worker.redis.executor import DedicatedConnection, RedisExecutor
from gateway_worker.redis.values import ReplyError, RespValue


class TracingUnavailable(GatewayError):
    """Tracing is enabled but the OpenTelemetry SDK (the ``tracing`` extra) is missing."""


# What we use of OpenTelemetry's API. It is imported by name (an optional extra, see
# ``_module``), so these describe the objects at that edge.


class Span(Protocol):
    """An OpenTelemetry span."""

    def set_attribute(self, key: str, value: str | int) -> None: ...


class _Tracer(Protocol):
    def start_as_current_span(
        self, name: str, *, kind: object, attributes: Mapping[str, str]
    ) -> AbstractContextManager[Span]: ...


class _TracerProvider(Protocol):
    def shutdown(self) -> None: ...


class Tracing:
    """The app's tracer; ``enabled`` is False (and everything a no-op) when off."""

    def __init__(self, cfg: TracingConfig, exporter: object | None = None) -> None:
        self.enabled = cfg.enabled
        self._provider: _TracerProvider | None = None
        self._tracer: _Tracer | None = None
        if not self.enabled:
            return
        try:
            resources = _module("opentelemetry.sdk.resources")
            sdk_trace = _module("opentelemetry.sdk.trace")
            export = _module("opentelemetry.sdk.trace.export")
            sampling = _module("opentelemetry.sdk.trace.sampling")
        except ImportError as exc:
            raise TracingUnavailable(
                "observability.tracing.enabled is true but the OpenTelemetry SDK is not "
                "installed: pip install 'redis-gateway[tracing]'"
            ) from exc
        provider = sdk_trace.TracerProvider(
            resource=resources.Resource.create({"service.name": cfg.service_name}),
            sampler=sampling.ParentBased(sampling.TraceIdRatioBased(cfg.sample_rate)),
        )
        if exporter is None:
            try:
                otlp = _module("opentelemetry.exporter.otlp.proto.http.trace_exporter")
            except ImportError as exc:
                raise TracingUnavailable(
                    "observability.tracing.enabled is true but the OTLP exporter is not "
                    "installed: pip install 'redis-gateway[tracing]'"
                ) from exc
            provider.add_span_processor(
                export.BatchSpanProcessor(otlp.OTLPSpanExporter(endpoint=cfg.endpoint))
            )
        else:
            provider.add_span_processor(export.SimpleSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("redis-gateway")

    @contextlib.contextmanager
    def request_span(self, method: str, protocol: str) -> Iterator[Span | None]:
        """The span of one HTTP request (``None`` when tracing is off)."""
        if self._tracer is None:
            yield None
            return
        with self._tracer.start_as_current_span(
            f"{method} {protocol}",
            kind=_server_kind(),
            attributes={"http.request.method": method, "gateway.protocol": protocol},
        ) as span:
            yield span

    @staticmethod
    def finish_request(span: Span | None, status: int, command: str | None) -> None:
        if span is not None:
            span.set_attribute("http.response.status_code", status)
            span.set_attribute("db.operation.name", command_label(command))

    def wrap(self, redis: RedisExecutor) -> RedisExecutor:
        """``redis`` with a span around every call (itself when tracing is off)."""
        return redis if self._tracer is None else TracedExecutor(redis, self._tracer)

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def _module(name: str) -> ModuleType:
    # importlib keeps the optional dependency out of mypy's view: the extra is not
    # installed where the type check runs.
    return importlib.import_module(name)


def _server_kind() -> object:
    return _module("opentelemetry.trace").SpanKind.SERVER


def _client_kind() -> object:
    return _module("opentelemetry.trace").SpanKind.CLIENT


class TracedExecutor:
    """A ``RedisExecutor`` that opens a client span per call."""

    def __init__(self, inner: RedisExecutor, tracer: _Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    def _span(self, operation: str, db: int | None) -> AbstractContextManager[Span]:
        attributes: dict[str, str] = {"db.system": "redis", "db.operation.name": operation}
        if db is not None:
            attributes["db.namespace"] = str(db)
        return self._tracer.start_as_current_span(
            f"redis {operation}", kind=_client_kind(), attributes=attributes
        )

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        name = command_label(args[0].decode("ascii", "replace") if args else None)
        with self._span(name, db) as span:
            reply = await self._inner.execute(args, db)
            if isinstance(reply, ReplyError):
                span.set_attribute("db.response.status_code", reply.split(" ", 1)[0])
            return reply

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        with self._span("PIPELINE", db) as span:
            span.set_attribute("db.operation.batch.size", len(commands))
            return await self._inner.pipeline(commands, db)

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        with self._span("MULTI", db) as span:
            span.set_attribute("db.operation.batch.size", len(commands))
            return await self._inner.transaction(commands, db)

    def dedicated(self, db: int | None = None) -> AbstractAsyncContextManager[DedicatedConnection]:
        return self._dedicated(db)

    @contextlib.asynccontextmanager
    async def _dedicated(self, db: int | None) -> AsyncIterator[DedicatedConnection]:
        with self._span("DEDICATED", db):
            async with self._inner.dedicated(db) as conn:
                yield conn

    async def ping(self) -> bool:
        with self._span("PING", None):
            return await self._inner.ping()

"""Fakes for unit tests only (integration tests use a real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.executor import DedicatedConnection
from gateway_worker.redis.values import ReplyError, RespValue


class SingleCommandRedis:
    """A RedisExecutor for handlers that only use ``execute``: subclasses answer it;
    pipelines, transactions and dedicated connections are not available."""

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        raise NotImplementedError

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        raise NotImplementedError

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        raise NotImplementedError

    @asynccontextmanager
    async def dedicated(self, db: int | None = None) -> AsyncIterator[DedicatedConnection]:
        raise RedisUnavailable("no dedicated connection in this fake")
        yield  # pragma: no cover

    async def ping(self) -> bool:
        return True


class FakeMetrics:
    """Records what a stream registry reports (``streams.registry.StreamMetrics``)."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[tuple[str, str]] = []
        self.refused: list[str] = []

    def stream_opened(self, kind: str) -> None:
        self.opened.append(kind)

    def stream_closed(self, kind: str, reason: str) -> None:
        self.closed.append((kind, reason))

    def stream_refused(self, kind: str) -> None:
        self.refused.append(kind)

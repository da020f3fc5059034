"""RESP values as the gateway sees them, and the Redis executor interface.

Replies keep their wire shape (no redis-py conversions), because both protocols
must reproduce them exactly:

* ``None``            nil bulk (``$-1``)
* ``NIL_ARRAY``       nil array (``*-1``: BLPOP timing out, EXEC aborted by WATCH);
                      nil to every format, except Upstash ``resp2``, which must echo
                      ``*-1`` byte for byte (``NilArray``, falsy singleton)
* ``int``             integer reply
* ``bytes``           bulk string
* ``Status``          simple string (``+OK``); a ``bytes`` subclass, so code that
                      does not care treats it as bytes, and Webdis can render
                      ``[true,"OK"]`` while Upstash renders ``"OK"``
* ``ReplyError``      an error reply (``-ERR ...``), *returned as a value*, never
                      raised, so pipelines can carry per-command errors
* ``list[RespValue]`` array reply (nested)

Connection problems are *raised* as ``gateway_worker.errors.RedisUnavailable``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeAlias


class Status(bytes):
    """A RESP simple-string reply (``+OK``, ``+PONG``, ``+QUEUED``)."""


class ReplyError(str):
    """A RESP error reply, e.g. ``ERR unknown command``; a value, not an exception."""


class NilArray:
    """The RESP nil array (``*-1``); use the ``NIL_ARRAY`` singleton."""

    __slots__ = ()
    _instance: NilArray | None = None

    def __new__(cls) -> NilArray:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NIL_ARRAY"

    def __reduce__(self) -> str:
        return "NIL_ARRAY"  # copies and pickles stay the singleton


NIL_ARRAY = NilArray()

RespValue: TypeAlias = "int | bytes | Status | ReplyError | list[RespValue] | NilArray | None"


class DedicatedConnection(Protocol):
    """A connection used by one request alone (blocking commands, MULTI/EXEC, pub/sub)."""

    async def send(self, args: Sequence[bytes]) -> None:
        """Write one command without waiting for its reply."""

    async def read(self, timeout: float | None = None) -> RespValue:
        """Read the next reply (or pushed pub/sub message)."""

    async def execute(self, args: Sequence[bytes], timeout: float | None = None) -> RespValue:
        """send() then read()."""


class RedisExecutor(Protocol):
    """What protocol handlers use to talk to Redis (implemented in ``gateway_worker.redis``)."""

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        """Run one command on the worker's shared multiplexed connection
        (or a dedicated one when it is a blocking command). ``db`` selects another
        database for this command only (Webdis ``/DB/CMD``)."""

    async def pipeline(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue]:
        """Run several commands back to back, not atomically; one reply each."""

    async def transaction(
        self, commands: Sequence[Sequence[bytes]], db: int | None = None
    ) -> list[RespValue] | ReplyError:
        """MULTI ... EXEC on one dedicated connection; a ReplyError if discarded."""

    def dedicated(self, db: int | None = None) -> AbstractAsyncContextManager[DedicatedConnection]:
        """Borrow a dedicated connection (pool bounded by redis.pool_max_size)."""

    async def ping(self) -> bool:
        """True when Redis answers PING within the command timeout."""

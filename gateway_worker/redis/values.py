"""RESP values as the gateway sees them (what Redis replies, as protocol handlers get it).

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

Connection problems are *raised* as ``gateway_worker.errors.RedisUnavailable``. The
interface that returns these values is ``gateway_worker.redis.executor.RedisExecutor``;
their bytes on the wire are ``gateway_worker.redis.wire``'s business.
"""

from __future__ import annotations

from typing import TypeAlias


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

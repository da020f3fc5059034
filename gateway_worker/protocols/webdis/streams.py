"""Webdis's pub/sub streams: ``GET /SUBSCRIBE/ch`` (``/PSUBSCRIBE/pattern``) as a chunked
response, one formatted message per chunk; and ``WebdisSink``, which renders a
subscriber's events the way Webdis renders Redis's pushes (shared with the WebSocket
endpoints, ``webdis.websocket``).

Each chunk is the reply format applied to the push as Redis sends it:
``{"SUBSCRIBE":["subscribe","ch",1]}``, then ``{"SUBSCRIBE":["message","ch","hi"]}``
(``["pmessage",pattern,channel,payload]``); JSONP, ``.raw`` and ``.msg`` apply as for any
reply. The subscription lives on the worker's pub/sub hub (``redis.pubsub``), in the
stream limit (``server.max_streams``: 503 beyond); a chunked stream has no heartbeat
nor reconnect hint in Webdis's format: when the worker drains it simply ends at the
drain deadline (the client resubscribes).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AsyncExitStack

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import Response
from gateway_worker.protocols.json_bodies import error_response, too_many_streams
from gateway_worker.protocols.webdis.etag import etag_of
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.pubsub import CHANNELS, PATTERNS, PubSubRefused
from gateway_worker.redis.values import ReplyError, RespValue
from gateway_worker.streams.body import StreamBody
from gateway_worker.streams.outbox import ERROR, REDIS, Outbox
from gateway_worker.streams.registry import WEBDIS_CHUNKED, StreamSlot
from gateway_worker.streams.services import StreamServices

#: The commands answered with a stream (with at least one name), and their kind.
SUBSCRIBE_KINDS = {b"SUBSCRIBE": CHANNELS, b"PSUBSCRIBE": PATTERNS}
_UNSUBSCRIBED = {CHANNELS: b"unsubscribe", PATTERNS: b"punsubscribe"}

Render = Callable[[RespValue], bytes | None]


class WebdisSink:
    """Renders a subscriber's events as Webdis renders Redis's pushes, into an outbox."""

    __slots__ = ("_outbox", "_render")

    def __init__(self, outbox: Outbox, render: Render) -> None:
        self._outbox = outbox
        self._render = render

    def _put(self, push: list[RespValue]) -> None:
        out = self._render(push)
        if out:
            self._outbox.put(out)

    def subscribed(self, kind: bytes, name: bytes, count: int) -> None:
        self._put([kind, name, count])

    def unsubscribed(self, kind: bytes, name: bytes, count: int) -> None:
        self._put([_UNSUBSCRIBED[kind], name, count])

    def message(self, pattern: bytes | None, channel: bytes, payload: bytes) -> None:
        if pattern is None:
            self._put([b"message", channel, payload])
        else:
            self._put([b"pmessage", pattern, channel, payload])

    def ended(self, reason: str) -> None:
        self._outbox.end(reason)


def _open_slot(services: StreamServices | None) -> StreamSlot | Response:
    if services is None:
        return error_response(501, "streams are not available in this app")
    slot = services.registry.open(WEBDIS_CHUNKED)
    if slot is None:
        return too_many_streams(services.settings.max_streams)
    return slot


async def chunked_subscribe(
    args: list[bytes],
    render: Render,
    content_type: str,
    extra: list[tuple[str, str]],
    services: StreamServices | None,
) -> Response:
    """Start a SUBSCRIBE/PSUBSCRIBE stream (the guard already allowed ``args``)."""
    slot = _open_slot(services)
    if isinstance(slot, Response):
        return slot
    assert services is not None
    body = StreamBody(slot)
    if not slot.ending:
        subscriber = services.pubsub.subscriber(WebdisSink(slot.outbox, render))
        body.release = subscriber.close
        try:
            await subscriber.subscribe(SUBSCRIBE_KINDS[args[0].upper()], args[1:])
        except BaseException as exc:
            await subscriber.close()
            slot.close(REDIS if isinstance(exc, RedisUnavailable) else ERROR)
            if isinstance(exc, RedisUnavailable):
                return error_response(503, f"Redis unavailable: {exc}")
            if isinstance(exc, PubSubRefused):
                out = render(exc.reply) or b""
                headers = [*extra, ("ETag", etag_of(out))]
                return Response(200, out, content_type=content_type, headers=headers)
            raise
    return Response(200, content_type=content_type, headers=extra, stream=body)


async def sharded_subscribe(
    args: list[bytes],
    db: int | None,
    redis: RedisExecutor,
    *,
    render: Render,
    content_type: str,
    extra: list[tuple[str, str]],
    services: StreamServices | None,
) -> Response:
    """Start an SSUBSCRIBE stream (sharded pub/sub, Redis 7+) on a dedicated connection:
    in cluster mode the one to its channels' node, which the hub's single connection is
    not. It counts in ``server.max_streams`` and drains like the other streams."""
    slot = _open_slot(services)
    if isinstance(slot, Response):
        return slot
    stack = AsyncExitStack()
    try:
        conn = await stack.enter_async_context(redis.dedicated(db))
        first = await conn.execute(args, None)
    except BaseException as exc:
        await stack.aclose()
        slot.close(REDIS if isinstance(exc, RedisUnavailable) else ERROR)
        if isinstance(exc, RedisUnavailable):
            return error_response(503, f"Redis unavailable: {exc}")
        raise
    if isinstance(first, ReplyError):
        await stack.aclose()
        slot.close(ERROR)
        out = render(first) or b""
        headers = [*extra, ("ETag", etag_of(out))]
        return Response(200, out, content_type=content_type, headers=headers)

    async def relay_pushes() -> None:
        reply: RespValue = first
        try:
            while True:
                out = render(reply)
                if out:
                    slot.outbox.put(out)
                reply = await conn.read(None)
        except RedisUnavailable:
            slot.outbox.end(REDIS)

    reader = asyncio.create_task(relay_pushes(), name="webdis-ssubscribe")

    async def release() -> None:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await stack.aclose()

    return Response(
        200, content_type=content_type, headers=extra, stream=StreamBody(slot, release=release)
    )

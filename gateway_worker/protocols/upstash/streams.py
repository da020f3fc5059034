"""Upstash's Server-Sent Events streams (API.md §1): ``/subscribe``, ``/psubscribe``,
``/monitor``, as Upstash's REST API documents them.

* ``POST|GET /subscribe/<channel>[/<channel>...]`` (``/psubscribe/<pattern>...``) with
  ``Accept: text/event-stream``: ``data: subscribe,chat,1`` once per name as Redis
  confirms it, then ``data: message,chat,hello`` (``pmessage,<pattern>,<channel>,<payload>``)
  per message; the command may also come as the JSON body of ``POST /``.
* ``POST|GET /monitor``: ``data: "OK"``, then one event per command as MONITOR prints it.
* ``Upstash-Encoding: base64``: channels, patterns, payloads and MONITOR lines are base64
  of their bytes (event types, counts and ``"OK"`` stay as they are).
* A heartbeat comment (``: ping``) after ``server.stream_heartbeat_seconds`` of silence;
  when the worker drains, ``retry:`` + ``event: reconnect`` (``streams.sse.reconnect``).

The path form's body is not an argument here (the JavaScript client POSTs ``[]``);
query parameters are, as everywhere in the path form. Auth, rate limits and the
command policy were applied when the stream opened (the guard judges ``SUBSCRIBE
chat``, so a ``key_prefix`` credential subscribes under its prefix only; ``MONITOR`` is
denied unless a credential's policy allows it). Refusals: 400 (no ``Accept:
text/event-stream``, no channel, a Redis refusal), 403 (policy), 405 (not GET/POST),
503 (``server.max_streams`` open, or Redis unreachable).
"""

from __future__ import annotations

from base64 import b64encode
from collections.abc import Callable

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.protocols.json_bodies import error_response, too_many_streams
from gateway_worker.redis.monitor import MonitorRefused
from gateway_worker.redis.pubsub import CHANNELS, PATTERNS, PubSubRefused
from gateway_worker.streams import sse
from gateway_worker.streams.body import StreamBody
from gateway_worker.streams.outbox import ERROR, REDIS, Outbox
from gateway_worker.streams.registry import UPSTASH_MONITOR, UPSTASH_SSE
from gateway_worker.streams.services import StreamServices

#: The commands answered with a stream, and what they subscribe to.
STREAMS: dict[bytes, bytes] = {b"SUBSCRIBE": CHANNELS, b"PSUBSCRIBE": PATTERNS}
MONITOR = b"MONITOR"
STREAM_COMMANDS = frozenset({*STREAMS, MONITOR})
_UNSUBSCRIBED = {CHANNELS: b"unsubscribe", PATTERNS: b"punsubscribe"}


def _plain(value: bytes) -> bytes:
    return value


def _base64(value: bytes) -> bytes:
    return b64encode(value)


class SseSink:
    """Renders a subscriber's (or a MONITOR feed's) events into a stream's outbox."""

    __slots__ = ("_encode", "_outbox")

    def __init__(self, outbox: Outbox, encode: Callable[[bytes], bytes]) -> None:
        self._outbox = outbox
        self._encode = encode

    def subscribed(self, kind: bytes, name: bytes, count: int) -> None:
        self._outbox.put(sse.event(b"%b,%b,%d" % (kind, self._encode(name), count)))

    def unsubscribed(self, kind: bytes, name: bytes, count: int) -> None:
        event = b"%b,%b,%d" % (_UNSUBSCRIBED[kind], self._encode(name), count)
        self._outbox.put(sse.event(event))

    def message(self, pattern: bytes | None, channel: bytes, payload: bytes) -> None:
        encode = self._encode
        if pattern is None:
            data = b"message," + encode(channel) + b"," + encode(payload)
        else:
            data = b"pmessage," + encode(pattern) + b"," + encode(channel) + b"," + encode(payload)
        self._outbox.put(sse.event(data))

    def line(self, text: bytes) -> None:
        self._outbox.put(sse.event(self._encode(text)))

    def ended(self, reason: str) -> None:
        self._outbox.end(reason)


def _refusal(request: Request, args: list[bytes]) -> Response | None:
    """The request cannot be a stream: why (None when it can)."""
    name = args[0].upper()
    shown = name.decode("ascii", "replace")
    if request.method not in ("GET", "POST"):
        return error_response(
            405, f"{shown} streams need GET or POST, not {request.method}", [("allow", "GET, POST")]
        )
    if sse.CONTENT_TYPE not in request.headers.get("accept", ""):
        return error_response(
            400,
            f"ERR {shown} answers a Server-Sent Events stream: "
            f"send the header Accept: {sse.CONTENT_TYPE}",
        )
    if name != MONITOR and len(args) < 2:
        return error_response(400, f"ERR wrong number of arguments for '{shown.lower()}' command")
    if name == MONITOR and len(args) > 1:
        return error_response(400, "ERR wrong number of arguments for 'monitor' command")
    return None


async def open_stream(
    request: Request, args: list[bytes], guard: CommandGuard, services: StreamServices
) -> Response:
    """Answer a stream command (see the module docstring)."""
    refused = _refusal(request, args)
    if refused is not None:
        return refused
    reason = guard(args)
    if reason is not None:
        return error_response(403, reason)
    name = args[0].upper()
    slot = services.registry.open(UPSTASH_MONITOR if name == MONITOR else UPSTASH_SSE)
    if slot is None:
        return too_many_streams(services.settings.max_streams)
    body = StreamBody(slot, heartbeat=sse.HEARTBEAT, farewell=sse.reconnect())
    if not slot.ending:  # (opened while the worker drains: only the reconnect hint)
        encode = _base64 if _wants_base64(request) else _plain
        refused = await _connect(body, SseSink(slot.outbox, encode), name, args[1:], services)
        if refused is not None:
            return refused
    return Response(200, content_type=sse.CONTENT_TYPE, headers=list(sse.HEADERS), stream=body)


async def _connect(
    body: StreamBody, sink: SseSink, name: bytes, names: list[bytes], services: StreamServices
) -> Response | None:
    """Connect the stream's source; on failure release it, close the slot, say why."""
    try:
        if name == MONITOR:
            feed = await services.open_monitor(sink)
            body.slot.outbox.put(sse.event(b'"OK"'))  # before the feed's first line
            body.release = feed.close
        else:
            subscriber = services.pubsub.subscriber(sink)
            body.release = subscriber.close
            await subscriber.subscribe(STREAMS[name], names)
    except BaseException as exc:
        if body.release is not None:
            await body.release()
        body.slot.close(REDIS if isinstance(exc, RedisUnavailable) else ERROR)
        if isinstance(exc, RedisUnavailable):
            return error_response(503, f"Redis unavailable: {exc}")
        if isinstance(exc, PubSubRefused | MonitorRefused):
            return error_response(400, str(exc.reply))
        raise
    return None


def _wants_base64(request: Request) -> bool:
    return request.headers.get("upstash-encoding", "").lower() == "base64"

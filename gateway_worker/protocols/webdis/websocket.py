"""Webdis's WebSocket endpoints (``api.webdis_websockets``; API.md §2), one session per
socket: commands in, the replies the HTTP form would give, and pub/sub pushes, out.

* ``<prefix>/.json`` (and ``<prefix>/`` itself, as in Webdis): each text (or binary)
  message is a JSON array command, ``["SET","k","v"]`` (numbers keep their text); each
  reply is the JSON the HTTP form answers, ``{"SET":[true,"OK"]}``, sent as a text
  message.
* ``<prefix>/.raw``: each message is a RESP array command, ``*2\\r\\n$3\\r\\nGET...``; each
  reply its RESP bytes (as ``.raw`` over HTTP), sent as a binary message (RESP needs not
  be UTF-8).
* ``SUBSCRIBE``/``PSUBSCRIBE`` subscribe the socket on the worker's pub/sub hub: the
  confirmations and then every message arrive as replies of that command would,
  ``{"SUBSCRIBE":["message","chat","hi"]}``; ``UNSUBSCRIBE``/``PUNSUBSCRIBE`` (no name:
  all) answer ``{"UNSUBSCRIBE":["unsubscribe","chat",0]}``. Other commands keep working
  while subscribed (they go to the shared connection, not the subscriber's).
* Every command is checked by the principal's guard (403's reason as ``{"error": ...}``
  or ``-ERR ...``); a message that is not a command gets an error and the socket stays.

Replies are queued in order in the socket's outbox (``streams.outbox``), which the app's
WebSocket adapter (``app.websocket``) sends; commands run one after the other.
"""

from __future__ import annotations

import json

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import CommandGuard
from gateway_worker.protocols.json_bodies import json_bytes
from gateway_worker.protocols.webdis.formats import render_raw
from gateway_worker.protocols.webdis.json_format import render_json
from gateway_worker.protocols.webdis.streams import SUBSCRIBE_KINDS, WebdisSink
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.pubsub import CHANNELS, PATTERNS, PubSub, PubSubRefused, Subscriber
from gateway_worker.redis.values import RespValue
from gateway_worker.redis.wire import ProtocolViolation, ReplyParser
from gateway_worker.streams.outbox import Outbox

#: Which endpoint speaks which format (paths relative to the Webdis prefix).
ENDPOINTS = {"/": "json", "/.json": "json", "/.raw": "raw"}
UNSUBSCRIBE_KINDS = {b"UNSUBSCRIBE": CHANNELS, b"PUNSUBSCRIBE": PATTERNS}
#: The push types of each subscription kind (``WebdisSink`` renders them).
_PUSHES = {
    b"subscribe": CHANNELS,
    b"message": CHANNELS,
    b"unsubscribe": CHANNELS,
    b"psubscribe": PATTERNS,
    b"pmessage": PATTERNS,
    b"punsubscribe": PATTERNS,
}


class BadMessage(Exception):
    """A message that is not a command (``str()`` is the client's message)."""


def parse_json_command(data: str | bytes, max_arguments: int) -> list[bytes]:
    """``["CMD","arg",1]`` → arguments (numbers keep their exact text)."""
    try:
        value = json.loads(data, parse_int=str, parse_float=str, parse_constant=str)
    except (ValueError, RecursionError) as exc:
        raise BadMessage(f"not a JSON array command: {exc}") from None
    if not isinstance(value, list) or not value:
        raise BadMessage('expected a JSON array command, like ["GET","key"]')
    if not all(isinstance(item, str) for item in value):
        raise BadMessage("every element of a command must be a string or a number")
    if len(value) - 1 > max_arguments:
        raise BadMessage(f"too many arguments: {len(value) - 1} > server.max_arguments")
    return [item.encode("utf-8", "surrogatepass") for item in value]


def parse_raw_command(data: str | bytes, max_arguments: int) -> list[bytes]:
    """One RESP array of bulk strings (or integers) → arguments."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        values = ReplyParser().feed(raw)
    except ProtocolViolation as exc:
        raise BadMessage(f"not a RESP command: {exc}") from None
    if len(values) != 1 or not isinstance(values[0], list) or not values[0]:
        raise BadMessage(
            "expected one RESP array command, like *2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n"
        )
    args: list[bytes] = []
    for item in values[0]:
        if isinstance(item, bool) or not isinstance(item, bytes | int):
            raise BadMessage("every element of a command must be a bulk string or an integer")
        args.append(item if isinstance(item, bytes) else b"%d" % item)
    if len(args) - 1 > max_arguments:
        raise BadMessage(f"too many arguments: {len(args) - 1} > server.max_arguments")
    return args


class WebdisSocket:
    """One WebSocket session (see the module docstring)."""

    def __init__(
        self,
        fmt: str,
        *,
        redis: RedisExecutor,
        guard: CommandGuard,
        pubsub: PubSub,
        outbox: Outbox,
        max_arguments: int,
    ) -> None:
        self.fmt = fmt
        self._redis = redis
        self._guard = guard
        self._pubsub = pubsub
        self.outbox = outbox
        self._max_arguments = max_arguments
        self._parse = parse_raw_command if fmt == "raw" else parse_json_command
        self._subscriber: Subscriber | None = None
        # The command name as sent, per push type (Webdis names a push by its command).
        self._verbs: dict[bytes, bytes] = {
            b"subscribe": b"SUBSCRIBE",
            b"psubscribe": b"PSUBSCRIBE",
            b"unsubscribe": b"UNSUBSCRIBE",
            b"punsubscribe": b"PUNSUBSCRIBE",
        }

    def render(self, verb: bytes, reply: RespValue) -> bytes:
        if self.fmt == "raw":
            return render_raw(reply)
        return render_json(verb.decode("utf-8", "replace"), reply, None)

    def error(self, message: str) -> bytes:
        """A gateway refusal, as the HTTP form's body (JSON) or a RESP error (raw)."""
        if self.fmt == "raw":
            return b"-ERR " + message.replace("\r", " ").replace("\n", " ").encode() + b"\r\n"
        return json_bytes({"error": message})

    def push(self, message: bytes) -> None:
        self.outbox.put(message)

    async def handle(self, data: str | bytes) -> None:
        """Run one message's command; its reply (or error) goes to the outbox."""
        try:
            args = self._parse(data, self._max_arguments)
        except BadMessage as exc:
            self.push(self.error(str(exc)))
            return
        reason = self._guard(args)
        if reason is not None:
            self.push(self.error(reason))
            return
        name = args[0].upper()
        try:
            if name in SUBSCRIBE_KINDS or name in UNSUBSCRIBE_KINDS:
                await self._pubsub_command(name, args)
            else:
                self.push(self.render(args[0], await self._redis.execute(args)))
        except RedisUnavailable as exc:
            self.push(self.error(f"Redis unavailable: {exc}"))
        except PubSubRefused as exc:
            self.push(self.render(args[0], exc.reply))

    async def _pubsub_command(self, name: bytes, args: list[bytes]) -> None:
        subscriber = self._subscriber
        if subscriber is None:
            subscriber = self._subscriber = self._pubsub.subscriber(
                WebdisSink(self.outbox, self._render_push)
            )
        kind = SUBSCRIBE_KINDS.get(name)
        if kind is not None:
            if len(args) < 2:
                self.push(self.error(f"wrong number of arguments for '{name.decode().lower()}'"))
                return
            self._verbs[kind] = args[0]
            await subscriber.subscribe(kind, args[1:])
            return
        kind = UNSUBSCRIBE_KINDS[name]
        push_type = b"unsubscribe" if kind is CHANNELS else b"punsubscribe"
        self._verbs[push_type] = args[0]
        if not await subscriber.unsubscribe(kind, args[1:] or None):
            # Nothing to leave: Redis answers with a nil name and the count.
            self.push(self.render(args[0], [push_type, None, subscriber.count]))

    def _render_push(self, push: RespValue) -> bytes | None:
        assert isinstance(push, list) and isinstance(push[0], bytes)
        kind = push[0]
        verb = self._verbs.get(kind) or self._verbs[_PUSHES[kind]]
        return self.render(verb, push)

    async def close(self) -> None:
        """The socket is gone: leave every subscription."""
        if self._subscriber is not None:
            await self._subscriber.close()

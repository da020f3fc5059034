"""``PubSub``: one Redis connection carrying every SUBSCRIBE and PSUBSCRIBE of a worker.

A stream per dedicated connection would hold one of the ``redis.pool_max_size``
connections (10 by default) for as long as its client likes, and open one Redis client
per subscriber. Redis pub/sub has no database (channels are global), so one connection
per worker serves every stream: the hub subscribes to the union of what its streams
want, counts who wants what, and fans the messages out.

Interface (used by the streaming endpoints of both protocols)::

    hub = PubSub(options, timeout)             # once per worker; connects on first use
    sub = hub.subscriber(sink)                 # one per stream
    await sub.subscribe(CHANNELS, [b"chat"])   # or PATTERNS; RedisUnavailable, PubSubRefused
    await sub.unsubscribe(CHANNELS, [b"chat"]) # names=None: all of that kind
    await sub.close()                          # when the stream ends
    await hub.close()                          # at worker shutdown

The sink (``Sink``) hears, in Redis's order: ``subscribed`` once per name as Redis
confirms it (the count is this subscriber's, as if it had a connection of its own), then
``message`` for every message published after that confirmation; ``unsubscribed`` when
the subscriber drops a name; ``ended`` once if the hub loses Redis (nothing follows:
the stream should end, its client resubscribes). Sink methods are called from the hub's
reader task and must not block or call back into the hub.

Confirmations are matched to requests in order (a connection answers its commands in
order): a subscriber is attached to a name exactly when Redis confirms *its* SUBSCRIBE,
so it never sees a message published before its confirmation nor misses one published
after. When the last subscriber of a name leaves, the hub sends UNSUBSCRIBE.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, cast

from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis.connection import ConnectOptions, RespConnection, open_connection
from gateway_worker.redis.values import ReplyError, RespValue

#: The two kinds of subscription, named as Redis names their confirmations.
CHANNELS = b"subscribe"
PATTERNS = b"psubscribe"
_SUBSCRIBE = {CHANNELS: b"SUBSCRIBE", PATTERNS: b"PSUBSCRIBE"}
_UNSUBSCRIBE = {CHANNELS: b"UNSUBSCRIBE", PATTERNS: b"PUNSUBSCRIBE"}
_CONFIRMATIONS = {
    b"subscribe": CHANNELS,
    b"psubscribe": PATTERNS,
    b"unsubscribe": CHANNELS,
    b"punsubscribe": PATTERNS,
}


class Sink(Protocol):
    """Where a subscriber's events go (a stream's renderer)."""

    def subscribed(self, kind: bytes, name: bytes, count: int) -> None: ...

    def unsubscribed(self, kind: bytes, name: bytes, count: int) -> None: ...

    def message(self, pattern: bytes | None, channel: bytes, payload: bytes) -> None: ...

    def ended(self, reason: str) -> None: ...


class PubSubRefused(Exception):
    """Redis refused a SUBSCRIBE (e.g. its ACL): ``reply`` is its error."""

    def __init__(self, reply: ReplyError) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass
class _Name:
    """What the hub knows of one channel or pattern."""

    subs: set[Subscriber] = field(default_factory=set)
    pending: int = 0  # SUBSCRIBEs sent for it and not confirmed yet
    subscribed: bool = False  # Redis's state after the commands sent so far


@dataclass
class _Sent:
    """A command sent on the hub's connection, waiting for its per-name replies."""

    kind: bytes
    names: list[bytes]
    subscriber: Subscriber | None  # None: an UNSUBSCRIBE
    answered: int = 0


class PubSub:
    """The worker's pub/sub connection and who is subscribed to what."""

    def __init__(
        self, options: ConnectOptions | Callable[[], ConnectOptions], timeout: float
    ) -> None:
        #: Where to connect, read at each (re)connect (a callable follows a failover).
        self._options = options if callable(options) else (lambda: options)
        self._timeout = timeout
        self._conn: RespConnection | None = None
        self._opening: asyncio.Task[RespConnection] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._names: dict[bytes, dict[bytes, _Name]] = {CHANNELS: {}, PATTERNS: {}}
        self._sent: deque[_Sent] = deque()
        self._subscribers: set[Subscriber] = set()

    def subscriber(self, sink: Sink) -> Subscriber:
        """A new subscriber (subscribed to nothing yet)."""
        return Subscriber(self, sink)

    @property
    def names(self) -> int:
        """Channels and patterns the hub is subscribed to (for tests and metrics)."""
        return sum(1 for names in self._names.values() for n in names.values() if n.subscribed)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._conn is not None:
            self._conn.close()
            await self._conn.wait_closed()
        self._lost("the gateway is shutting down")

    # -- the connection ---------------------------------------------------------------

    async def _connection(self) -> RespConnection:
        conn = self._conn
        if conn is not None and conn.is_open:
            return conn
        if self._opening is None:
            self._opening = asyncio.create_task(self._open(), name="redis-pubsub-connect")
            self._opening.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._opening)

    async def _open(self) -> RespConnection:
        try:
            conn = await open_connection(self._options(), dedicated=True)
            self._conn = conn
            self._reader = asyncio.create_task(self._read(conn), name="redis-pubsub")
            return conn
        finally:
            self._opening = None

    async def _read(self, conn: RespConnection) -> None:
        try:
            while True:
                outgoing = self._dispatch(await conn.read(None))
                for args in outgoing:
                    await conn.send(args)
        except RedisUnavailable as exc:
            if self._conn is conn:
                self._lost(str(exc))

    def _lost(self, why: str) -> None:
        """The connection is gone: every subscriber ends (its client resubscribes)."""
        self._conn = None
        self._reader = None
        for sent in self._sent:
            if sent.subscriber is not None:
                sent.subscriber.failed(RedisUnavailable(why))
        self._sent.clear()
        for names in self._names.values():
            names.clear()
        subscribers, self._subscribers = self._subscribers, set()
        for sub in subscribers:
            sub.lost()

    # -- what Redis sends -------------------------------------------------------------

    def _dispatch(self, reply: RespValue) -> list[list[bytes]]:
        """Handle one push; returns the commands to send in consequence."""
        if isinstance(reply, ReplyError):
            return self._refused(reply)
        if not isinstance(reply, list) or len(reply) < 3:
            return []
        kind, *rest = reply
        if kind in (b"message", b"pmessage"):
            if not all(isinstance(part, bytes) for part in rest):
                return []
            parts = cast("list[bytes]", rest)  # every part checked just above
            if kind == b"message" and len(parts) == 2:
                self._deliver(CHANNELS, parts[0], None, parts[0], parts[1])
            elif kind == b"pmessage" and len(parts) == 3:
                self._deliver(PATTERNS, parts[0], parts[0], parts[1], parts[2])
            return []
        if isinstance(kind, bytes) and kind in _CONFIRMATIONS:
            return self._answered(kind, rest[0])
        return []

    def _deliver(
        self, kind: bytes, name: bytes, pattern: bytes | None, channel: bytes, payload: bytes
    ) -> None:
        state = self._names[kind].get(name)
        if state is not None:
            for sub in tuple(state.subs):
                sub.sink.message(pattern, channel, payload)

    def _answered(self, confirmation: bytes, name: RespValue) -> list[list[bytes]]:
        if not self._sent or not isinstance(name, bytes):
            return []
        sent = self._sent[0]
        sent.answered += 1
        if sent.answered == len(sent.names):
            self._sent.popleft()
        if sent.subscriber is None or confirmation not in (b"subscribe", b"psubscribe"):
            return []
        state = self._names[sent.kind].setdefault(name, _Name())
        state.pending -= 1
        sent.subscriber.confirmed(sent.kind, name, state)
        return self._release(sent.kind, name, state)

    def _refused(self, reply: ReplyError) -> list[list[bytes]]:
        """A whole SUBSCRIBE refused (Redis checks every name first)."""
        if not self._sent:
            return []
        sent = self._sent.popleft()
        out: list[list[bytes]] = []
        for name in sent.names[sent.answered :]:
            state = self._names[sent.kind].setdefault(name, _Name())
            if sent.subscriber is not None:
                state.pending -= 1
                state.subscribed = bool(state.subs) or state.pending > 0
            out += self._release(sent.kind, name, state)
        if sent.subscriber is not None:
            sent.subscriber.failed(PubSubRefused(reply))
        return out

    def _release(self, kind: bytes, name: bytes, state: _Name) -> list[list[bytes]]:
        """UNSUBSCRIBE a name nobody wants any more (and forget it once Redis did)."""
        if state.subs or state.pending:
            return []
        names = self._names[kind]
        if not state.subscribed:
            names.pop(name, None)
            return []
        state.subscribed = False
        names.pop(name, None)
        self._sent.append(_Sent(kind, [name], None))
        return [[_UNSUBSCRIBE[kind], name]]

    # -- what subscribers ask ---------------------------------------------------------

    async def _subscribe(self, sub: Subscriber, kind: bytes, names: list[bytes]) -> None:
        conn = await self._connection()
        self._subscribers.add(sub)
        for name in names:
            state = self._names[kind].setdefault(name, _Name())
            state.pending += 1
            state.subscribed = True
        self._sent.append(_Sent(kind, list(names), sub))
        await conn.send([_SUBSCRIBE[kind], *names])

    async def _unsubscribe(self, sub: Subscriber, kind: bytes, names: list[bytes]) -> None:
        out: list[list[bytes]] = []
        for name in names:
            state = self._names[kind].get(name)
            if state is not None:
                state.subs.discard(sub)
                out += self._release(kind, name, state)
        conn = self._conn
        if conn is not None and conn.is_open:
            for args in out:
                try:
                    await conn.send(args)
                except RedisUnavailable:
                    return  # the reader notices and ends everyone

    def _forget(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)


class Subscriber:
    """One stream's subscriptions on the hub (see the module docstring)."""

    def __init__(self, hub: PubSub, sink: Sink) -> None:
        self._hub = hub
        self.sink = sink
        self._attached: dict[bytes, set[bytes]] = {CHANNELS: set(), PATTERNS: set()}
        self._wanted: dict[bytes, set[bytes]] = {CHANNELS: set(), PATTERNS: set()}
        self._waiting = 0
        self._ready: asyncio.Future[None] | None = None
        self.closed = False

    @property
    def count(self) -> int:
        """Channels and patterns this subscriber is subscribed to."""
        return len(self._attached[CHANNELS]) + len(self._attached[PATTERNS])

    async def subscribe(self, kind: bytes, names: list[bytes]) -> None:
        """Subscribe to ``names``; returns once Redis confirmed every one (the sink has
        heard ``subscribed`` for each). ``RedisUnavailable`` when Redis cannot be reached
        or does not confirm within the command timeout; ``PubSubRefused`` when it refuses."""
        if self.closed or not names:
            return
        self._wanted[kind].update(names)
        self._waiting += len(names)
        ready = self._ready = asyncio.get_running_loop().create_future()
        await self._hub._subscribe(self, kind, names)
        try:
            async with asyncio.timeout(self._hub._timeout):
                await asyncio.shield(ready)
        except TimeoutError:
            raise RedisUnavailable(
                f"Redis did not confirm {_SUBSCRIBE[kind].decode()} within {self._hub._timeout}s"
            ) from None

    async def unsubscribe(self, kind: bytes, names: list[bytes] | None = None) -> list[bytes]:
        """Drop ``names`` (None: every name of ``kind``); the sink hears ``unsubscribed``
        for each, at once. Returns the names dropped."""
        attached = self._attached[kind]
        dropped = list(dict.fromkeys(names)) if names is not None else sorted(attached)
        for name in dropped:
            self._wanted[kind].discard(name)
            attached.discard(name)
            self.sink.unsubscribed(kind, name, self.count)
        await self._hub._unsubscribe(self, kind, dropped)
        return dropped

    async def close(self) -> None:
        """The stream ended: leave every name (the hub unsubscribes unwanted ones)."""
        if self.closed:
            return
        self.closed = True
        for kind in (CHANNELS, PATTERNS):
            names = sorted(self._attached[kind] | self._wanted[kind])
            self._attached[kind].clear()
            self._wanted[kind].clear()
            await self._hub._unsubscribe(self, kind, names)
        self._hub._forget(self)

    # -- called by the hub --------------------------------------------------------------

    def confirmed(self, kind: bytes, name: bytes, state: _Name) -> None:
        if self.closed or name not in self._wanted[kind]:
            self._arrived()
            return
        state.subs.add(self)
        self._attached[kind].add(name)
        self.sink.subscribed(kind, name, self.count)
        self._arrived()

    def _arrived(self) -> None:
        self._waiting -= 1
        if self._waiting <= 0 and self._ready is not None and not self._ready.done():
            self._ready.set_result(None)

    def failed(self, error: Exception) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved here if nobody awaits it any more

    def lost(self) -> None:
        if not self.closed:
            self.closed = True
            self.sink.ended("redis")

"""Connections that have not sent a complete request yet: the header timeout, the
per-worker cap and the head size limit (slow and idle clients, "slowloris").

Without them a connection that connects and sends nothing, or a byte now and then, is
kept forever: 2,150 of them filled ``server.max_connections`` and made a quarter of the
honest requests 503. A connection is *pending* from its accept until its first request
head is complete, and again from the first byte of each later request until that head is
complete (idle between requests it is not pending: ``keepalive_timeout_seconds`` governs
it). It is pending again, for the cap only, while the body of its request is still
arriving (``body_pending``): whole heads followed by a body a byte at a time filled
``server.max_connections`` the same way (2,200 of them: every honest request 503). The
body has no timeout here: ``request_timeout_seconds`` bounds it.

* ``server.request_header_timeout_seconds``: a pending connection is closed this long
  after it became pending (with a 408 if part of the request had arrived).
* ``server.max_pending_connections``: one pending connection more than this in a worker
  closes the *oldest* pending one, head or body (with a 503 if part of its request head
  had arrived; one whose body was arriving is closed). The
  oldest, not the newcomer: honest clients send their head right after connecting, so
  the connection that has been pending longest is the likeliest idle or trickling one,
  and each of an attacker's connections lives only until ``cap`` newer ones arrived;
  refusing newcomers instead would hand the worker to whoever holds the cap.
* ``server.max_header_bytes``: an incomplete head (and chunked trailers) may not grow
  past this (431); otherwise one client could make the parser buffer gigabytes. A head
  that arrives whole in one read is held to it too (``HeadWatch.check_complete``), so
  the answer does not depend on how the bytes were split.

Cost: one timer per *worker* (``PendingConnections``), not per connection, re-armed at
the deadline of the oldest pending connection; per connection, one registration at accept
and its removal when the first head is complete. A later request whose head arrives in one
read (the common case) is never registered, nor a body that arrives with its head.

Each engine's connection owns a ``HeadWatch`` (``None`` when its server keeps no
registry, e.g. a plain ``uvicorn.Server`` in tests) and calls ``after_read`` after each
read that may have begun or completed a head (``lost`` when it closes), and
``body_pending(waiting)`` after a read that left the latest request's body incomplete
or completed it (``waiting`` differs from ``watch.in_body``). Stray bytes between
requests count as the start of the next one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

import structlog

from gateway_worker.config import ServerConfig
from gateway_worker.observability.logging import Throttle

log = structlog.get_logger("gateway_worker.serving")

#: Seconds between two log lines about closed pending connections (counts in between).
LOG_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class PendingPolicy:
    """The limits on pending connections, decided once from ``server``."""

    header_timeout: float
    max_pending: int
    max_head_bytes: int

    @classmethod
    def from_config(cls, server: ServerConfig) -> PendingPolicy:
        cap = server.max_pending_connections
        return cls(
            header_timeout=server.request_header_timeout_seconds,
            max_pending=cap if cap is not None else max(1, server.max_connections // 2),
            max_head_bytes=server.max_header_bytes,
        )


class PendingConnection(Protocol):
    """What the registry needs of a connection (each engine's protocol)."""

    def close_pending(self, status: int, message: str) -> None:
        """Close the connection, answering ``status`` if part of a request arrived."""


class PendingConnections:
    """The pending connections of one worker, oldest first, and the one timer that
    closes them at their deadline."""

    __slots__ = (
        "_bodies", "_log", "_loop", "_since", "_timer", "evicted", "policy", "timed_out",
    )  # fmt: skip

    def __init__(
        self,
        policy: PendingPolicy,
        throttle: Throttle | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.policy = policy
        # A dict keeps insertion order: the first key is the oldest pending connection.
        self._since: dict[HeadWatch, float] = {}
        self._bodies: dict[HeadWatch, float] = {}  # whose body is arriving: no timer
        self._timer: asyncio.TimerHandle | None = None
        self._loop = loop  # the running loop, found at the first connection
        self._log = throttle or Throttle(LOG_INTERVAL_SECONDS)
        self.timed_out = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._since) + len(self._bodies)

    def watch(self, conn: PendingConnection) -> HeadWatch:
        """The ``HeadWatch`` of a new connection (registered: its first head is pending)."""
        watch = HeadWatch(self, conn)
        self.register(watch)
        return watch

    def register(self, watch: HeadWatch) -> None:
        watch.registered = True
        self._since[watch] = self._now()
        self._cap()
        if self._timer is None and self._since:
            self._timer = self._now_loop().call_at(
                next(iter(self._since.values())) + self.policy.header_timeout, self._sweep
            )

    def register_body(self, watch: HeadWatch) -> None:
        """``watch``'s head is complete, its body still arriving: pending for the cap."""
        watch.in_body = True
        self._bodies[watch] = self._now()
        self._cap()

    def unregister(self, watch: HeadWatch) -> None:
        watch.registered = False
        self._since.pop(watch, None)

    def unregister_body(self, watch: HeadWatch) -> None:
        watch.in_body = False
        self._bodies.pop(watch, None)

    def _now_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _now(self) -> float:
        return self._now_loop().time()

    def _cap(self) -> None:
        """Beyond the cap, close the oldest pending connection (head or body)."""
        if len(self._since) + len(self._bodies) <= self.policy.max_pending:
            return
        heads = next(iter(self._since.items()), None)
        bodies = next(iter(self._bodies.items()), None)
        if heads is None or (bodies is not None and bodies[1] < heads[1]):
            assert bodies is not None
            oldest = bodies[0]
            self.unregister_body(oldest)
        else:
            oldest = heads[0]
            del self._since[oldest]
            oldest.registered = False
        self.evicted += 1
        self._report("evicted")
        oldest.expire(
            503,
            "too many connections waiting for their request "
            f"(server.max_pending_connections={self.policy.max_pending})",
        )

    def _sweep(self) -> None:
        self._timer = None
        loop = self._loop
        assert loop is not None
        timeout = self.policy.header_timeout
        # A timer may fire a little early (uvloop rounds to milliseconds).
        now = loop.time() + 0.001
        while self._since:
            watch, since = next(iter(self._since.items()))
            if since + timeout > now:
                self._timer = loop.call_at(since + timeout, self._sweep)
                return
            del self._since[watch]
            self.timed_out += 1
            self._report("timed_out")
            watch.expire(
                408,
                "request head not received within "
                f"server.request_header_timeout_seconds={timeout:g}",
            )

    def _report(self, reason: str) -> None:
        suppressed = self._log.admit(reason)
        if suppressed is not None:
            # Evictions mean the cap is reached (an attack, or a cap set too low);
            # timeouts also come from honest clients that connect and never ask.
            emit = log.warning if reason == "evicted" else log.info
            emit(
                "http.pending_connection_closed",
                reason=reason,
                similar_suppressed=suppressed,
                pending=len(self._since),
                max_pending=self.policy.max_pending,
            )


class HeadTooLarge(Exception):
    """A complete request head is larger than ``server.max_header_bytes`` (raised from a
    parser callback: ``HeadWatch.check_complete``; the engine answers 431)."""


class HeadWatch:
    """One connection in the registry: whether it is pending, and how many bytes its
    incomplete head has taken so far."""

    __slots__ = (
        "_conn",
        "_registry",
        "head_bytes",
        "in_body",
        "max_head_bytes",
        "registered",
        "trailer_bytes",
    )

    def __init__(self, registry: PendingConnections, conn: PendingConnection) -> None:
        self._registry = registry
        self._conn = conn
        self.registered = False
        #: In the registry because the body of its request is arriving.
        self.in_body = False
        self.head_bytes = 0
        #: Bytes read within the trailers of a chunked body (bounded like a head).
        self.trailer_bytes = 0
        #: ``server.max_header_bytes`` (an attribute: read on every request)
        self.max_head_bytes = registry.policy.max_head_bytes

    def incomplete(self, nbytes: int) -> bool:
        """A read left a request head incomplete; ``nbytes`` of it count towards the
        head (0 when the read began inside the previous request's body). False when the
        head is now larger than ``server.max_header_bytes``."""
        if not self.registered:
            self._registry.register(self)
        self.head_bytes += nbytes
        return self.head_bytes <= self.max_head_bytes

    def could_exceed(self, read_nbytes: int) -> bool:
        """Whether a head completed in a read of ``read_nbytes`` can be larger than
        ``server.max_header_bytes`` (that read and the head's earlier ones hold more):
        only then is it measured (``check_complete``). Asked once per request: keep it
        this one comparison."""
        return read_nbytes + self.head_bytes > self.max_head_bytes

    def check_complete(self, target: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        """``HeadTooLarge`` if a complete head (its request target and header lines) is
        larger than ``server.max_header_bytes``. The per-read count catches a head still
        arriving; this one a head that came whole, in one large read (called when
        ``could_exceed``)."""
        if len(target) + sum(len(n) + len(v) + 4 for n, v in headers) > self.max_head_bytes:
            raise HeadTooLarge

    def too_large(self) -> str:
        """The message of the 431 for a head (or trailers) larger than the limit."""
        return f"request head larger than server.max_header_bytes={self.max_head_bytes}"

    def complete(self) -> None:
        """A head is complete (the caller checked ``registered``)."""
        self.head_bytes = 0
        self._registry.unregister(self)

    def after_read(self, *, arrived: bool, pending: bool, nbytes: int) -> bool:
        """After a read: ``arrived``, a head was completed in it; ``pending``, a head
        is now incomplete, or the read held only stray bytes (CRLFs between requests:
        the first bytes of the next one; or a client could hold a keep-alive connection
        forever with a byte now and then); ``nbytes`` of the read count towards that
        head. False when it is larger than ``server.max_header_bytes``."""
        if arrived and self.registered:
            self.complete()
        return not pending or self.incomplete(nbytes)

    def read(
        self,
        *,
        arrived: bool,
        pending: bool,
        head_nbytes: int,
        trailer_nbytes: int,
        body_waiting: bool,
    ) -> bool:
        """Everything one read changed, for either engine: ``arrived``, ``pending`` and
        ``head_nbytes`` as for ``after_read``; ``trailer_nbytes`` of it fell within a
        chunked body's trailers; ``body_waiting``: the latest request's body is still
        arriving. False when the head or the trailers are now larger than
        ``server.max_header_bytes`` (the caller refuses with 431)."""
        if arrived:
            self.trailer_bytes = 0
        else:
            self.trailer_bytes += trailer_nbytes
        if (pending or (arrived and self.registered)) and not self.after_read(
            arrived=arrived, pending=pending, nbytes=head_nbytes
        ):
            return False
        if self.trailer_bytes > self.max_head_bytes:
            return False
        if body_waiting is not self.in_body:
            self.body_pending(body_waiting)
        return True

    def body_pending(self, waiting: bool) -> None:
        """After a read: the latest request's body is still arriving (``waiting``), or
        no longer (complete, or the request answered); called when it changed."""
        if waiting:
            self._registry.register_body(self)
        else:
            self._registry.unregister_body(self)

    def lost(self) -> None:
        """The connection is closed."""
        if self.registered:
            self._registry.unregister(self)
        if self.in_body:
            self._registry.unregister_body(self)

    def expire(self, status: int, message: str) -> None:
        """Taken out of the registry by its timeout or the cap: close the connection."""
        self.registered = False
        self._conn.close_pending(status, message)

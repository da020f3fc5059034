"""A fast 503 from the supervisor itself while no worker is ready to serve.

In a crash loop (every worker exits at boot: Redis gone, a file missing) the kernel
keeps completing handshakes into the listening socket's queue, and clients hang until
a worker accepts them, which may be never. Once no worker of the serving generation
has been ready for ``GRACE_SECONDS`` (a lone worker's replacement after one crash is
ready sooner: its clients are better served late than refused), the main loop accepts
on the same listening sockets and answers each connection::

    HTTP/1.1 503 Service Unavailable
    Content-Type: application/json, Retry-After: 1, Connection: close
    {"error": "no worker is ready to serve: <why the last one exited>"}

and stops accepting as soon as a worker is ready again. Nothing here blocks the main
loop: accept is non-blocking (O_NONBLOCK belongs to the listening socket's open file,
which it shares with the workers; they set it anyway, for asyncio); a client's request
is read as far as it was sent (up to the end of its head, its EOF or
``HEAD_WAIT_SECONDS``), the reply is one ``send`` of a few hundred bytes into an empty
socket buffer, then the connection is half-closed and read until the client closes it
(or ``LINGER_SECONDS``): closing with unread data would make the kernel reset the
connection, and the client could lose the reply.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger("redis_gateway.supervisor")

#: No worker ready for this long: the supervisor answers (a client waits at most this
#: plus one main-loop tick, 0.2 s).
GRACE_SECONDS = 1.0
#: How long a client may take to send its request head before it is answered anyway.
HEAD_WAIT_SECONDS = 0.5
#: How long a half-closed connection is read before it is closed.
LINGER_SECONDS = 2.0
#: Connections answered at once; more wait in the kernel's queue.
MAX_CLIENTS = 256
#: What is kept of a request: enough to see the end of an ordinary head.
MAX_REQUEST_BYTES = 16384
MAX_REASON_CHARS = 300


def reply_bytes(reason: str, head_only: bool = False) -> bytes:
    """The whole HTTP response (no body for a HEAD request)."""
    body = json.dumps({"error": f"no worker is ready to serve: {reason[:MAX_REASON_CHARS]}"})
    data = body.encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n"
        "Retry-After: 1\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + data


@dataclass
class _Client:
    sock: socket.socket
    accepted_at: float
    request: bytes = b""
    replied_at: float | None = None
    closed: bool = field(default=False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.sock.close()


class UnservedResponder:
    """Driven by the main loop: ``follow`` once per iteration, ``fds`` to select on,
    ``handle_readable`` for what select returned."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._since: float | None = None
        self._reason = ""
        self._listeners: list[socket.socket] = []
        self._clients: list[_Client] = []
        self.active = False
        #: Replies sent in the current (or last) outage.
        self.answered = 0

    def follow(self, reason: str | None, listeners: Sequence[socket.socket]) -> None:
        """``reason``: why nothing serves (None: a worker is ready)."""
        now = self._clock()
        if reason is None:
            if self.active:
                log.info("supervisor.serving_again", answered_503=self.answered)
            self._since, self.active = None, False
        else:
            self._reason = reason
            if self._since is None:
                self._since = now
            if not self.active and now - self._since >= GRACE_SECONDS:
                self.active, self.answered = True, 0
                log.warning("supervisor.answering_503", reason=reason, listeners=len(listeners))
        self._listeners = list(listeners)
        self._expire(now)

    def fds(self) -> list[int]:
        fds = [c.fileno() for c in self._clients]
        if self.active and len(self._clients) < MAX_CLIENTS:
            fds.extend(sock.fileno() for sock in self._listeners)
        return fds

    def handle_readable(self, fd: int) -> None:
        listener = next((sock for sock in self._listeners if sock.fileno() == fd), None)
        if listener is not None:
            self._accept(listener)
        for client in self._clients:
            if client.fileno() == fd:
                self._read(client)
        self._clients = [c for c in self._clients if not c.closed]

    def close(self) -> None:
        for client in self._clients:
            client.close()
        self._clients = []

    def _accept(self, listener: socket.socket) -> None:
        now = self._clock()
        listener.setblocking(False)  # a worker may have taken the connection select saw
        while self.active and len(self._clients) < MAX_CLIENTS:
            try:
                sock, _ = listener.accept()
            except OSError:  # BlockingIOError: a worker took it, or nothing left
                return
            sock.setblocking(False)
            client = _Client(sock, now)
            self._clients.append(client)
            self._read(client)

    def _read(self, client: _Client) -> None:
        while not client.closed:
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if client.replied_at is not None:
                if not data:
                    client.close()  # the client closed after reading the reply
                continue  # read and dropped: the reply is sent
            if data and len(client.request) < MAX_REQUEST_BYTES:
                client.request += data
            if (
                not data
                or b"\r\n\r\n" in client.request
                or len(client.request) >= MAX_REQUEST_BYTES
            ):
                self._reply(client)
                if not data:
                    client.close()

    def _reply(self, client: _Client) -> None:
        head_only = client.request.startswith(b"HEAD ")
        with contextlib.suppress(OSError):
            client.sock.send(reply_bytes(self._reason, head_only))
            client.sock.shutdown(socket.SHUT_WR)
        client.replied_at = self._clock()
        self.answered += 1

    def _expire(self, now: float) -> None:
        for client in self._clients:
            if client.replied_at is None and now - client.accepted_at >= HEAD_WAIT_SECONDS:
                self._reply(client)
            elif client.replied_at is not None and now - client.replied_at >= LINGER_SECONDS:
                client.close()
        self._clients = [c for c in self._clients if not c.closed]

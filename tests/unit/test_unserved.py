"""``UnservedResponder``: the supervisor's own 503 while no worker is ready (issue 8,
item 7). Real sockets on 127.0.0.1, a fake clock; the test plays the main loop."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator

import pytest

from supervisor.unserved import GRACE_SECONDS, HEAD_WAIT_SECONDS, UnservedResponder

REASON = "Redis at 127.0.0.1:1 unreachable: Connection refused"


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def responder(clock: Clock) -> Iterator[UnservedResponder]:
    r = UnservedResponder(clock)
    yield r
    r.close()


def _activate(responder: UnservedResponder, clock: Clock, listener: socket.socket) -> None:
    """No worker ready, then for the whole grace."""
    responder.follow(REASON, [listener])
    clock.now += GRACE_SECONDS
    responder.follow(REASON, [listener])


def _loop(responder: UnservedResponder, times: int = 5) -> None:
    """What the main loop does: select on the responder's fds, hand over what is ready."""
    for _ in range(times):
        fds = responder.fds()
        if not fds:
            return
        readable, _, _ = select.select(fds, [], [], 0.05)
        for fd in readable:
            responder.handle_readable(fd)


def _client(listener: socket.socket) -> socket.socket:
    return socket.create_connection(listener.getsockname(), timeout=2)


def _read_all(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


def test_answers_503_with_the_reason_only_after_the_grace(
    listener: socket.socket, clock: Clock, responder: UnservedResponder
) -> None:
    responder.follow(REASON, [listener])
    assert listener.fileno() not in responder.fds()  # a replacement may still come
    clock.now += GRACE_SECONDS
    responder.follow(REASON, [listener])
    assert listener.fileno() in responder.fds()
    client = _client(listener)
    client.sendall(b"GET /get/k HTTP/1.1\r\nHost: x\r\n\r\n")
    _loop(responder)
    reply = _read_all(client)  # EOF: the supervisor half-closed after the reply
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert b"Connection: close" in head and b"Retry-After: 1" in head
    assert json.loads(body) == {"error": f"no worker is ready to serve: {REASON}"}
    client.close()
    _loop(responder)
    assert responder.fds() == [listener.fileno()]  # the closed client is forgotten
    assert responder.answered == 1


def test_a_client_that_keeps_sending_is_not_reset(
    listener: socket.socket, clock: Clock, responder: UnservedResponder
) -> None:
    """Reply, half-close, keep reading: the client reads the whole reply."""
    _activate(responder, clock, listener)
    client = _client(listener)
    client.sendall(b"POST /set/k HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
    _loop(responder)
    for _ in range(2):  # the body arrives after the reply: no reset for it
        client.sendall(b"v" * 100_000)
        _loop(responder, times=10)
    reply = _read_all(client)
    assert reply.startswith(b"HTTP/1.1 503 ") and reply.endswith(b"}")
    client.close()


def test_a_silent_client_is_answered_after_the_head_wait(
    listener: socket.socket, clock: Clock, responder: UnservedResponder
) -> None:
    _activate(responder, clock, listener)
    client = _client(listener)
    _loop(responder)
    client.settimeout(0.2)
    with pytest.raises(TimeoutError):
        client.recv(100)  # nothing sent yet, nothing answered yet
    clock.now += HEAD_WAIT_SECONDS
    responder.follow(REASON, [listener])
    client.settimeout(2)
    assert _read_all(client).startswith(b"HTTP/1.1 503 ")
    client.close()


def test_head_gets_no_body_and_a_ready_worker_stops_the_answers(
    listener: socket.socket, clock: Clock, responder: UnservedResponder
) -> None:
    _activate(responder, clock, listener)
    client = _client(listener)
    client.sendall(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    _loop(responder)
    assert _read_all(client).endswith(b"Connection: close\r\n\r\n")
    client.close()
    responder.follow(None, [listener])  # a worker is ready again
    _loop(responder)
    assert listener.fileno() not in responder.fds()
    queued = _client(listener)  # left in the kernel's queue, for the workers
    _loop(responder)
    assert responder.answered == 1
    queued.close()

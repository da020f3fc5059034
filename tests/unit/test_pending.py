"""The registry of pending connections (gateway_worker.serving.pending), with a fake loop.

Deadlines, the cap (the oldest pending connection goes), one timer per worker, and
the head-size count. The engines on real sockets: tests/integration/test_slow_clients.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import pytest
from pydantic import ValidationError

from gateway_worker.config import ServerConfig
from gateway_worker.observability.logging import Throttle
from gateway_worker.serving.connection_end import error_response
from gateway_worker.serving.pending import HeadWatch, PendingConnections, PendingPolicy


class FakeLoop:
    """``time()`` and ``call_at()``; ``advance()`` runs the timers that are due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, Callable[[], None]]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> object:
        self.timers.append((when, callback))
        return object()

    def advance(self, to: float) -> None:
        self.now = to
        while due := [t for t in self.timers if t[0] <= to]:
            self.timers.remove(due[0])
            due[0][1]()


class Conn:
    def __init__(self, name: str, closed: list[tuple[str, int]]) -> None:
        self.name = name
        self.closed = closed

    def close_pending(self, status: int, message: str) -> None:
        self.closed.append((self.name, status))


def registry(
    timeout: float = 10.0, cap: int = 100, head: int = 1000
) -> tuple[PendingConnections, FakeLoop, list[tuple[str, int]]]:
    loop = FakeLoop()
    pending = PendingConnections(
        PendingPolicy(timeout, cap, head),
        Throttle(10.0, clock=loop.time),
        loop=cast(asyncio.AbstractEventLoop, loop),
    )
    return pending, loop, []


def test_a_connection_is_closed_at_its_deadline_and_the_one_timer_follows_the_oldest() -> None:
    pending, loop, closed = registry(timeout=10.0)
    a = pending.watch(Conn("a", closed))
    loop.now = 4.0
    b = pending.watch(Conn("b", closed))
    assert len(loop.timers) == 1 and loop.timers[0][0] == 10.0  # one timer, not one each
    loop.advance(9.99)
    assert closed == []
    loop.advance(10.0)
    assert closed == [("a", 408)] and not a.registered and b.registered
    assert [when for when, _ in loop.timers] == [14.0]  # re-armed for b
    b.complete()  # b's head arrived: nothing left to close, no timer re-armed
    loop.advance(14.0)
    assert closed == [("a", 408)] and len(pending) == 0 and loop.timers == []
    assert pending.timed_out == 1


def test_a_later_request_is_timed_from_its_first_byte() -> None:
    pending, loop, closed = registry(timeout=10.0)
    watch = pending.watch(Conn("a", closed))
    loop.now = 1.0
    watch.complete()  # first request's head complete: not pending while idle
    loop.advance(30.0)  # idle for longer than the header timeout: keep-alive's business
    assert closed == []
    assert watch.incomplete(10)  # first bytes of the next request
    loop.advance(39.9)
    assert closed == []
    loop.advance(40.0)
    assert closed == [("a", 408)]


def test_beyond_the_cap_the_oldest_pending_connection_is_closed() -> None:
    pending, _loop, closed = registry(cap=2)
    first = pending.watch(Conn("first", closed))
    pending.watch(Conn("second", closed))
    assert closed == []
    pending.watch(Conn("third", closed))
    assert closed == [("first", 503)] and not first.registered
    assert len(pending) == 2 and pending.evicted == 1
    first.lost()  # its connection_lost later: nothing to do
    assert len(pending) == 2


def test_a_body_still_arriving_counts_for_the_cap_but_has_no_header_deadline() -> None:
    """Whole heads, then a body a byte at a time, filled max_connections: a connection
    whose body is arriving is pending for the cap (found by the fault suite)."""
    pending, loop, closed = registry(timeout=10.0, cap=2)
    slow = pending.watch(Conn("slow", closed))
    slow.complete()
    slow.body_pending(True)  # head done, body arriving
    assert slow.in_body and len(pending) == 1
    loop.advance(60.0)  # no header deadline for a body: request_timeout_seconds bounds it
    assert closed == []
    pending.watch(Conn("b", closed))
    pending.watch(Conn("c", closed))  # one over the cap: the oldest, the slow body, goes
    assert closed == [("slow", 503)] and not slow.in_body and len(pending) == 2
    slow.lost()
    assert len(pending) == 2
    done = pending.watch(Conn("done", closed))  # evicts b, the oldest head now
    done.complete()
    done.body_pending(True)
    done.body_pending(False)  # its body arrived: not pending any more
    assert closed == [("slow", 503), ("b", 503)] and len(pending) == 1


def test_the_head_size_counts_across_reads_and_restarts_with_each_head() -> None:
    pending, _loop, closed = registry(head=1000)
    watch = pending.watch(Conn("a", closed))
    assert watch.incomplete(600)
    assert not watch.incomplete(401)  # 1001 > 1000
    watch.complete()
    assert watch.incomplete(1000)  # a new head starts from zero
    assert watch.incomplete(0)  # a read that began inside a body counts nothing


def test_the_cap_defaults_to_half_of_max_connections() -> None:
    assert PendingPolicy.from_config(ServerConfig(max_connections=1000)).max_pending == 500
    assert PendingPolicy.from_config(ServerConfig(max_connections=1)).max_pending == 1
    policy = PendingPolicy.from_config(ServerConfig(max_pending_connections=7))
    assert (policy.max_pending, policy.header_timeout, policy.max_head_bytes) == (7, 10.0, 65536)


def test_watch_objects_are_lost_once() -> None:
    pending, _loop, closed = registry()
    watch: HeadWatch = pending.watch(Conn("a", closed))
    watch.lost()
    watch.lost()
    assert len(pending) == 0 and not watch.registered


def test_error_response_is_a_whole_closing_http_response() -> None:
    raw = error_response(408, "too slow", [(b"date", b"x")])
    assert raw == (
        b"HTTP/1.1 408 Request Timeout\r\ndate: x\r\ncontent-type: text/plain; "
        b"charset=utf-8\r\ncontent-length: 8\r\nconnection: close\r\n\r\ntoo slow"
    )


def test_the_new_keys_are_validated_with_their_rule_named() -> None:
    with pytest.raises(ValidationError, match=r"max_pending_connections \(10\) must be less than"):
        ServerConfig(max_connections=10, max_pending_connections=10)
    for bad in (0.0, -1.0, float("inf"), float("nan"), 86_401.0):
        with pytest.raises(ValidationError, match="request_header_timeout_seconds"):
            ServerConfig(request_header_timeout_seconds=bad)
    with pytest.raises(ValidationError, match="max_header_bytes"):
        ServerConfig(max_header_bytes=100)

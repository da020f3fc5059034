"""Request limits applied by the app before a protocol handler runs.

* ``server.max_body_bytes``: a declared ``Content-Length`` above it is refused before
  reading; a body that grows past it while streaming in is refused as soon as it does
  (413, JSON error). Bodies are never buffered beyond the limit.
* ``server.max_arguments``: checked by the protocols while parsing (400).
* ``server.request_timeout_seconds``: ``RequestDeadlines`` cancels a request still
  running after it; the app then answers 504 (JSON error), or 408 when the request's
  body had not all arrived (the client's delay, not the gateway's).
* ``server.max_connections``: uvicorn's ``limit_concurrency`` (set by
  ``gateway_worker.serving.server``) answers 503 beyond it.

Before the app: the request head (its timeout, size, and the pending connections per
worker) is bounded by the connection layer, ``gateway_worker.serving.pending``.
"""

from __future__ import annotations

import asyncio
import math

from gateway_worker.asgi import Receive


class BodyTooLarge(Exception):
    """The request body exceeds ``server.max_body_bytes``."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        self.limit = limit
        size = f"{declared} bytes" if declared is not None else "more than that"
        super().__init__(f"request body too large: {size} > server.max_body_bytes={limit}")


class ClientGone(Exception):
    """The client disconnected before sending its whole body."""


async def read_body(receive: Receive, limit: int, content_length: str | None) -> bytes:
    """The whole request body, refusing more than ``limit`` bytes."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            declared = None
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit, declared)
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge(limit)
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class RequestDeadlines:
    """Cancels requests that run past ``timeout`` (to within ``resolution`` seconds).

    Cheaper than ``asyncio.timeout()`` per request (one object and one timer each):
    requests whose deadlines fall in the same ``resolution`` slot share one timer and
    one set, so starting and finishing a request is a set add and discard.
    """

    def __init__(self, timeout: float, resolution: float = 0.05) -> None:
        self.timeout = timeout
        self._resolution = resolution
        self._slots: dict[int, set[asyncio.Task[object]]] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, task: asyncio.Task[object]) -> int:
        """Watch ``task``; returns the slot to pass to ``finish``."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        slot = math.ceil((loop.time() + self.timeout) / self._resolution)
        tasks = self._slots.get(slot)
        if tasks is None:
            tasks = self._slots[slot] = set()
            loop.call_at(slot * self._resolution, self._expire, slot)
        tasks.add(task)
        return slot

    def finish(self, slot: int, task: asyncio.Task[object]) -> None:
        tasks = self._slots.get(slot)
        if tasks is not None:
            tasks.discard(task)

    def timed_out(self, task: asyncio.Task[object]) -> bool:
        """True (once) when ``task`` was cancelled by its deadline; the cancellation
        is then withdrawn so the request can still answer 504."""
        if task in self._expired:
            self._expired.discard(task)
            task.uncancel()
            return True
        return False

    def _expire(self, slot: int) -> None:
        for task in self._slots.pop(slot, ()):
            self._expired.add(task)
            task.cancel()

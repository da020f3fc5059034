"""Request limits applied by the app before a protocol handler runs.

* ``server.max_body_bytes``: a declared ``Content-Length`` above it is refused before
  reading; a body that grows past it while streaming in is refused as soon as it does
  (413, JSON error). Bodies are never buffered beyond the limit.
* ``server.max_arguments``: checked by the protocols while parsing (400).
* ``server.request_timeout_seconds``: the app runs each request under
  ``asyncio.timeout`` and answers 504 (JSON error) when it expires.
* ``server.max_connections``: uvicorn's ``limit_concurrency`` (set by
  ``gateway_worker.server``) answers 503 beyond it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]


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

"""Server-Sent Events framing (the WHATWG ``text/event-stream`` format).

* ``event(data)``: one event; a payload holding line breaks becomes several ``data:``
  lines, which a client joins back with ``\\n`` (so ``\\r`` and ``\\r\\n`` inside a
  payload arrive as ``\\n``: use ``Upstash-Encoding: base64`` for exact bytes).
* ``HEARTBEAT``: a comment line, ignored by every client, that keeps proxies from
  closing an idle stream.
* ``reconnect(retry_ms)``: the last event of a stream whose worker drains: ``retry:``
  sets how long a client waits before it reconnects once the stream closes, and
  ``event: reconnect`` lets a client that listens for it reconnect at once (before the
  old stream closes: it then misses nothing).
* ``HEADERS``: no caching, no proxy buffering (nginx honours ``X-Accel-Buffering``).
"""

from __future__ import annotations

import random
import re

CONTENT_TYPE = "text/event-stream"
HEADERS = [("cache-control", "no-cache"), ("x-accel-buffering", "no")]
HEARTBEAT = b": ping\n\n"
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def event(data: bytes) -> bytes:
    """One ``data:`` event (several ``data:`` lines when ``data`` holds line breaks)."""
    if b"\n" not in data and b"\r" not in data:
        return b"data: " + data + b"\n\n"
    return b"".join(b"data: " + line + b"\n" for line in _LINE_BREAK.split(data)) + b"\n"


#: The ``retry:`` of the reconnect hint is drawn from this range (milliseconds), so the
#: streams of a draining worker do not all come back in the same instant.
RECONNECT_RETRY_MS = (200, 1000)


def reconnect(retry_ms: int | None = None) -> bytes:
    """The reconnect hint a draining worker sends its SSE streams."""
    if retry_ms is None:
        retry_ms = random.randrange(*RECONNECT_RETRY_MS)  # noqa: S311 - jitter, not a secret
    return b"retry: %d\nevent: reconnect\ndata: reconnect\n\n" % retry_ms

"""``StreamBody``: a streamed response body, as a protocol handler hands it to the app.

The handler has opened a ``StreamSlot`` (``streams.registry``), connected its source
(a pub/sub subscriber, a MONITOR feed) to the slot's outbox, and answers
``Response(200, stream=StreamBody(...))``; the app sends the head and
``streams.relay.relay`` the rest. ``release`` disconnects the source (unsubscribe, close
the feed) once the stream is over, whatever ended it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway_worker.streams.registry import StreamSlot


@dataclass
class StreamBody:
    """A stream's slot, what its writer sends besides chunks, and how to release it."""

    slot: StreamSlot
    #: Sent when nothing else was for a heartbeat interval (None: no heartbeat).
    heartbeat: bytes | None = None
    #: Sent once when the worker drains, before the stream closes (None: nothing).
    farewell: bytes | None = None
    release: Callable[[], Awaitable[None]] | None = None

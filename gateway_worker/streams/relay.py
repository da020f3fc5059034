"""``relay``: a stream's outbox sent as the body of a chunked HTTP response.

The head has been sent; ``relay`` sends each chunk as it comes, the heartbeat when the
outbox says ``IDLE``, the farewell (reconnect hint) on ``DRAIN``, and ends the body on
``END``, then releases the source and closes the slot, whatever happened: the client
left (an ``http.disconnect``, watched by a task of its own, fails the outbox), the worker
drained, the client read too slowly, Redis went away.

A client that stops reading blocks ``send`` (both engines wait for the transport's
flow control). The outbox then fills and fails, or the sweeper fails it as stalled;
failing calls ``abort``, which drops the connection, so the blocked ``send`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from gateway_worker.asgi import Message, Receive, Send
from gateway_worker.streams.body import StreamBody
from gateway_worker.streams.outbox import CLIENT, DRAINING, END, ERROR, IDLE, Outbox

log = structlog.get_logger("gateway_worker.streams")

#: How long a stream whose connection was aborted waits for the server to notice.
DISCONNECT_WAIT_SECONDS = 1.0


def aborter(send: Send) -> Callable[[], None] | None:
    """How to drop the connection behind ``send``, if the server says.

    Both engines' ``send`` is a method of an object holding the connection's transport
    (uvicorn's request cycles and WebSocket protocols, the native engine's ``Cycle``), so
    no per-request work is needed to find it; ``abort`` (not ``close``, which would wait
    for the unread buffer to drain) makes a send blocked on that client return.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    return abort if callable(abort) else None


async def _watch_client(receive: Receive, box: Outbox) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    box.fail(CLIENT)


async def relay(send: Send, receive: Receive, body: StreamBody, head: Message) -> None:
    """Send ``head`` (``http.response.start``), then ``body`` until it ends (see the
    module docstring)."""
    box = body.slot.outbox
    box.abort = aborter(send)
    watcher = asyncio.ensure_future(_watch_client(receive, box))
    loop = asyncio.get_running_loop()
    try:
        await send(head)
        while True:
            item = await box.next()
            if item is END:
                break
            chunk = body.heartbeat if item is IDLE else body.farewell if item is DRAINING else item
            if not isinstance(chunk, bytes) or not chunk:
                continue
            box.sending_since = loop.time()
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            box.sending_since = None
            box.last_sent = loop.time()
        if not box.failed:
            await send({"type": "http.response.body", "body": b""})
    except OSError:
        box.fail(CLIENT)  # the client went away mid-write
    except Exception as exc:
        log.exception("stream.failed", kind=body.slot.kind, error_type=type(exc).__name__)
        box.fail(ERROR)
    finally:
        if box.failed and box.abort is not None and not watcher.done():
            # The connection was aborted: return once the server saw it go, so that it
            # does not take the unfinished body for an app error.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(watcher), DISCONNECT_WAIT_SECONDS)
        box.abort = None
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if body.release is not None:
            await body.release()
        body.slot.close()

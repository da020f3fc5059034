"""Writing a ``Response`` over ASGI: status and headers, then the body, or a chunked
stream relayed until it ends or the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gateway_worker.asgi import Receive, Send
from gateway_worker.exchange import Response


async def send_body(
    send: Send, status: int, content_type: bytes, body: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    """A whole response: status, Content-Type, Content-Length, ``extra`` headers, body."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_response(send: Send, response: Response, receive: Receive) -> None:
    """``response`` (a body, or its stream) over ASGI."""
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    content_type = response.content_type.encode("latin-1")
    if response.stream is None:
        await send_body(send, response.status, content_type, response.body, extra)
        return
    headers = [(b"content-type", content_type), *extra]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send_stream(send, receive, response.stream)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def send_stream(send: Send, receive: Receive, stream: AsyncIterator[bytes]) -> None:
    """Relay ``stream`` as a chunked body until it ends or the client goes away.

    uvicorn ignores writes to a closed connection, so without watching for
    ``http.disconnect`` a stream with no end (a subscription) would hold its Redis
    connection until the worker stops.
    """
    gone = asyncio.ensure_future(_wait_disconnect(receive))
    chunks = stream.__aiter__()
    try:
        while True:
            following = asyncio.ensure_future(chunks.__anext__())
            await asyncio.wait((following, gone), return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()  # the client left: stop waiting for data
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await following
                return
            try:
                chunk = following.result()
            except StopAsyncIteration:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except OSError:
        pass  # the client went away mid-stream
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()

"""Writing a ``Response`` over ASGI: status and headers, then the body; a streamed
body (``Response.stream``) is sent by ``gateway_worker.streams.relay``, with the head
``stream_head`` makes."""

from __future__ import annotations

from gateway_worker.asgi import Message, Receive, Send
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
    """``response`` (a whole body) over ASGI."""
    extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    content_type = response.content_type.encode("latin-1")
    await send_body(send, response.status, content_type, response.body, extra)


def stream_head(response: Response) -> Message:
    """The head of a streamed response (no Content-Length: the body is chunked)."""
    headers = [(b"content-type", response.content_type.encode("latin-1"))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    return {"type": "http.response.start", "status": response.status, "headers": headers}

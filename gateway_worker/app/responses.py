"""How the app answers: ``asgi.HttpExchange`` over ASGI (``AsgiExchange``, for uvicorn
and any ASGI server; the native engine's requests are exchanges themselves), and the
head of a streamed body (``Response.stream``, sent by ``gateway_worker.streams.relay``)."""

from __future__ import annotations

from gateway_worker.asgi import Message, Receive, Scope, Send
from gateway_worker.exchange import Response


class AsgiExchange:
    """An ASGI request as an ``asgi.HttpExchange``."""

    __slots__ = ("client", "headers", "method", "path", "query_string", "receive", "send")

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw: bytes | None = scope.get("raw_path")
        path = raw.decode("latin-1") if raw else scope["path"]
        if "?" in path:  # some servers (httpx's ASGI transport) leave the query in
            path = path.partition("?")[0]
        self.path: str = path
        self.method: str = scope["method"]
        self.query_string: bytes = scope.get("query_string", b"")
        self.headers: list[tuple[bytes, bytes]] = scope["headers"]
        self.client: tuple[str, int] | None = scope.get("client")
        # The server's own callables (a stream finds the connection behind ``send``).
        self.receive = receive
        self.send = send

    async def respond(
        self, status: int, content_type: str, body: bytes, headers: list[tuple[str, str]]
    ) -> None:
        """Status, Content-Type, Content-Length, ``headers``, then the body."""
        raw = [
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", b"%d" % len(body)),
        ]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
        await self.send({"type": "http.response.start", "status": status, "headers": raw})
        await self.send({"type": "http.response.body", "body": body})


def stream_head(response: Response) -> Message:
    """The head of a streamed response (no Content-Length: the body is chunked)."""
    headers = [(b"content-type", response.content_type.encode("latin-1"))]
    headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    return {"type": "http.response.start", "status": response.status, "headers": headers}

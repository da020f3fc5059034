"""How the app answers: ``asgi.HttpExchange`` over ASGI (``AsgiExchange``, for uvicorn
and any ASGI server; the native engine's requests are exchanges themselves), the head
of a streamed body (``Response.stream``, sent by ``gateway_worker.streams.relay``), and
the app's own refusals (rate limited, internal error)."""

from __future__ import annotations

import math
import traceback

from gateway_worker.access.rate_limit import RateDecision
from gateway_worker.asgi import Message, Receive, Scope, Send
from gateway_worker.exchange import Response
from gateway_worker.protocols.json_bodies import error_response, json_bytes


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


def rate_limited(decision: RateDecision) -> Response:
    """The answer to a request the rate limiter refused (429, or 503 fail-closed)."""
    if decision.unavailable:
        return error_response(503, "Redis unavailable: the rate limiter cannot be asked")
    retry = math.ceil(decision.retry_after_seconds or 1)
    return error_response(
        429,
        f"rate limit exceeded: retry after {retry}s",
        [
            ("retry-after", str(retry)),
            ("ratelimit-limit", str(decision.limit)),
            ("ratelimit-remaining", str(decision.remaining)),
        ],
    )


def internal_error(exc: Exception, debug: bool) -> Response:
    """A 500 for an unexpected exception: its type, message and traceback only with
    ``features.debug_mode`` (``debug``), else a generic message (the log has the rest)."""
    if debug:
        return Response(
            500,
            json_bytes(
                {
                    "error": f"internal error: {type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exception(exc),
                }
            ),
        )
    return error_response(500, "internal error (details in the gateway's log)")

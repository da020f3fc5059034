"""ASGI at the edge: the types of what an HTTP engine and the app pass each other.

ASGI scopes and events are plain dicts whose value types depend on the key (``str``
for ``method``, ``bytes`` for ``raw_path``, lists of byte pairs for ``headers``, ...).
uvicorn types them as unions of TypedDicts, which code would have to narrow at every
access, on the request path. They are named once here, as mappings of untyped values
(the shape ASGI servers and clients such as httpx agree on); only the engines
(``gateway_worker.serving``) and the app's first steps (``gateway_worker.app``) touch
them, and handlers see typed ``exchange`` values.

``HttpExchange`` is the same request without the dicts: the native engine hands the
gateway's app its requests that way (no scope, no ``http.response.*`` messages per
request: measured ~3 µs of a ~18 µs request, ``benchmarks/hot_path.py``); ASGI remains
the interface for uvicorn, for WebSockets and for any other ASGI app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, TypeAlias

#: An HTTP connection scope. Any: ASGI values are typed by their key, not by the dict.
Scope: TypeAlias = MutableMapping[str, Any]
#: One ASGI event (``http.request``, ``http.response.start``, ...). Any: as for Scope.
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application (the gateway's app, or uvicorn's middleware around it).
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpExchange(Protocol):
    """One HTTP request as the app sees it, and the way back: what an engine that skips
    ASGI for the gateway's own requests hands the app (the native engine's ``Cycle``),
    and what ``app.responses.AsgiExchange`` makes of an ASGI scope (uvicorn, tests).

    ``receive``/``send`` are the request's ASGI channel (the body arrives through
    ``receive``; a streamed answer goes out through ``send``); ``respond`` writes a whole
    answer at once: status, ``Content-Type``, ``Content-Length``, ``headers``, body.
    """

    #: Upper-case, as sent.
    method: str
    #: As sent: percent-encoded, without the query.
    path: str
    query_string: bytes
    #: Lower-case names, in order, repeated names kept.
    headers: list[tuple[bytes, bytes]]
    #: The peer (host, port), None when unknown (a Unix socket).
    client: tuple[str, int] | None

    def receive(self) -> Awaitable[Message]: ...

    def send(self, message: Message, /) -> Awaitable[None]: ...

    async def respond(
        self, status: int, content_type: str, body: bytes, headers: list[tuple[str, str]]
    ) -> None: ...


#: An app that serves ``HttpExchange`` values directly (the gateway's
#: ``GatewayApp.serve_exchange``); the native engine finds it on the app it was given.
ExchangeApp: TypeAlias = Callable[[HttpExchange], Awaitable[None]]

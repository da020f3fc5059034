"""WebSocket upgrades in the native engine, done as uvicorn's httptools protocol does
them (``handle_websocket_upgrade``): the WebSocket protocol (``serving.websocket``) gets
the request head again, as bytes, and the transport."""

from __future__ import annotations

import asyncio
from typing import Protocol

import uvicorn
from uvicorn.server import ServerState


class Upgraded(Protocol):
    """What the hand-over reads of the HTTP connection (``NativeHttpProtocol``)."""

    config: uvicorn.Config
    server_state: ServerState
    app_state: dict[str, object]
    transport: asyncio.Transport


def wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    """The request asks for a WebSocket (``Upgrade: websocket``; names lower-case)."""
    return any(name == b"upgrade" and value.lower() == b"websocket" for name, value in headers)


def request_head(method: bytes, url: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request line and headers, as the WebSocket protocol parses them."""
    head = [method, b" ", url, b" HTTP/1.1\r\n"]
    for name, value in headers:
        head += (name, b": ", value, b"\r\n")
    head.append(b"\r\n")
    return b"".join(head)


def hand_over(ws_class: type[asyncio.Protocol], conn: Upgraded, head: bytes) -> None:
    """A ``ws_class`` protocol owns ``conn``'s transport from now on, from ``head``."""
    protocol = ws_class(  # type: ignore[call-arg]  # uvicorn's protocol constructor
        config=conn.config, server_state=conn.server_state, app_state=conn.app_state
    )
    protocol.connection_made(conn.transport)
    protocol.data_received(head)
    conn.transport.set_protocol(protocol)

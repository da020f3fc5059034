"""The native engine's two ways into the app answer byte for byte the same.

The native engine hands the gateway's requests to ``GatewayApp.serve_exchange`` (no
ASGI scope or messages; ``asgi.HttpExchange``) and any other app, or a request a
trusted proxy's headers must rewrite, to ASGI. Here the same raw requests go to two
gateways on the same Redis: one as in production, one whose app is hidden behind a
plain ASGI callable (so every request takes the ASGI path), and the whole responses,
status line, headers and body, must match (but for the ``Date`` header).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
import redis

from gateway_worker.app import GatewayApp
from gateway_worker.asgi import ASGIApp, HttpExchange, Receive, Scope, Send
from gateway_worker.config import Config
from tests.integration.conftest_gateway import make_config, running_gateway

pytestmark = pytest.mark.integration


def post(path: str, body: bytes) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (
        path.encode(),
        len(body),
        body,
    )


REQUESTS = [
    b"GET /set/nx:key/hello HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /get/nx:key HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /get/nx:key HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /get/nx:key HTTP/1.0\r\n\r\n",
    b"GET /get/nx:key HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET /get/nx:missing HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /get/nx%3Akey HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /get/nx:key HTTP/1.1\r\nHost: x\r\nUpstash-Encoding: base64\r\n\r\n",
    b"GET /incr/nx:key HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /nosuchcommand/a HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /flushall HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PATCH /get/nx:key HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    post("/pipeline", b'[["SET","nx:p","1"],["INCR","nx:p"],["X"]]'),
    post("/pipeline", b'[["SET","nx:p","1"],["INCR","nx:p"]]'),
    post("/", b'["GET", "nx:key"]'),
    post("/", b"{nojson]]"),
    post("/set/nx:big", b"b" * 5000),
    post("/set/nx:big", b"b" * 4000),
    b"GET /webdis/GET/nx:key HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /webdis/GET/nx:key.txt HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /webdis/GET/nx:key.raw HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /webdis/SET/nx:w/a%20b HTTP/1.1\r\nHost: x\r\n\r\n",
    b'GET /webdis/GET/nx:key HTTP/1.1\r\nHost: x\r\nIf-None-Match: "x"\r\n\r\n',
    b"GET /webdis/NOPE HTTP/1.1\r\nHost: x\r\n\r\n",
    b"OPTIONS /get/nx:key HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\n"
    b"Access-Control-Request-Method: GET\r\n\r\n",
    b"GET /get/nx:key HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\r\n\r\n",
    b"GET /nowhere/at/all HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n",
]


class Entries:
    """The app, with a count of the requests that came in by each way."""

    def __init__(self, app: GatewayApp, exchange: bool) -> None:
        self.app = app
        self.asgi_calls = 0
        self.exchange_calls = 0
        if exchange:  # (an attribute of the instance: the engine looks it up by name)
            self.serve_exchange = self._serve_exchange

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.asgi_calls += 1
        await self.app(scope, receive, send)

    async def _serve_exchange(self, exchange: HttpExchange) -> None:
        self.exchange_calls += 1
        await self.app.serve_exchange(exchange)


def config(redis_url: str) -> Config:
    sections: dict[str, Any] = {
        "server": {
            "cors": {"enabled": True, "allowed_origins": ["https://app.example.com"]},
            "max_body_bytes": 4096,  # the 5000-byte body: a 413
        },
        "api": {"webdis_enabled": True, "webdis_prefix": "/webdis"},
    }
    return make_config(redis_url, **sections)


def exchange(port: int, request: bytes) -> bytes:
    """Everything the gateway sends back for ``request`` on a new connection, read until
    it closes (the request is followed by ``Connection: close`` unless it says HTTP/1.0
    or already asks for it) -- without the Date header, and the sync token's nonce."""
    if b"HTTP/1.1\r\n" in request and b"Connection: close" not in request:
        request = request.replace(b"HTTP/1.1\r\n", b"HTTP/1.1\r\nConnection: close\r\n", 1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, sep, body = answer.partition(b"\r\n\r\n")
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]
    # each worker's sync token starts from a random nonce: the count of writes is compared
    lines = [re.sub(rb"^(upstash-sync-token: )[0-9a-f]+-", rb"\1<nonce>-", x) for x in lines]
    return b"\r\n".join(lines) + sep + body


def answers(base: str, client: redis.Redis) -> list[bytes]:
    client.delete("nx:key", "nx:p", "nx:w", "nx:big")
    port = int(base.rsplit(":", 1)[1])
    return [exchange(port, request) for request in REQUESTS]


def test_serve_exchange_and_asgi_answer_the_same_bytes(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    entries: list[Entries] = []

    def entry(exchange: bool) -> Callable[[GatewayApp], ASGIApp]:
        def wrap(app: GatewayApp) -> ASGIApp:
            entries.append(Entries(app, exchange))
            return entries[-1]

        return wrap

    with running_gateway(config(redis_url), serve=entry(True)) as direct:
        through_exchange = answers(direct, clean_redis)
    with running_gateway(config(redis_url), serve=entry(False)) as asgi:
        through_asgi = answers(asgi, clean_redis)
    for request, one, other in zip(REQUESTS, through_exchange, through_asgi, strict=True):
        assert one == other, request
    # /healthz answered the readiness polls of running_gateway: more than REQUESTS
    assert entries[0].exchange_calls > len(REQUESTS) and entries[0].asgi_calls == 0
    assert entries[1].asgi_calls > len(REQUESTS) and entries[1].exchange_calls == 0
    statuses = {answer.split(b" ", 2)[1] for answer in through_exchange}
    # the requests cover answers of every kind, not only 200s
    assert {b"200", b"204", b"400", b"403", b"405", b"413"} <= statuses, statuses
    head_answer = through_exchange[2]
    assert head_answer.endswith(b"\r\n\r\n") and b"content-length: 18" in head_answer
    assert b"connection: close" in through_exchange[3]

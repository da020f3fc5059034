"""The native engine's way into an app without ASGI (``serve_exchange``, ``Cycle.respond``).

On a real socket, in-process (``tests/unit/test_fasthttp.py``'s server): an app offering
``serve_exchange`` gets the request's fields and answers with ``respond``; a request
whose ``X-Forwarded-*`` a trusted proxy sent goes through uvicorn's proxy-headers
middleware, over ASGI; a header that would split the response is refused. The same
answers by both ways, for the whole gateway app: tests/integration/test_native_exchange.py.
"""

from __future__ import annotations

import asyncio

from gateway_worker.asgi import HttpExchange, Receive, Scope, Send
from tests.unit.test_fasthttp import connect, read_response, serving


class ExchangeApp:
    """Answers with what it was asked; records which way each request came in."""

    def __init__(self) -> None:
        self.ways: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.ways.append("asgi")
        body = f"asgi {scope['method']} {scope['path']} {scope['client'][0]}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    async def serve_exchange(self, exchange: HttpExchange) -> None:
        self.ways.append("exchange")
        body = b""
        while True:
            message = await exchange.receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        client = exchange.client[0] if exchange.client else "-"
        answer = f"{exchange.method} {exchange.path} {exchange.query_string.decode()} {client}"
        headers = [("X-Echo", body.decode())]
        if exchange.path == "/split":
            headers = [("x-echo", "a\r\nset-cookie: evil=1")]
        await exchange.respond(201, "text/plain", answer.encode(), headers)


def test_an_exchange_app_gets_the_request_and_its_answer_leaves_whole() -> None:
    async def scenario() -> None:
        app = ExchangeApp()
        async with serving(app) as port:
            reader, writer = await connect(port)
            writer.write(
                b"POST /a%20b?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            head, body = await read_response(reader)
            assert head.startswith(b"http/1.1 201 created\r\n")
            assert b"\r\ncontent-type: text/plain\r\ncontent-length: 25\r\n" in head
            assert b"\r\nx-echo: abc\r\n" in head  # names sent lower-case, as over ASGI
            assert b"\r\ndate: " in head and b"connection: close" not in head
            assert body == b"POST /a%20b x=1 127.0.0.1"  # the path as sent
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"content-length: 18\r\n" in head  # a HEAD: the length, no body
            writer.write(b"GET /c HTTP/1.0\r\n\r\n")
            head, body = await read_response(reader)
            assert b"connection: close" in head and body == b"GET /c  127.0.0.1"
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        assert app.ways == ["exchange"] * 3

    asyncio.run(scenario())


def test_a_trusted_proxys_forwarded_request_goes_through_its_middleware() -> None:
    async def scenario() -> None:
        app = ExchangeApp()
        async with serving(app) as port:  # uvicorn trusts 127.0.0.1 by default
            reader, writer = await connect(port)
            writer.write(b"GET /f HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n")
            assert (await read_response(reader))[1] == b"asgi GET /f 10.1.2.3"
            writer.write(b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[1] == b"GET /g  127.0.0.1"
            writer.close()
        assert app.ways == ["asgi", "exchange"]

    asyncio.run(scenario())


def test_a_header_that_would_split_the_response_is_not_sent() -> None:
    async def scenario() -> None:
        async with serving(ExchangeApp()) as port:
            reader, writer = await connect(port)
            writer.write(b"GET /split HTTP/1.1\r\nHost: x\r\n\r\n")
            # the answer had started: the connection is closed, nothing of it written
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    asyncio.run(scenario())

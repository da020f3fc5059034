"""The native HTTP engine (gateway_worker.serving.native.connection) on a real socket, in-process.

Each test speaks raw HTTP/1.1 to a ``WorkerServer`` running ``NativeHttpProtocol``
(``server.http_engine = "native"``) and checks the bytes uvicorn's protocol would
produce: framing, keep-alive, pipelining order, request bodies, streaming, 503 beyond
``max_connections``, 400 on garbage, 500 when the app fails. The drain is covered by
tests/unit/test_worker_drain.py for both engines.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway_worker.asgi import ASGIApp, Receive, Scope, Send
from gateway_worker.config import Config
from gateway_worker.serving.native.connection import NativeHttpProtocol
from gateway_worker.serving.server import WorkerServer, uvicorn_config

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class App:
    """A small ASGI app whose routes exercise one feature each."""

    def __init__(self) -> None:
        self.disconnected = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/echo":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await _reply(send, body)
            return
        if path == "/stream":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            for chunk in (b"one", b"two"):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await self.release.wait()
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/forever":
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain")],
                }
            )
            await send({"type": "http.response.body", "body": b"hi", "more_body": True})
            while (await receive())["type"] != "http.disconnect":
                pass
            self.disconnected.set()
            return
        if path.startswith("/sleep/"):
            await asyncio.sleep(float(path.rsplit("/", 1)[1]))
        info = (
            f"{scope['method']} {path} {scope['query_string'].decode()} "
            f"{scope['client'][0]} {scope['http_version']}"
        )
        await _reply(send, info.encode())


async def _reply(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"Content-Type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def serving(app: ASGIApp, **server: Any) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    config = Config.model_validate(
        {"server": {"graceful_shutdown_timeout_seconds": 2, "http_engine": "native", **server}}
    )
    uconfig = uvicorn_config(app, config)
    assert uconfig.http is NativeHttpProtocol
    worker = WorkerServer(uconfig, idle_grace=0.2)
    task = asyncio.get_running_loop().create_task(worker.serve(sockets=[sock]))
    while not worker.started:
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        worker.request_drain()
        await asyncio.wait_for(task, 10)


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(head, body) of one response framed by Content-Length or chunked encoding."""
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return head, await asyncio.wait_for(reader.readexactly(int(line[15:])), 5)
    assert b"transfer-encoding: chunked" in head
    body = b""
    while True:
        size = int(await asyncio.wait_for(reader.readuntil(b"\r\n"), 5), 16)
        chunk = await asyncio.wait_for(reader.readexactly(size + 2), 5)
        if size == 0:
            return head, body
        body += chunk[:-2]


async def connect(port: int) -> Streams:
    return await asyncio.open_connection("127.0.0.1", port)


def test_keep_alive_query_and_header_case() -> None:
    async def scenario() -> None:
        async with serving(App()) as port:
            reader, writer = await connect(port)
            for path in ("/a?x=1", "/b%20c"):
                writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                head, body = await read_response(reader)
                assert head.startswith(b"http/1.1 200 ok\r\n")
                assert b"content-type: text/plain\r\n" in head  # names sent lower-case
                assert b"connection: close" not in head
            assert body == b"GET /b c  127.0.0.1 1.1"
            writer.close()

    asyncio.run(scenario())


def test_pipelined_requests_are_answered_in_order() -> None:
    async def scenario() -> None:
        async with serving(App()) as port:
            reader, writer = await connect(port)
            writer.write(
                b"GET /sleep/0.2 HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            )
            bodies = [(await read_response(reader))[1] for _ in range(3)]
            assert bodies == [b"GET /sleep/0.2  127.0.0.1 1.1", b"GET /fast  127.0.0.1 1.1", b"abc"]
            writer.close()

    asyncio.run(scenario())


def test_connection_close_and_http_1_0_close_after_the_reply() -> None:
    async def scenario() -> None:
        async with serving(App()) as port:
            for request in (
                b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /a HTTP/1.0\r\n\r\n",
            ):
                reader, writer = await connect(port)
                writer.write(request)
                head, _ = await read_response(reader)
                assert b"connection: close" in head
                assert await asyncio.wait_for(reader.read(), 5) == b""
                writer.close()

    asyncio.run(scenario())


def test_request_bodies_chunked_large_and_100_continue() -> None:
    async def scenario() -> None:
        async with serving(App()) as port:
            reader, writer = await connect(port)
            writer.write(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
            )
            assert (await read_response(reader))[1] == b"abcde"
            big = bytes(range(256)) * 1024  # above the read-pausing high-water mark
            writer.write(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(big) + big
            )
            assert (await read_response(reader))[1] == big
            writer.write(
                b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                b"Expect: 100-continue\r\n\r\n"
            )
            assert (
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                == b"HTTP/1.1 100 Continue\r\n\r\n"
            )
            writer.write(b"ok")
            assert (await read_response(reader))[1] == b"ok"
            writer.close()

    asyncio.run(scenario())


def test_streamed_response_is_chunked_and_head_has_no_body() -> None:
    async def scenario() -> None:
        app = App()
        async with serving(app) as port:
            reader, writer = await connect(port)
            writer.write(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"transfer-encoding: chunked" in head.lower()
            # The first chunks arrive before the response ends.
            assert await asyncio.wait_for(reader.readexactly(16), 5) == b"3\r\none\r\n3\r\ntwo\r\n"
            app.release.set()
            assert await asyncio.wait_for(reader.readexactly(5), 5) == b"0\r\n\r\n"
            writer.write(b"HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert b"content-length: 22" in head.lower()  # "HEAD /a  127.0.0.1 1.1"
            writer.write(b"GET /after-head HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(reader))[1].startswith(b"GET /after-head")
            writer.close()

    asyncio.run(scenario())


def test_streaming_app_sees_the_client_leave() -> None:
    async def scenario() -> None:
        app = App()
        async with serving(app) as port:
            reader, writer = await connect(port)
            writer.write(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
            await asyncio.wait_for(reader.readuntil(b"hi\r\n"), 5)
            writer.close()
            await asyncio.wait_for(app.disconnected.wait(), 5)

    asyncio.run(scenario())


def test_beyond_max_connections_gets_503() -> None:
    async def scenario() -> None:
        # As uvicorn's limit_concurrency: the limit counts the connection asking.
        async with serving(App(), max_connections=2) as port:
            first = await connect(port)
            first[1].write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await read_response(first[0]))[0].startswith(b"http/1.1 200")
            second = await connect(port)
            second[1].write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = await read_response(second[0])
            assert head.startswith(b"http/1.1 503") and body == b"Service Unavailable"
            assert head.count(b"connection: close") == 1
            for _, writer in (first, second):
                writer.close()

    asyncio.run(scenario())


def test_garbage_gets_400_and_a_failing_app_500() -> None:
    async def scenario() -> None:
        async with serving(App()) as port:
            reader, writer = await connect(port)
            writer.write(b"NOT HTTP AT ALL\r\n\r\n")
            head, body = await read_response(reader)
            assert head.startswith(b"http/1.1 400") and b"connection: close" in head
            assert body == b"Invalid HTTP request received."
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
            reader, writer = await connect(port)
            writer.write(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = await read_response(reader)
            assert head.startswith(b"http/1.1 500") and body == b"Internal Server Error"
            writer.close()

    asyncio.run(scenario())


def test_idle_keep_alive_connection_is_closed_after_the_timeout() -> None:
    async def scenario() -> None:
        async with serving(App(), keepalive_timeout_seconds=1.0) as port:
            reader, writer = await connect(port)
            loop = asyncio.get_running_loop()
            for _ in range(3):  # activity keeps it open past one timeout
                writer.write(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
                await read_response(reader)
                await asyncio.sleep(0.5)
            began = loop.time()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            assert 0.3 <= loop.time() - began <= 2.0
            writer.close()

    asyncio.run(scenario())


def test_forwarded_headers_from_a_trusted_peer_are_applied_per_request() -> None:
    async def scenario() -> None:
        async with serving(App()) as port:  # uvicorn's default: 127.0.0.1 is trusted
            reader, writer = await connect(port)
            writer.write(
                b"GET /a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.2.3\r\n\r\n"
                b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            assert (await read_response(reader))[1] == b"GET /a  10.1.2.3 1.1"
            assert (await read_response(reader))[1] == b"GET /b  127.0.0.1 1.1"
            writer.close()

    asyncio.run(scenario())

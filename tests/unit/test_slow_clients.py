"""Slow, idle and half-closing clients against both engines, in-process on a real socket.

The header timeout (from the accept, and from the first byte of a later request), the
per-worker cap on pending connections, the head size limit (``serving.pending``),
half-closed clients and refusals behind pipelined requests (``serving.connection_end``),
for ``server.http_engine`` uvicorn and native (and uvicorn's h11 fallback where it
applies). The registry's own logic, with
a fake clock: tests/unit/test_pending.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway_worker.asgi import Receive, Scope, Send
from gateway_worker.config import Config
from gateway_worker.serving.pending import PendingPolicy
from gateway_worker.serving.server import WorkerServer, uvicorn_config
from gateway_worker.serving.uvicorn_engine import DrainingH11Protocol

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    elif scope["method"] == "POST" and scope["path"] != "/early":
        while (await receive()).get("more_body"):
            pass
    body = scope["path"].encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(params=["uvicorn", "native", "h11"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def serving(engine: str, **server: Any) -> AsyncIterator[tuple[WorkerServer, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = Config.model_validate(
        {
            "server": {
                "graceful_shutdown_timeout_seconds": 2,
                "http_engine": "uvicorn" if engine == "h11" else engine,
                **server,
            }
        }
    )
    uconfig = uvicorn_config(app, config)
    if engine == "h11":
        uconfig.http = DrainingH11Protocol
    worker = WorkerServer(uconfig, idle_grace=0.2, pending=PendingPolicy.from_config(config.server))
    task = asyncio.get_running_loop().create_task(worker.serve(sockets=[sock]))
    while not worker.started:
        await asyncio.sleep(0.01)
    try:
        yield worker, sock.getsockname()[1]
    finally:
        worker.request_drain()
        await asyncio.wait_for(task, 10)


async def connect(port: int) -> Streams:
    return await asyncio.open_connection("127.0.0.1", port)


async def response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).lower()
    length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await asyncio.wait_for(reader.readexactly(length), 5)


async def read_all(reader: asyncio.StreamReader, timeout: float = 5) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(), timeout)
    except ConnectionResetError:
        return b"<reset>"


def run(scenario: Any) -> None:
    asyncio.run(scenario())


def test_a_connection_that_sends_nothing_is_closed_at_the_header_timeout(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine, request_header_timeout_seconds=0.3) as (worker, port):
            loop = asyncio.get_running_loop()
            began = loop.time()
            reader, writer = await connect(port)
            assert await read_all(reader) == b""  # closed, and nothing to answer
            assert 0.25 <= loop.time() - began <= 2.0
            assert len(worker.pending) == 0
            writer.close()

    run(scenario)


def test_a_partial_head_gets_408_at_the_header_timeout(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine, request_header_timeout_seconds=0.3) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
            answer = await read_all(reader)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
            assert answer.endswith(b"server.request_header_timeout_seconds=0.3")
            writer.close()

    run(scenario)


def test_between_requests_keep_alive_governs_and_a_trickling_request_gets_408(
    engine: str,
) -> None:
    async def scenario() -> None:
        async with serving(
            engine, request_header_timeout_seconds=0.3, keepalive_timeout_seconds=3
        ) as (worker, port):
            reader, writer = await connect(port)
            writer.write(GET)
            assert (await response(reader))[1] == b"/"
            assert len(worker.pending) == 0  # head complete: out of the registry
            await asyncio.sleep(0.6)  # idle past the header timeout: still open
            writer.write(GET)
            assert (await response(reader))[1] == b"/"
            loop = asyncio.get_running_loop()
            writer.write(b"GET /trickle HTTP/1.1\r\n")
            began = loop.time()

            async def trickle() -> None:
                for _ in range(20):  # one byte every 0.1 s: never a complete head
                    await asyncio.sleep(0.1)
                    writer.write(b"x")

            trickling = asyncio.create_task(trickle())
            answer = await read_all(reader)
            trickling.cancel()
            assert answer.startswith(b"HTTP/1.1 408"), answer
            assert loop.time() - began <= 1.5
            writer.close()

    run(scenario)


def test_beyond_the_cap_the_oldest_pending_connection_is_closed(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine, max_connections=10, max_pending_connections=3) as (
            worker,
            port,
        ):
            idle = [await connect(port) for _ in range(3)]
            while len(worker.pending) < 3:
                await asyncio.sleep(0.01)
            reader, writer = await connect(port)  # the fourth: the first idle one goes
            assert await read_all(idle[0][0]) == b""
            assert not idle[1][0].at_eof() and not idle[2][0].at_eof()
            writer.write(GET)
            assert (await response(reader))[1] == b"/"
            assert worker.pending.evicted == 1
            for _, w in [*idle, (reader, writer)]:
                w.close()

    run(scenario)


@pytest.mark.parametrize("engine", ["uvicorn", "native"])  # h11 has its own 16 KiB limit
def test_a_head_larger_than_max_header_bytes_gets_431(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine, max_header_bytes=2048) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET /fits HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 1000)
            await asyncio.sleep(0.05)
            writer.write(b"a" * 500 + b"\r\n\r\n")
            assert (await response(reader))[1] == b"/fits"
            writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 1500)
            await asyncio.sleep(0.05)
            writer.write(b"a" * 1000)
            answer = await read_all(reader)
            assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
            assert answer.endswith(b"request head larger than server.max_header_bytes=2048")
            writer.close()

    run(scenario)


def test_a_head_after_a_large_body_in_the_same_read_is_not_too_large(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine, max_header_bytes=2048) as (_, port):
            reader, writer = await connect(port)
            body = b"b" * 100_000
            post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            # The end of the body and the start of a pipelined head in one write.
            writer.write(post + body[:50_000])
            await asyncio.sleep(0.05)
            writer.write(body[50_000:] + b"GET /next HTTP/1.1\r\n")
            await asyncio.sleep(0.05)
            writer.write(b"Host: x\r\n\r\n")
            assert (await response(reader))[1] == b"/p"
            assert (await response(reader))[1] == b"/next"
            writer.close()

    run(scenario)


def test_a_half_closed_client_gets_its_answers(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            writer.write_eof()  # shutdown(SHUT_WR): the answer is still being computed
            head, body = await response(reader)
            assert head.startswith(b"http/1.1 200") and body == b"/slow"
            if engine != "h11":  # h11 writes its own headers: it closes without saying so
                assert b"connection: close" in head
            assert await read_all(reader) == b""
            writer.close()
            # Pipelined requests, then the half-close: every one is answered, in order.
            reader, writer = await connect(port)
            writer.write(
                b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n"
            )
            writer.write_eof()
            assert [(await response(reader))[1] for _ in range(2)] == [b"/slow", b"/second"]
            assert await read_all(reader) == b""
            writer.close()

    run(scenario)


def test_a_half_close_with_nothing_to_answer_closes_at_once(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine) as (worker, port):
            loop = asyncio.get_running_loop()
            for data in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n", GET):
                reader, writer = await connect(port)
                writer.write(data)
                if data == GET:
                    await response(reader)
                writer.write_eof()
                began = loop.time()
                assert await read_all(reader) == b""
                assert loop.time() - began < 1.0  # not the 10 s header timeout
                writer.close()
            while len(worker.pending):
                await asyncio.sleep(0.01)

    run(scenario)


def test_garbage_pipelined_behind_requests_waits_for_their_answers(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine) as (_, port):
            reader, writer = await connect(port)
            # Stock uvicorn wrote the 400 at once and closed: /slow's answer was lost.
            writer.write(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nNOT HTTP\r\n\r\n")
            head, body = await response(reader)
            assert head.startswith(b"http/1.1 200") and body == b"/slow"
            if engine != "h11":
                assert b"connection: close" in head
            rest = await read_all(reader)  # then closed, the garbage unanswered...
            assert rest == b"" or (engine == "h11" and rest.startswith(b"HTTP/1.1 400 "))
            writer.close()
            # Garbage inside the body of the request itself: that request gets the 400.
            reader, writer = await connect(port)
            writer.write(b"POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
            assert (await read_all(reader)).startswith(b"HTTP/1.1 400 ")
            writer.close()

    run(scenario)


@pytest.mark.parametrize("engine", ["uvicorn", "native"])
@pytest.mark.parametrize("trailer", [b"X-T: t\r\n" * 2000, b"X-T: " + b"t" * 5000])
def test_trailers_of_a_chunked_body_are_bounded_by_max_header_bytes(
    engine: str, trailer: bytes
) -> None:
    # Unbounded before: uvicorn appended them to the scope's headers (100 MB of
    # trailers, 1.4 GB of worker memory); httptools buffers a trailer that never ends.
    async def scenario() -> None:
        async with serving(engine, max_header_bytes=2048) as (_, port):
            reader, writer = await connect(port)
            chunked = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            writer.write(chunked + b"2\r\nab\r\n0\r\nX-Ok: 1\r\n\r\n")
            assert (await response(reader))[1] == b"/c"  # small trailers: fine
            writer.write(chunked + b"2\r\nab\r\n0\r\n")
            await asyncio.sleep(0.05)
            for i in range(0, 3000, 1000):  # past the limit, and no further (no EPIPE)
                writer.write(trailer[i : i + 1000])
                await asyncio.sleep(0.02)
            answer = await read_all(reader)
            assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
            writer.close()

    run(scenario)


@pytest.mark.parametrize("engine", ["uvicorn", "native"])
def test_a_head_too_large_gets_431_however_its_bytes_arrive(engine: str) -> None:
    """A head larger than max_header_bytes that arrives whole, in one read, was served
    (the limit was counted per read only); the fault suite's engines disagreed on it."""

    async def scenario() -> None:
        async with serving(engine, max_header_bytes=2048) as (_, port):
            for size in (3000, 20_000):
                reader, writer = await connect(port)
                writer.write(b"GET /big HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * size + b"\r\n\r\n")
                answer = await read_all(reader)
                assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
                writer.close()
            # pipelined behind a request that fits (in one read): that one is answered,
            # as the last (serving.connection_end: a refusal does not overtake it)
            reader, writer = await connect(port)
            fits = b"GET /fits HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 1500 + b"\r\n\r\n"
            big = b"GET /big HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 3000 + b"\r\n\r\n"
            writer.write(fits + big)
            head, body = await response(reader)
            assert body == b"/fits" and b"connection: close" in head.lower()
            assert await read_all(reader) == b""  # /big was not served
            writer.close()

    run(scenario)


def test_an_answer_before_the_whole_body_closes_the_connection(engine: str) -> None:
    # Otherwise the rest of the body (or an endless one) was read and dropped for as
    # long as the client kept sending.
    async def scenario() -> None:
        async with serving(engine) as (_, port):
            reader, writer = await connect(port)
            writer.write(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab")
            _, body = await response(reader)
            assert body == b"/early"
            assert await read_all(reader) == b""
            writer.close()

    run(scenario)


def test_stray_bytes_between_requests_start_the_header_timeout(engine: str) -> None:
    # A CRLF every 0.1 s used to hold a keep-alive connection forever: every read
    # restarted the keep-alive timer, and no request head ever began.
    async def scenario() -> None:
        async with serving(
            engine, request_header_timeout_seconds=0.4, keepalive_timeout_seconds=0.3
        ) as (_, port):
            reader, writer = await connect(port)
            writer.write(GET)
            assert (await response(reader))[1] == b"/"
            loop = asyncio.get_running_loop()
            began = loop.time()

            async def stray() -> None:
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b"\r\n")

            straying = asyncio.create_task(stray())
            answer = await read_all(reader)
            straying.cancel()
            # Closed (408, or h11's 400 for bytes that are no request line).
            assert answer in (b"", b"<reset>") or answer.startswith(b"HTTP/1.1 40"), answer
            assert loop.time() - began <= 2.0
            writer.close()

    run(scenario)


@pytest.mark.parametrize("engine", ["uvicorn", "native"])
def test_a_whole_large_request_and_the_start_of_the_next_in_one_read(engine: str) -> None:
    async def scenario() -> None:
        async with serving(engine, max_header_bytes=2048) as (_, port):
            reader, writer = await connect(port)
            body = b"b" * 100_000
            post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            writer.write(post + body + b"GET /next HTTP/1.1\r\n")  # not a 100 KB head
            await asyncio.sleep(0.05)
            writer.write(b"Host: x\r\n\r\n")
            assert (await response(reader))[1] == b"/p"
            assert (await response(reader))[1] == b"/next"
            writer.close()

    run(scenario)

"""The worker's race-free drain (gateway_worker.serving.server), in-process on a real socket.

Stock uvicorn closes an idle keep-alive connection the moment shutdown starts; ours
answers the connection's next request with `Connection: close`, and closes a
connection that stays idle only after the grace period.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway_worker.asgi import Receive, Scope, Send
from gateway_worker.config import Config
from gateway_worker.serving.server import WorkerServer, uvicorn_config


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/slow":
        await asyncio.sleep(0.3)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
) -> tuple[bytes, bytes]:
    writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    body = await asyncio.wait_for(reader.readexactly(2), 5)
    return head.lower(), body


@pytest.fixture(params=["uvicorn", "native"])
def engine(request: pytest.FixtureRequest) -> str:
    """Both HTTP engines (server.http_engine) must drain the same way."""
    return str(request.param)


async def start(
    grace: float, engine: str
) -> tuple[WorkerServer, asyncio.Task[None], int, list[str]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    events: list[str] = []
    config = Config.model_validate(
        {"server": {"graceful_shutdown_timeout_seconds": 5, "http_engine": engine}}
    )
    server = WorkerServer(
        uvicorn_config(app, config),
        idle_grace=grace,
        on_started=lambda: events.append("started"),
        on_draining=lambda: events.append("draining"),
    )
    task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, port, events


def test_keep_alive_connection_gets_connection_close_on_its_next_request(engine: str) -> None:
    async def scenario() -> None:
        server, task, port, events = await start(grace=1.0, engine=engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head, _ = await request(reader, writer, "/a")
        assert b"connection: close" not in head
        server.request_drain()
        while "draining" not in events:
            await asyncio.sleep(0.01)
        # Idle but within the grace: the connection is still open and is served.
        head, body = await request(reader, writer, "/b")
        assert body == b"ok"
        assert b"connection: close" in head
        assert await asyncio.wait_for(reader.read(), 2) == b""  # closed after the reply
        writer.close()
        # A new connection is refused: this worker closed its listener copy.
        await asyncio.wait_for(task, 5)
        assert events == ["started", "draining"]

    asyncio.run(scenario())


def test_idle_connection_is_closed_only_after_the_grace(engine: str) -> None:
    async def scenario() -> None:
        server, task, port, _ = await start(grace=0.4, engine=engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await request(reader, writer, "/a")
        loop = asyncio.get_running_loop()
        began = loop.time()
        server.request_drain()
        assert await asyncio.wait_for(reader.read(), 3) == b""
        assert loop.time() - began >= 0.35
        writer.close()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_in_flight_request_completes_during_drain(engine: str) -> None:
    async def scenario() -> None:
        server, task, port, _ = await start(grace=0.2, engine=engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pending = asyncio.ensure_future(request(reader, writer, "/slow"))
        await asyncio.sleep(0.1)
        server.request_drain()
        head, body = await pending
        assert body == b"ok" and head.startswith(b"http/1.1 200")
        assert b"connection: close" in head
        writer.close()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())


def test_a_request_arriving_in_pieces_during_the_grace_is_served(engine: str) -> None:
    async def scenario() -> None:
        server, task, port, _ = await start(grace=0.4, engine=engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await request(reader, writer, "/a")
        server.request_drain()
        await asyncio.sleep(0.3)
        writer.write(b"GET /b HTTP/1.1\r\n")  # not idle any more: the grace restarts
        await asyncio.sleep(0.3)  # past the first grace, within the restarted one
        writer.write(b"host: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.lower().startswith(b"http/1.1 200") and b"connection: close" in head.lower()
        writer.close()
        await asyncio.wait_for(task, 5)

    asyncio.run(scenario())

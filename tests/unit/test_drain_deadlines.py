"""The worker's drain deadlines come from the one DrainPolicy, and end before the
supervisor's SIGKILL (gateway_worker.serving.drain, gateway_worker.serving.server)."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from gateway_worker.asgi import Receive, Scope, Send
from gateway_worker.config import Config
from gateway_worker.serving.drain import STREAM_CLOSE_MARGIN_SECONDS, DrainPolicy
from gateway_worker.serving.server import (
    UVICORN_SHUTDOWN_PAUSES_SECONDS,
    WorkerServer,
    uvicorn_config,
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["path"] == "/forever":
        await asyncio.Event().wait()  # never answers: only the drain deadline ends it
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


def config_for(timeout: float, engine: str = "uvicorn") -> Config:
    return Config.model_validate(
        {"server": {"graceful_shutdown_timeout_seconds": timeout, "http_engine": engine}}
    )


@pytest.mark.parametrize("timeout", [0.5, 1.0, 2.5, 5.0, 30.0, 300.0])
def test_the_worker_stops_waiting_before_the_supervisor_kills_it(timeout: float) -> None:
    config = config_for(timeout)
    policy = DrainPolicy.from_config(config.server)
    wait = uvicorn_config(app, config).timeout_graceful_shutdown
    assert wait is not None
    # From SIGTERM: uvicorn's fixed pauses, then its graceful wait, then the exit.
    worker_done = UVICORN_SHUTDOWN_PAUSES_SECONDS + wait
    assert worker_done <= policy.worker_deadline_seconds < policy.kill_after_seconds
    assert policy.kill_after_seconds == timeout  # the supervisor kills at the exact float


def test_the_graceful_wait_is_not_rounded_to_whole_seconds() -> None:
    # 0.5 s used to become int(max(1, 0.5)) = 1 s: after the supervisor's kill at 0.5 s.
    wait = uvicorn_config(app, config_for(0.5)).timeout_graceful_shutdown
    assert wait is not None and 0 < wait < 0.5
    assert uvicorn_config(app, config_for(2.5)).timeout_graceful_shutdown == pytest.approx(2.05)


@pytest.mark.parametrize("engine", ["uvicorn", "native"])
def test_a_request_that_never_ends_is_cancelled_before_the_kill(engine: str) -> None:
    timeout = 2.0  # margin to the kill: min(0.5, T/10) = 0.2 s
    config = config_for(timeout, engine)
    policy = DrainPolicy.from_config(config.server)

    async def scenario() -> float:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        server = WorkerServer(uvicorn_config(app, config), idle_grace=policy.idle_grace_seconds)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        _reader, writer = await asyncio.open_connection(*sock.getsockname())
        writer.write(b"GET /forever HTTP/1.1\r\nhost: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)  # the request is in the app
        started = time.monotonic()
        server.request_drain()
        await asyncio.wait_for(task, 5)
        elapsed = time.monotonic() - started
        writer.close()
        return elapsed

    elapsed = asyncio.run(scenario())
    # The graceful wait ran (it is not cut short) and ended before the supervisor's kill.
    assert policy.worker_deadline_seconds - UVICORN_SHUTDOWN_PAUSES_SECONDS <= elapsed
    assert elapsed < policy.kill_after_seconds


def stream_config(timeout: float, streams: float | None = None) -> Config:
    server: dict[str, float] = {"graceful_shutdown_timeout_seconds": timeout}
    if streams is not None:
        server["stream_drain_seconds"] = streams
    return Config.model_validate({"server": server})


@pytest.mark.parametrize(
    ("timeout", "streams", "expected"),
    [
        (30.0, None, 5.0),  # the default: 5 s ...
        (4.0, None, 2.0),  # ... or half the graceful timeout
        (30.0, 12.0, 12.0),  # as configured
        # never later than the margin before the worker's deadline (T - min(0.5, T/10)):
        (3.0, 3.0, 2.7 - STREAM_CLOSE_MARGIN_SECONDS),
        (0.5, None, 0.45 - STREAM_CLOSE_MARGIN_SECONDS),
    ],
)
def test_streams_close_before_the_workers_own_deadline(
    timeout: float, streams: float | None, expected: float
) -> None:
    policy = DrainPolicy.from_config(stream_config(timeout, streams).server)
    assert policy.stream_drain_seconds == pytest.approx(expected)
    assert policy.stream_drain_seconds + STREAM_CLOSE_MARGIN_SECONDS <= (
        policy.worker_deadline_seconds + 1e-9
    )


def test_stream_drain_seconds_may_not_exceed_the_graceful_timeout() -> None:
    with pytest.raises(ValueError, match=r"stream_drain_seconds \(5\) must be at most"):
        stream_config(3.0, 5.0)

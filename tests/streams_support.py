"""Clients and servers for the stream tests: SSE read the way a browser parses it, the
gateway app behind either of our HTTP engines in a thread, metrics samples."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn

from gateway_worker.app import build_app
from gateway_worker.config import Config
from gateway_worker.serving.server import uvicorn_config
from tests.integration.conftest_gateway import serving_in_thread

ENGINES = ("uvicorn", "native")


@dataclass
class SseEvent:
    """One Server-Sent Event (or a comment, when ``comment`` is set)."""

    event: str = "message"
    data: list[str] = field(default_factory=list)
    retry: int | None = None
    comment: str | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.data)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events (and comments) of an SSE response, as the WHATWG parser reads them."""
    current = SseEvent()
    async for line in response.aiter_lines():
        if line == "":
            if current.data or current.retry is not None or current.event != "message":
                yield current
            current = SseEvent()
        elif line.startswith(":"):
            yield SseEvent(comment=line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                current.data.append(value)
            elif name == "event":
                current.event = value
            elif name == "retry":
                current.retry = int(value)


async def next_data(events: AsyncIterator[SseEvent]) -> SseEvent:
    """The next event with data (heartbeat comments skipped)."""
    async for event in events:
        if event.comment is None:
            return event
    raise AssertionError("the stream ended")


@contextmanager
def engine_gateway(config: Config, engine: str) -> Iterator[str]:
    """The app behind ``engine`` (the worker's own uvicorn settings) in a thread."""
    config = config.model_copy(
        update={"server": config.server.model_copy(update={"http_engine": engine})}
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = build_app(config)
    # Plain uvicorn.Server: WorkerServer installs signal handlers, main thread only.
    try:
        with serving_in_thread(app, uvicorn.Server(uvicorn_config(app, config)), port, [sock]) as b:
            yield b
    finally:
        sock.close()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``, in a
    Prometheus text exposition."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total

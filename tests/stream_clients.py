"""Subscribers that reconnect the way a well-behaved client does, for the reload tests.

``Fleet`` runs them on one asyncio loop in a background thread (the test's thread drives
the supervisor and publishes); each subscriber keeps a ``Tally`` the test polls:

* ``sse``: ``POST /subscribe/<channel>`` with ``Accept: text/event-stream``; on
  ``event: reconnect`` it closes and subscribes again at once.
* ``websocket``: Webdis ``/.json`` with ``["SUBSCRIBE", channel]``; on close 1012
  ("service restart") it connects again at once.

A stream that ends any other way (no reconnect hint, another close code, an error) is
counted in ``unannounced``: a reload must never cut a stream without warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Literal

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.streams_support import sse_events

SSE = {"accept": "text/event-stream"}
SERVICE_RESTART = 1012
#: A refused or failed attempt is retried after this long (a client's backoff).
RETRY_SECONDS = 0.05


@dataclass
class Tally:
    """What one subscriber saw (written by the fleet's loop, read by the test)."""

    #: Streams whose subscription was confirmed.
    connections: int = 0
    #: Reconnect hints (SSE ``event: reconnect``, WebSocket close 1012).
    hints: int = 0
    #: Streams that ended without a hint, and why.
    unannounced: list[str] = field(default_factory=list)
    #: Every message payload, in order, and how many arrived on the current stream.
    messages: list[str] = field(default_factory=list)
    since_connect: int = 0
    #: ``len(messages)`` when each stream was confirmed.
    marks: list[int] = field(default_factory=list)
    #: False: count messages without keeping them (big payloads).
    keep: bool = True

    def confirmed(self) -> None:
        self.connections += 1
        self.since_connect = 0
        self.marks.append(len(self.messages))

    def message(self, payload: str) -> None:
        if self.keep:
            self.messages.append(payload)
        self.since_connect += 1


async def sse_subscriber(http: httpx.AsyncClient, channel: str, tally: Tally) -> None:
    """Subscribe over SSE forever, reconnecting on the reconnect hint."""
    while True:
        hinted = False
        try:
            async with http.stream("POST", f"/subscribe/{channel}", headers=SSE) as response:
                if response.status_code != 200:
                    tally.unannounced.append(f"HTTP {response.status_code}")
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                async for event in sse_events(response):
                    if event.event == "reconnect":
                        tally.hints += 1
                        hinted = True
                        break
                    kind, _, rest = event.text.partition(",")
                    if kind == "subscribe":
                        tally.confirmed()
                    elif kind == "message":
                        tally.message(rest.partition(",")[2])
        except httpx.HTTPError as exc:
            tally.unannounced.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if not hinted:
            tally.unannounced.append("the SSE stream ended without a reconnect event")


async def ws_subscriber(url: str, channel: str, tally: Tally) -> None:
    """Subscribe over a Webdis ``/.json`` WebSocket forever, reconnecting on 1012."""
    while True:
        try:
            async with connect(url, open_timeout=10) as ws:
                try:
                    await ws.send(json.dumps(["SUBSCRIBE", channel]))
                    async for raw in ws:
                        push = json.loads(raw)["SUBSCRIBE"]
                        if push[0] == "subscribe":
                            tally.confirmed()
                        elif push[0] == "message":
                            tally.message(push[2])
                except ConnectionClosed:
                    pass  # the close code says why
                code = ws.close_code
        except (OSError, TimeoutError, InvalidStatus) as exc:
            tally.unannounced.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(RETRY_SECONDS)
            continue
        if code == SERVICE_RESTART:
            tally.hints += 1
        else:
            tally.unannounced.append(f"WebSocket closed with {code}")


class Fleet:
    """Subscribers on one event loop in a background thread (see the module docstring)."""

    def __init__(self, base_url: str, webdis_prefix: str = "/webdis") -> None:
        self.base_url = base_url
        self.ws_url = base_url.replace("http://", "ws://") + webdis_prefix + "/.json"
        self.tallies: list[Tally] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fleet", daemon=True)
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._thread.start()

    def add(
        self, kind: Literal["sse", "websocket"], channel: str, count: int = 1, keep: bool = True
    ) -> list[Tally]:
        """Start ``count`` subscribers of ``kind`` to ``channel``; their tallies."""
        added = [Tally(keep=keep) for _ in range(count)]
        self.tallies.extend(added)
        for tally in added:
            self._start(self._subscriber(kind, channel, tally))
        return added

    async def _subscriber(self, kind: str, channel: str, tally: Tally) -> None:
        if kind == "websocket":
            await ws_subscriber(self.ws_url, channel, tally)
            return
        if self._http is None:
            limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
            timeout = httpx.Timeout(10.0, read=None)
            self._http = httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=timeout)
        await sse_subscriber(self._http, channel, tally)

    def _start(self, coro: Coroutine[object, object, None]) -> None:
        def create() -> None:
            self._tasks.append(self._loop.create_task(coro))

        self._loop.call_soon_threadsafe(create)

    def close(self) -> None:
        """Cancel every subscriber, close the client, stop the loop and its thread."""

        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._http is not None:
                await self._http.aclose()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

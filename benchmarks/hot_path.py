"""The Python cost of one request, in process: the native engine, the app and a protocol
handler on a real Redis, with the sockets on the HTTP side replaced by in-memory
transports (issue 12: what the worker spends per request, without wrk, the kernel's
loopback or the other processes sharing the cores).

``--connections`` connections each send a request as soon as the previous answer is
complete, so that the shared Redis connection batches as it does under load. It
prints, per path, the worker's CPU µs per request (``time.process_time``: the Redis
syscalls are included, Redis's own CPU is not) as the best of ``--repeat`` runs, and
checks every answer is a 200 with the value asked for.

    .venv/bin/python benchmarks/hot_path.py [--requests 20000] [--repeat 5]
        [--connections 32] [--paths upstash-get,webdis-get,...]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from gateway_worker.__main__ import new_loop  # noqa: E402
from gateway_worker.app.gateway import GatewayApp, build_app  # noqa: E402
from gateway_worker.config import Config  # noqa: E402
from gateway_worker.serving.native.connection import NativeHttpProtocol  # noqa: E402
from gateway_worker.serving.pending import PendingConnections, PendingPolicy  # noqa: E402
from gateway_worker.serving.server import uvicorn_config  # noqa: E402
from gateway_worker.serving.state import WorkerServerState  # noqa: E402
from supervisor.embedded_redis import EmbeddedRedis  # noqa: E402

VALUE = b"v" * 32
API_KEY = "hot-path-benchmark-key-0123456789abcdef"
#: name -> (request bytes, what the answer's body must end with)
PATHS: dict[str, tuple[bytes, bytes]] = {
    "healthz": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b'{"status":"ok"}'),
    "upstash-get": (
        b"GET /get/bench:key HTTP/1.1\r\nHost: x\r\n\r\n",
        b'{"result":"' + VALUE + b'"}',
    ),
    "upstash-set": (
        b"GET /set/bench:set/" + VALUE + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b'{"result":"OK"}',
    ),
    "webdis-get": (
        b"GET /webdis/GET/bench:key HTTP/1.1\r\nHost: x\r\n\r\n",
        b'{"GET":"' + VALUE + b'"}',
    ),
    "webdis-set": (
        b"GET /webdis/SET/bench:set/" + VALUE + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b'{"SET":[true,"OK"]}',
    ),
    "upstash-get+auth": (
        b"GET /get/bench:key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + API_KEY.encode()
        + b"\r\n\r\n",
        b'{"result":"' + VALUE + b'"}',
    ),
    "upstash-get+ratelimit": (
        b"GET /get/bench:key HTTP/1.1\r\nHost: x\r\n\r\n",
        b'{"result":"' + VALUE + b'"}',
    ),
}
#: path -> the settings it adds to the app's (as the throughput benchmark's rows)
SETTINGS: dict[str, dict[str, Any]] = {
    "upstash-get+auth": {"auth": {"enabled": True, "api_keys": [{"name": "b", "key": API_KEY}]}},
    "upstash-get+ratelimit": {
        "auth": {
            "rate_limiting": {
                "enabled": True,
                "requests_per_minute": 600_000_000,
                "burst_size": 1_000_000,
            }
        }
    },
}


class MemoryTransport(asyncio.Transport):
    """The connection's socket: answers are checked, and the next request is fed as soon
    as one is complete (by ``Client.answered``)."""

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.client.received(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8080), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Client:
    """One keep-alive connection sending ``request`` ``count`` times, one at a time."""

    def __init__(self, run: Run, protocol: NativeHttpProtocol, request: bytes) -> None:
        self.run = run
        self.protocol = protocol
        self.request = request
        self.transport = MemoryTransport(self)

    def start(self) -> None:
        self.protocol.connection_made(self.transport)
        self.send()

    def send(self) -> None:
        self.protocol.data_received(self.request)

    def received(self, data: bytes) -> None:
        if not data.startswith(b"HTTP/1.1 200 ") or not data.endswith(self.run.expect):
            raise SystemExit(f"unexpected answer: {data[:300]!r}")
        self.run.done += 1
        if self.run.sent < self.run.total:
            self.run.sent += 1
            self.run.loop.call_soon(self.send)
        elif self.run.done == self.run.total:
            self.run.finished.set_result(None)


class Run:
    def __init__(self, loop: asyncio.AbstractEventLoop, total: int, expect: bytes) -> None:
        self.loop = loop
        self.total = total
        self.expect = expect
        self.sent = 0
        self.done = 0
        self.finished: asyncio.Future[None] = loop.create_future()


async def measure(app: GatewayApp, config: Config, path: str, requests: int, conns: int) -> float:
    loop = asyncio.get_running_loop()
    uv = uvicorn_config(app, config)
    uv.load()
    state = WorkerServerState(PendingConnections(PendingPolicy.from_config(config.server)))
    request, expect = PATHS[path]
    run = Run(loop, requests, expect)
    clients = [
        Client(run, NativeHttpProtocol(uv, state, _loop=loop), request) for _ in range(conns)
    ]
    run.sent = len(clients)
    started = time.process_time()
    for client in clients:
        client.start()
    await run.finished
    cpu = time.process_time() - started
    for client in clients:
        client.protocol.connection_lost(None)
    return cpu / requests * 1e6


def app_config(redis_port: int, path: str) -> Config:
    data: dict[str, Any] = {
        "redis": {"url": f"redis://127.0.0.1:{redis_port}"},
        "observability": {"logging": {"access_log": False}},
        **SETTINGS.get(path, {}),
    }
    return Config.model_validate(data)


async def main_async(args: argparse.Namespace, redis_port: int) -> None:
    for path in args.paths.split(","):
        config = app_config(redis_port, path)
        app = build_app(config)
        await app.startup()
        try:
            await measure(app, config, path, min(2000, args.requests), args.connections)  # warm
            runs = [
                await measure(app, config, path, args.requests, args.connections)
                for _ in range(args.repeat)
            ]
        finally:
            await app.shutdown()
        spread = ", ".join(f"{r:.1f}" for r in runs)
        print(f"{path:22s} {min(runs):6.1f} µs/request (best of {args.repeat}: {spread})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--paths", default=",".join(PATHS))
    args = parser.parse_args()
    unknown = set(args.paths.split(",")) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; known: {', '.join(PATHS)}")
    server = EmbeddedRedis()
    server.start()
    try:
        redis.Redis(port=server.port).set("bench:key", VALUE)
        loop = new_loop()
        try:
            loop.run_until_complete(main_async(args, server.port))
        finally:
            loop.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()

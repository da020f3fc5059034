"""A real gateway app served by a real HTTP engine on a free port, in a background thread.

Used by the protocol integration tests, which need the app but not the supervisor:
``running_gateway(config)`` yields the base URL and stops the server (and the app's
Redis connections) on exit. The engine is the worker's (``server.http_engine``);
``test_other_engine.py`` reruns the suites on the other one.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
import uvloop

from gateway_worker.app import GatewayApp, build_app
from gateway_worker.asgi import ASGIApp
from gateway_worker.config import Config
from gateway_worker.serving.server import protocol_class, uvicorn_config
from tests.helpers import wait_until


def make_config(redis_url: str, **sections: Any) -> Config:
    """A dev config pointing at ``redis_url``, with ``sections`` merged in."""
    data: dict[str, Any] = {"redis": {"url": redis_url}}
    for key, value in sections.items():
        data.setdefault(key, {}).update(value)
    data["observability"] = {"metrics": {"enabled": False}, **data.get("observability", {})}
    return Config.model_validate(data)


@contextmanager
def running_gateway(
    config: Config, serve: Callable[[GatewayApp], ASGIApp] | None = None
) -> Iterator[str]:
    """Serve ``build_app(config)`` on 127.0.0.1 as a worker does (``uvicorn_config``: the
    engine of ``server.http_engine``, native by default); yield its base URL.

    ``serve``: what the engine is given instead of the app itself (e.g. a wrapper that
    hides ``serve_exchange``, to compare the engine's two ways into the app)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = build_app(config)
    uconfig = uvicorn_config(app if serve is None else serve(app), config)
    assert uconfig.http is protocol_class(config.server.http_engine)
    # Plain uvicorn.Server: WorkerServer installs signal handlers, main thread only.
    try:
        with serving_in_thread(app, uvicorn.Server(uconfig), port, sockets=[sock]) as base:
            yield base
    finally:
        sock.close()


@contextmanager
def serving_in_thread(
    app: GatewayApp,
    server: uvicorn.Server,
    port: int,
    sockets: list[socket.socket] | None = None,
) -> Iterator[str]:
    """Run ``app.startup()`` then ``server.serve()`` in a background thread (uvloop, as
    in production); yield the base URL once /healthz answers; stop and join on exit."""
    boot_error: list[BaseException] = []

    def serve() -> None:
        async def main() -> None:
            try:
                await app.startup()
            except BaseException as exc:
                boot_error.append(exc)
                return
            try:
                await server.serve(sockets=sockets)
            finally:
                await app.shutdown()

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main())

    thread = threading.Thread(target=serve, name=f"gateway-{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: boot_error or httpx.get(base + "/healthz", timeout=1).status_code == 200,
            what="gateway /healthz",
        )
        if boot_error:
            raise boot_error[0]
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive(), "gateway server thread did not stop"

"""rediss:// (TLS) to a real Redis behind a real TLS terminator.

The embedded valkey-server is built without TLS, so a small asyncio TLS proxy (the
role stunnel or a cloud Redis endpoint plays) sits in front of it; the handshake,
certificate checks and the RESP traffic are all real. Certificates come from the
openssl CLI (skipped where it is missing).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_worker.config import RedisConfig
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis import RedisClient
from supervisor.embedded_redis import free_port
from tests.helpers import self_signed_cert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_endpoint(redis_url: str) -> Iterator[tuple[int, Path, Path]]:
    """(TLS port forwarding to the session Redis, server cert, an unrelated cert)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make test certificates")
    workdir = Path(tempfile.mkdtemp(prefix="gw-tls-"))
    cert, key = self_signed_cert(workdir, "server")
    other, _ = self_signed_cert(workdir, "other")
    redis_port = int(redis_url.rsplit(":", 1)[1])
    port = free_port()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Future[None] | None = None

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    writers: set[asyncio.StreamWriter] = set()
    handlers: set[asyncio.Task[object]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        redis_r, redis_w = await asyncio.open_connection("127.0.0.1", redis_port)
        writers.update((client_w, redis_w))
        await asyncio.gather(pipe(client_r, redis_w), pipe(redis_r, client_w))

    async def serve() -> None:
        nonlocal stop
        stop = loop.create_future()
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
        started.set()
        await stop
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()

    def run() -> None:
        loop.run_until_complete(serve())
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield port, cert, other
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        shutil.rmtree(workdir, ignore_errors=True)


def _roundtrip(cfg: RedisConfig) -> bytes | None:
    async def main() -> bytes | None:
        client = RedisClient(cfg)
        try:
            await client.start()
            await client.execute([b"SET", b"tls:key", b"over tls"])
            reply = await client.execute([b"GET", b"tls:key"])
            assert reply is None or isinstance(reply, bytes)
            return reply
        finally:
            await client.close()

    return asyncio.run(main())


def test_rediss_with_ca_file(tls_endpoint: tuple[int, Path, Path]) -> None:
    port, cert, _ = tls_endpoint
    cfg = RedisConfig(url=f"rediss://127.0.0.1:{port}", tls={"ca_file": str(cert)})
    assert _roundtrip(cfg) == b"over tls"


def test_rediss_refuses_an_unknown_certificate(tls_endpoint: tuple[int, Path, Path]) -> None:
    port, _, other = tls_endpoint
    cfg = RedisConfig(url=f"rediss://127.0.0.1:{port}", tls={"ca_file": str(other)}, max_retries=0)
    with pytest.raises(RedisUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        _roundtrip(cfg)


def test_rediss_without_verification(tls_endpoint: tuple[int, Path, Path]) -> None:
    port, _, _ = tls_endpoint
    cfg = RedisConfig(url=f"rediss://127.0.0.1:{port}", tls={"verify": False})
    assert _roundtrip(cfg) == b"over tls"


def test_missing_ca_file_is_a_clear_start_error() -> None:
    cfg = RedisConfig(
        url="rediss://127.0.0.1:1", tls={"ca_file": "/nonexistent/ca.pem"}, max_retries=0
    )
    with pytest.raises(RedisUnavailable, match=r"redis\.tls: .*No such file"):
        _roundtrip(cfg)

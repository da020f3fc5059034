"""The worker's Redis layer (gateway_worker.redis) against real Redis servers:
unix socket + ACL user + password + db, retries, timeouts, dedicated connections."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest
import redis

from gateway_worker.config import RedisConfig
from gateway_worker.errors import RedisUnavailable
from gateway_worker.redis import RedisClient
from gateway_worker.redis.values import NIL_ARRAY, ReplyError, Status
from supervisor.embedded_redis import EmbeddedRedis, find_server_binary
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-password-for-tests"


@pytest.fixture(scope="module")
def unix_redis() -> Iterator[str]:
    """A Redis on a unix socket only, with a password and an ACL user ``gw``."""
    workdir = tempfile.mkdtemp(prefix="gw-unix-redis-")
    sock = os.path.join(workdir, "redis.sock")
    proc = subprocess.Popen(
        [
            find_server_binary(),
            "--port",
            "0",
            "--unixsocket",
            sock,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--requirepass",
            PASSWORD,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: os.path.exists(sock), what="redis unix socket")
        admin = redis.Redis(unix_socket_path=sock, password=PASSWORD)
        wait_until(admin.ping, what="redis PING")
        admin.acl_setuser(
            "gw",
            enabled=True,
            passwords=[f"+{PASSWORD}"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        admin.close()
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)


def test_unix_socket_acl_user_password_and_db(unix_redis: str) -> None:
    async def main() -> None:
        client = RedisClient(
            RedisConfig(
                url=f"unix://{unix_redis}",
                username="gw",
                default_password=PASSWORD,
                db=2,
            )
        )
        await client.start()
        try:
            assert await client.execute([b"SET", b"where", b"db2"]) == b"OK"
            assert isinstance(await client.execute([b"SET", b"x", b"1"]), Status)
            assert await client.execute([b"GET", b"where"], db=5) is None
            assert await client.execute([b"ACL", b"WHOAMI"]) == b"gw"
            assert await client.ping()
        finally:
            await client.close()

    asyncio.run(main())
    side = redis.Redis(unix_socket_path=unix_redis, password=PASSWORD, db=2)
    assert side.get("where") == b"db2"
    side.close()


def test_wrong_password_names_the_problem_without_the_secret(unix_redis: str) -> None:
    async def main() -> None:
        client = RedisClient(
            RedisConfig(url=f"unix://{unix_redis}", default_password="wrong-password-xyz")
        )
        with pytest.raises(RedisUnavailable, match="refused AUTH: WRONGPASS") as info:
            await client.start()
        assert "wrong-password-xyz" not in str(info.value)
        await client.close()

    asyncio.run(main())


def test_reads_are_retried_writes_are_not(redis_url: str, clean_redis: redis.Redis) -> None:
    async def main() -> None:
        client = RedisClient(RedisConfig(url=redis_url, max_retries=2, retry_delay_ms=10))
        await client.start()
        try:
            await client.execute([b"SET", b"n", b"1"])
            # Redis drops every client connection but the test's own.
            clean_redis.client_kill_filter(_type="normal", skipme=True)
            assert await client.execute([b"GET", b"n"]) == b"1"  # retried transparently
            clean_redis.client_kill_filter(_type="normal", skipme=True)
            with pytest.raises(RedisUnavailable, match="lost"):
                await client.execute([b"INCR", b"n"])  # may have run: not retried
            assert await client.execute([b"GET", b"n"]) in (b"1", b"2")
        finally:
            await client.close()

    asyncio.run(main())


def test_blocking_commands_use_dedicated_connections(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    async def main() -> None:
        client = RedisClient(RedisConfig(url=redis_url, pool_max_size=1, pool_timeout_seconds=0.3))
        await client.start()
        try:
            blpop = asyncio.create_task(client.execute([b"BLPOP", b"q", b"2"]))
            await asyncio.sleep(0.05)  # let the BLPOP reach Redis (not a synchronisation)
            started = time.monotonic()
            assert await client.execute([b"PING"]) == b"PONG"
            assert time.monotonic() - started < 0.5
            # The only dedicated connection is busy: the next blocking command waits
            # pool_timeout_seconds, then fails clearly.
            with pytest.raises(RedisUnavailable, match="no dedicated Redis connection free"):
                await client.execute([b"BRPOP", b"other", b"1"])
            await client.execute([b"RPUSH", b"q", b"item"])
            assert await blpop == [b"q", b"item"]
            # The connection went back to the pool and is reused.
            # A timed-out BLPOP answers a nil array, kept apart from a nil bulk.
            assert await client.execute([b"BLPOP", b"q", b"0.01"]) is NIL_ARRAY
        finally:
            await client.close()

    asyncio.run(main())


def test_transaction_and_pipeline_replies(redis_url: str, clean_redis: redis.Redis) -> None:
    async def main() -> None:
        client = RedisClient(RedisConfig(url=redis_url))
        await client.start()
        try:
            replies = await client.transaction([[b"SET", b"t", b"1"], [b"INCR", b"t"]])
            assert replies == [b"OK", 2]
            assert isinstance(replies, list) and isinstance(replies[0], Status)
            discarded = await client.transaction([[b"SET", b"t"]])
            assert isinstance(discarded, ReplyError) and discarded.startswith("EXECABORT")
            out = await client.pipeline([[b"GET", b"t"], [b"SELECT", b"1"], [b"LPUSH", b"t", b"x"]])
            assert out[0] == b"2"
            assert isinstance(out[1], ReplyError) and "not allowed" in out[1]
            assert isinstance(out[2], ReplyError) and out[2].startswith("WRONGTYPE")
        finally:
            await client.close()

    asyncio.run(main())


def test_command_timeout_fails_fast_and_connection_recovers() -> None:
    server = EmbeddedRedis()
    server.start()
    assert server.proc is not None
    pid = server.proc.pid

    async def main() -> None:
        client = RedisClient(
            RedisConfig(url=server.url, command_timeout_seconds=0.3, max_retries=0)
        )
        await client.start()
        try:
            os.kill(pid, signal.SIGSTOP)  # Redis stalls: the connection stays open
            try:
                started = time.monotonic()
                with pytest.raises(RedisUnavailable, match=r"did not reply within 0\.3s"):
                    await client.execute([b"GET", b"x"])
                assert time.monotonic() - started < 1.0
                assert not await client.ping()
            finally:
                os.kill(pid, signal.SIGCONT)
            # The late replies are skipped: the FIFO stays aligned.
            assert await client.execute([b"ECHO", b"after"]) == b"after"
            assert await client.execute([b"PING"]) == b"PONG"
        finally:
            await client.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_refresh_replaces_the_shared_connection_without_errors(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    async def main() -> None:
        client = RedisClient(RedisConfig(url=redis_url, refresh_interval_seconds=0.2))
        await client.start()
        try:
            first = client._mux[0]
            await client.execute([b"SET", b"r", b"1"])
            replies: list[object] = []
            deadline = asyncio.get_running_loop().time() + 10
            # Keep commands in flight until the connection was replaced and the old
            # one closed; every one of them must succeed.
            while client._mux[0] is first or first.is_open:
                batch = [client.execute([b"GET", b"r"]) for _ in range(20)]
                replies.extend(await asyncio.gather(*batch))
                assert asyncio.get_running_loop().time() < deadline, "no refresh happened"
            assert set(replies) == {b"1"}
            assert await client.execute([b"INCR", b"r"]) == 2
        finally:
            await client.close()

    asyncio.run(main())

"""Rate limiting against a real Redis, through the worker's real Redis executor.

Two ``RateLimiter``s with their own ``RedisClient`` (two connections) stand for two
workers, or two gateway replicas: together they must respect one limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
import redis

from gateway_worker.access.rate_limit import GCRA_SCRIPT, KEY_PREFIX, RateDecision, RateLimiter
from gateway_worker.config import Config
from gateway_worker.exchange import Principal
from gateway_worker.redis import RedisClient
from tests.helpers import free_port

pytestmark = pytest.mark.integration
T = TypeVar("T")


def config(url: str, **limits: Any) -> Config:
    return Config.model_validate(
        {
            "redis": {"url": url, "max_retries": 0, "connection_timeout_seconds": 1},
            "auth": {"rate_limiting": {"enabled": True, **limits}},
        }
    )


def with_limiters(
    url: str, count: int, body: Callable[[list[RateLimiter]], Awaitable[T]], **limits: Any
) -> T:
    async def main() -> T:
        cfg = config(url, **limits)
        clients = [RedisClient(cfg.redis) for _ in range(count)]
        try:
            for client in clients:
                await client.start()
            return await body([RateLimiter(cfg, client) for client in clients])
        finally:
            for client in clients:
                await client.close()

    return asyncio.run(main())


def test_two_workers_share_one_limit(redis_url: str, clean_redis: redis.Redis) -> None:
    alice = Principal("alice", rate_key="key:alice")

    async def body(limiters: list[RateLimiter]) -> list[RateDecision]:
        # 30 concurrent requests spread over both "workers".
        return list(await asyncio.gather(*(limiters[i % 2].check(alice) for i in range(30))))

    decisions = with_limiters(redis_url, 2, body, requests_per_minute=6, burst_size=5)
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 5
    assert sorted(d.remaining for d in allowed) == [0, 1, 2, 3, 4]
    refused = [d for d in decisions if not d.allowed]
    assert all(not d.unavailable for d in refused)
    # 6/min: the next slot is 10 s after the first request.
    assert all(
        d.retry_after_seconds is not None and 9.0 < d.retry_after_seconds <= 10.0 for d in refused
    )
    assert clean_redis.pttl(f"{KEY_PREFIX}key:alice") > 0  # state expires by itself


def test_principals_are_limited_separately(redis_url: str, clean_redis: redis.Redis) -> None:
    async def body(limiters: list[RateLimiter]) -> tuple[bool, bool, bool]:
        a, b = Principal("a", rate_key="key:a"), Principal("b", rate_key="ip:10.0.0.1")
        first = (await limiters[0].check(a)).allowed
        second = (await limiters[1].check(a)).allowed
        other = (await limiters[0].check(b)).allowed
        return first, second, other

    assert with_limiters(redis_url, 2, body, requests_per_minute=1, burst_size=1) == (
        True,
        False,
        True,
    )


def test_rate_refills(redis_url: str, clean_redis: redis.Redis) -> None:
    async def body(limiters: list[RateLimiter]) -> float:
        p = Principal("p", rate_key="key:p")
        assert (await limiters[0].check(p)).allowed
        refused = await limiters[0].check(p)
        assert not refused.allowed and refused.retry_after_seconds is not None
        started = time.monotonic()
        deadline = started + 5
        while time.monotonic() < deadline:  # poll to a deadline for the refill
            if (await limiters[0].check(p)).allowed:
                return time.monotonic() - started
            await asyncio.sleep(0.01)
        raise AssertionError("never refilled")

    # 600/min = one every 100 ms
    waited = with_limiters(redis_url, 1, body, requests_per_minute=600, burst_size=1)
    assert waited < 1.0


def test_script_reloaded_after_script_flush(redis_url: str, clean_redis: redis.Redis) -> None:
    async def body(limiters: list[RateLimiter]) -> list[bool]:
        p = Principal("p", rate_key="key:flush")
        results = [(await limiters[0].check(p)).allowed]
        clean_redis.script_flush()  # next EVALSHA answers NOSCRIPT → EVAL fallback
        results.append((await limiters[0].check(p)).allowed)
        results.append((await limiters[0].check(p)).allowed)
        return results

    assert with_limiters(redis_url, 1, body, requests_per_minute=60, burst_size=2) == [
        True,
        True,
        False,
    ]


@pytest.mark.parametrize(("mode", "allowed"), [("open", True), ("closed", False)])
def test_failure_mode_when_redis_is_unreachable(mode: str, allowed: bool) -> None:
    cfg = config(f"redis://127.0.0.1:{free_port()}", failure_mode=mode)

    async def main() -> RateDecision:
        client = RedisClient(cfg.redis)  # never started: nothing listens there
        try:
            return await RateLimiter(cfg, client).check(Principal("p", rate_key="key:p"))
        finally:
            await client.close()

    decision = asyncio.run(main())
    assert decision.unavailable
    assert decision.allowed is allowed


def test_disabled_makes_no_redis_call() -> None:
    cfg = Config.model_validate({"redis": {"url": f"redis://127.0.0.1:{free_port()}"}})

    async def main() -> RateDecision:
        client = RedisClient(cfg.redis)
        try:
            return await RateLimiter(cfg, client).check(Principal("p"))
        finally:
            await client.close()

    decision = asyncio.run(main())
    assert decision.allowed and not decision.unavailable


def test_limit_holds_across_the_workers_of_a_running_gateway(
    gateway_factory: Callable[..., Any], clean_redis: redis.Redis
) -> None:
    """The real CLI with 2 worker processes: one limit for the client IP, not one each."""
    gw = gateway_factory(
        {
            "server": {"workers": 2},
            "auth": {"rate_limiting": {"enabled": True, "requests_per_minute": 6, "burst_size": 4}},
        }
    )
    assert len(gw.worker_pids()) == 2

    def one(_: int) -> int:
        status, _body = gw.get("/webdis/PING")
        return int(status)

    # Concurrent requests on new connections: both workers accept some of them.
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(16)))
    assert statuses.count(200) == 4
    assert statuses.count(429) == 12
    assert clean_redis.exists(f"{KEY_PREFIX}ip:127.0.0.1") == 1


def test_leases_cut_redis_calls_and_never_serve_beyond_the_limit(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    """burst_size 64: each worker counts up to 4 requests in Redis at once (the
    automatic lease, 64 // 16, topped up when half of it is left) and allows them
    locally; every request served was counted, so never more than the burst is served,
    and at most one lease per worker is left unspent, with at most half the Redis calls."""
    alice = Principal("alice", rate_key="key:alice")
    calls: list[int] = []

    def evals() -> int:
        stats = clean_redis.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))

    async def body(limiters: list[RateLimiter]) -> list[RateDecision]:
        clean_redis.script_load(GCRA_SCRIPT)  # no NOSCRIPT round first
        clean_redis.config_resetstat()
        served = [await limiters[i % 2].check(alice) for i in range(64)]  # two workers
        calls.append(evals())
        return served + [await limiters[i % 2].check(alice) for i in range(20)]

    decisions = with_limiters(redis_url, 2, body, requests_per_minute=1, burst_size=64)
    allowed = [d.allowed for d in decisions]
    assert 64 - 2 * 4 <= allowed.count(True) <= 64
    assert allowed[: 64 - 2 * 4] == [True] * (64 - 2 * 4)
    assert allowed[-10:] == [False] * 10  # what was left of the leases is spent by then
    assert calls[0] <= 64 // 2  # at least 2 requests per Redis call
    assert decisions[-1].retry_after_seconds is not None


def test_lease_size_1_asks_redis_for_every_request(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    alice = Principal("alice", rate_key="key:alice")

    async def body(limiters: list[RateLimiter]) -> int:
        clean_redis.script_load(GCRA_SCRIPT)
        clean_redis.config_resetstat()
        for _ in range(10):
            assert (await limiters[0].check(alice)).allowed
        return int(clean_redis.info("commandstats")["cmdstat_evalsha"]["calls"])

    assert with_limiters(redis_url, 1, body, burst_size=64, lease_size=1) == 10


def test_concurrent_requests_wait_for_the_lease_under_way(
    redis_url: str, clean_redis: redis.Redis
) -> None:
    """50 requests at once on one worker: one Redis call per lease (or top-up), not one
    each."""
    alice = Principal("alice", rate_key="key:alice")

    async def body(limiters: list[RateLimiter]) -> tuple[list[RateDecision], int]:
        clean_redis.script_load(GCRA_SCRIPT)
        clean_redis.config_resetstat()
        decisions = await asyncio.gather(*(limiters[0].check(alice) for _ in range(50)))
        return list(decisions), int(clean_redis.info("commandstats")["cmdstat_evalsha"]["calls"])

    decisions, calls = with_limiters(redis_url, 1, body, requests_per_minute=1, burst_size=64)
    assert all(d.allowed for d in decisions)
    assert 13 <= calls < 50 // 2  # a lease of 4, or top-ups of 2 when half is left

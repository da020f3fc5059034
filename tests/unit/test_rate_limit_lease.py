"""A rate-limit lease is spent locally only within LEASE_SECONDS, and the lease size
follows the config (a fake executor stands for Redis; the script runs in
tests/integration/test_ratelimit.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from gateway_worker.access.rate_limit import LEASE_SECONDS, RateLimiter
from gateway_worker.config import Config
from gateway_worker.exchange import Principal
from gateway_worker.redis.values import RespValue


class Grants:
    """Answers every script call with a lease of ``granted`` requests."""

    def __init__(self, granted: int) -> None:
        self.granted = granted
        self.calls: list[Sequence[bytes]] = []

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        self.calls.append(args)
        return [self.granted, 0, 10]


def limiter(redis: Grants, **limits: object) -> RateLimiter:
    config = Config.model_validate({"auth": {"rate_limiting": {"enabled": True, **limits}}})
    return RateLimiter(config, redis)


def test_a_lease_is_spent_locally_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])  # the module's clock
    redis = Grants(granted=4)
    rl = limiter(redis, burst_size=64)
    alice = Principal("alice", rate_key="k")

    async def checks(n: int) -> list[int]:
        return [(await rl.check(alice)).remaining for _ in range(n)]

    assert asyncio.run(checks(4)) == [13, 12, 11, 10]  # 10 left in Redis + the lease
    assert len(redis.calls) == 1 and redis.calls[0][-1] == b"4"  # asked for 64 // 16
    asyncio.run(checks(1))
    assert len(redis.calls) == 2  # the lease used up: Redis again
    now[0] += LEASE_SECONDS  # the rest of that lease expires unspent
    asyncio.run(checks(1))
    assert len(redis.calls) == 3


@pytest.mark.parametrize(
    ("limits", "lease"),
    [
        ({"burst_size": 100}, 6),
        ({"burst_size": 31}, 1),
        ({"burst_size": 5000}, 64),
        ({"burst_size": 100, "lease_size": 1}, 1),
        ({"burst_size": 3, "lease_size": 9}, 9),
    ],
)
def test_the_lease_size_in_effect(limits: dict[str, int], lease: int) -> None:
    config = Config.model_validate({"auth": {"rate_limiting": {"enabled": True, **limits}}})
    assert config.auth.rate_limiting.lease == lease


class HangsFirst(Grants):
    """The first call never answers (its request is cancelled); the next ones grant."""

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        if not self.calls:
            self.calls.append(args)
            await asyncio.Event().wait()
        return await super().execute_own(args)


def test_a_waiter_asks_in_place_of_a_cancelled_asker() -> None:
    """Its answer was never given: the waiter is not handed a made-up decision (with
    failure_mode closed it was a refusal that nobody counted)."""
    redis = HangsFirst(granted=4)
    rl = limiter(redis, burst_size=64, failure_mode="closed")
    alice = Principal("alice", rate_key="k")

    async def scenario() -> bool:
        asker = asyncio.create_task(rl.check(alice))
        waiter = asyncio.create_task(rl.check(alice))
        while not redis.calls:
            await asyncio.sleep(0)
        await asyncio.sleep(0)  # the waiter is waiting on the asker's call
        asker.cancel()
        decision = await waiter
        return decision.allowed and not decision.unavailable

    assert asyncio.run(scenario())
    assert len(redis.calls) == 2  # the waiter asked Redis itself


class Answers(Grants):
    """Grants what is asked for (up to ``granted``), ``remaining`` left; a call takes one
    turn of the loop, as a Redis round trip does."""

    def __init__(self, granted: int, remaining: int) -> None:
        super().__init__(granted)
        self.remaining = remaining

    async def execute_own(self, args: Sequence[bytes]) -> RespValue:
        self.calls.append(args)
        await asyncio.sleep(0)
        return [min(self.granted, int(args[-1])), 0, self.remaining]


def test_a_lease_is_topped_up_before_it_runs_out_far_from_the_limit() -> None:
    redis = Answers(granted=64, remaining=900)
    rl = limiter(redis, burst_size=1000)  # lease 62 (1000 // 16), topped up at 31 left
    alice = Principal("alice", rate_key="k")

    async def scenario() -> list[bool]:
        first = [(await rl.check(alice)).allowed for _ in range(31)]  # 31 left of 62
        assert [c[-1] for c in redis.calls] == [b"62"]
        # one more: 30 left, a top-up of 32 is asked in the background; the requests
        # spending the lease meanwhile do not wait for it
        spent = [(await asyncio.wait_for(rl.check(alice), 0.001)).allowed for _ in range(5)]
        while len(redis.calls) < 2:
            await asyncio.sleep(0)
        assert redis.calls[1][-1] == b"31"  # 62 - 31 left when it was asked
        return first + spent

    assert all(asyncio.run(scenario()))


def test_near_the_limit_a_lease_is_asked_for_only_when_spent() -> None:
    redis = Answers(granted=64, remaining=400)  # less than half of the burst left
    rl = limiter(redis, burst_size=1000)
    alice = Principal("alice", rate_key="k")

    async def scenario() -> None:
        for _ in range(62):
            assert (await rl.check(alice)).allowed
            await asyncio.sleep(0)
        assert len(redis.calls) == 1
        assert (await rl.check(alice)).allowed
        assert len(redis.calls) == 2

    asyncio.run(scenario())


def test_a_top_up_that_never_ran_leaves_no_call_to_wait_for() -> None:
    """Its loop ended before it started (the worker stopping): the next request asks
    Redis itself instead of waiting forever for it."""
    redis = Answers(granted=4, remaining=900)
    rl = limiter(redis, burst_size=64)  # lease 4, topped up at 2 left
    alice = Principal("alice", rate_key="k")

    async def spend(n: int) -> None:
        for _ in range(n):
            assert (await asyncio.wait_for(rl.check(alice), 2)).allowed

    asyncio.run(spend(3))  # the top-up was started, then its loop closed
    calls = len(redis.calls)
    asyncio.run(spend(3))
    assert len(redis.calls) > calls

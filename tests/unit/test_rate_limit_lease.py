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

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        self.calls.append(args)
        return [self.granted, 0, 10]


def limiter(redis: Grants, **limits: object) -> RateLimiter:
    config = Config.model_validate({"auth": {"rate_limiting": {"enabled": True, **limits}}})
    return RateLimiter(config, redis)  # type: ignore[arg-type]  # the fake has what check uses


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

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        if not self.calls:
            self.calls.append(args)
            await asyncio.Event().wait()
        return await super().execute(args, db)


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

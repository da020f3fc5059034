"""Rate limiting shared by every worker and every gateway replica (GCRA in Redis).

Interface used by the app::

    limiter = RateLimiter(config, redis_executor)
    decision = await limiter.check(principal)
    # not decision.allowed and decision.unavailable → 503 (failure_mode "closed")
    # not decision.allowed                          → 429, Retry-After: ceil(retry_after_seconds)

Algorithm: the Generic Cell Rate Algorithm. Each ``principal.rate_key`` has one Redis
key ``rgw:rl:<rate_key>`` holding its *theoretical arrival time* (TAT, microseconds).
A request is allowed when ``TAT - now <= burst * interval`` once the request is
counted; the key then holds ``max(TAT, now) + interval``. ``interval`` is
``60 s / requests_per_minute`` and ``burst`` is ``burst_size``: up to ``burst_size``
requests at once, refilled at ``requests_per_minute``. (``window_size_seconds`` is not
used: GCRA has no windows, hence no burst at window edges.)

All of it is one Lua script, run atomically with one round trip (``EVALSHA``, then
``EVAL`` once on ``NOSCRIPT``). The script grants up to ``auth.rate_limiting.lease``
requests at once (as many as fit, at least one or a refusal): the worker spends the
rest of such a lease locally, within ``LEASE_SECONDS``, without asking Redis again.
Every request served was counted in Redis first, so the sustained rate never exceeds
the limit; a lease spent later than counted can add up to one lease per worker to a
burst, and a lease left unspent is lost (the credential is refused a little early,
never late). ``lease_size = 1`` is exact: one call per request. While Redis has more
than half the burst left, a lease half spent is topped up to ``lease_size`` in the
background (the requests spending it do not wait; a worker still holds at most one
lease). The script runs through ``RedisBackend.execute_own``: on the shared connection,
batched with the requests' commands, without the script guard meant for clients'
scripts (this one is short and bounded).

The clock is Redis's ``TIME`` read inside the script, so workers and replicas with
skewed clocks still agree. The key expires when its TAT
has passed, so idle principals cost nothing.

When Redis cannot be asked (connection error, or an error reply from the script) the
decision follows ``auth.rate_limiting.failure_mode``: ``open`` allows the request,
``closed`` refuses it; both set ``unavailable=True`` (the app answers 503 when closed).
Disabled → always allowed, without a Redis call.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import structlog

from gateway_worker.config import Config
from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import Principal
from gateway_worker.redis.values import ReplyError, RespValue

log = structlog.get_logger(__name__)

KEY_PREFIX = "rgw:rl:"

#: How long a worker may spend the rest of a lease (see the module docstring).
LEASE_SECONDS = 1.0
#: Credentials with a lease kept at most (beyond: all forgotten, leases re-taken).
MAX_LEASES = 10_000

# KEYS[1] = state key; ARGV[1] = emission interval (µs); ARGV[2] = burst size;
# ARGV[3] = most requests wanted at once (the lease).
# Returns {granted (0: refused), retry_after_us, remaining}.
GCRA_SCRIPT = b"""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local tolerance = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local fit = math.floor((tolerance + now - tat) / interval)
if fit < 1 then
  return {0, math.ceil(tat + interval - tolerance - now), 0}
end
local granted = math.min(wanted, fit)
local new_tat = tat + granted * interval
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
return {granted, 0, math.floor((tolerance - (new_tat - now)) / interval)}
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT).hexdigest().encode()  # noqa: S324 - Redis names scripts by SHA-1


class RateDecision(NamedTuple):
    """The outcome of one rate-limit check (a NamedTuple: one is made per request).

    ``limit`` is ``burst_size`` (the most requests allowed at once) and ``remaining`` how
    many more could be made right now; ``retry_after_seconds`` is set when refused by the
    limit; ``unavailable`` means Redis could not be asked (see ``failure_mode``).
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: float | None = None
    unavailable: bool = False


class _Lease:
    """What a worker holds of a key's allowance: ``left`` requests to spend locally
    until ``until`` (monotonic); ``remaining``: what Redis had left after granting it."""

    __slots__ = ("left", "remaining", "until")

    def __init__(self, left: int, until: float, remaining: int) -> None:
        self.left = left
        self.until = until
        self.remaining = remaining


class _Flight:
    """The Redis call under way for one key: who waits for it, and its answer (None:
    none came, its request was cancelled; a waiter then asks in its place)."""

    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[asyncio.Future[RateDecision | None]] = []

    def wait(self) -> asyncio.Future[RateDecision | None]:
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def land(self, answer: RateDecision | None) -> None:
        for waiter in self.waiters:
            if not waiter.done():  # (a cancelled waiter's future is done)
                waiter.set_result(answer)


class OwnCommands(Protocol):
    """What the limiter needs of Redis (``RedisBackend.execute_own``: its script is
    short and bounded, so it runs on the shared connection, without the script guard's
    dedicated connection and deadline)."""

    async def execute_own(self, args: Sequence[bytes]) -> RespValue: ...


class RateLimiter:
    """Per-principal GCRA limiter whose state lives in Redis."""

    def __init__(self, config: Config, redis: OwnCommands) -> None:
        settings = config.auth.rate_limiting
        self.enabled = settings.enabled
        self.limit = settings.burst_size
        self.fail_open = settings.failure_mode == "open"
        self._redis = redis
        self._interval = str(60_000_000 / settings.requests_per_minute).encode()
        self._burst = str(settings.burst_size).encode()
        self._lease = settings.lease
        #: A lease is topped up in the background once this few of it are left, while
        #: Redis has this many more to give (half the burst): near the limit, the last
        #: leases are asked for only when spent, so that few are left unspent.
        self._refill_at = self._lease // 2
        self._far_from_limit = max(self._lease, self.limit // 2)
        self._open = RateDecision(allowed=True, limit=self.limit, remaining=self.limit)
        #: rate key → its lease (with leases: lease_size > 1)
        self._leases: dict[str, _Lease] = {}
        #: rate key → the Redis call under way for it (one at a time per key)
        self._flights: dict[str, _Flight] = {}
        self._refills: set[asyncio.Task[None]] = set()

    async def check(self, principal: Principal) -> RateDecision:
        """Count one request for ``principal`` and say whether it may proceed."""
        if not self.enabled:
            return self._open
        name = principal.rate_key or principal.name
        if self._lease == 1:
            return await self._exact(name)  # every request asks Redis
        while True:
            lease = self._leases.get(name)
            if lease is not None:
                if lease.left > 0 and time.monotonic() < lease.until:
                    lease.left -= 1
                    if (
                        lease.left <= self._refill_at
                        and lease.remaining >= self._far_from_limit
                        and name not in self._flights
                    ):
                        self._refill(name, lease.left)
                    return RateDecision(True, self.limit, lease.remaining + lease.left)
                del self._leases[name]
            flight = self._flights.get(name)
            if flight is None:
                break
            # One call for a key at a time: wait for its answer, then spend from the
            # lease it brought; a refusal (or Redis unavailable) holds for those who
            # waited.
            answer = await flight.wait()
            if answer is not None and (not answer.allowed or answer.unavailable):
                return answer
        return await self._ask(name)

    async def _ask(self, name: str) -> RateDecision:
        """Ask Redis for a lease (this request is its first), the others waiting."""
        flight = self._flights[name] = _Flight()
        decision: RateDecision | None = None
        try:
            decision = self._decide(name, await self._gcra(name, self._lease), first=True)
        finally:
            self._landed(name, flight, decision)
        return decision

    async def _exact(self, name: str) -> RateDecision:
        """``lease_size = 1``: this request alone, counted in Redis."""
        return self._decide(name, await self._gcra(name, 1), first=True)

    def _refill(self, name: str, left: int) -> None:
        """Top the lease up to ``lease_size`` before it runs out: the requests spending
        it do not wait; those that find it empty wait for this call."""
        flight = self._flights[name] = _Flight()
        answers: list[RateDecision | None] = [None]

        async def refill() -> None:
            grant = await self._gcra(name, self._lease - left)
            answers[0] = self._decide(name, grant, first=False)

        def landed(task: asyncio.Task[None]) -> None:
            # (also when cancelled before it ran: the flight must not outlive it)
            self._refills.discard(task)
            self._landed(name, flight, answers[0])

        task = asyncio.get_running_loop().create_task(refill())
        self._refills.add(task)
        task.add_done_callback(landed)

    def _landed(self, name: str, flight: _Flight, answer: RateDecision | None) -> None:
        """``flight``'s call is over: no longer under way for ``name``; its waiters get
        ``answer`` (None: none came, one of them asks)."""
        if self._flights.get(name) is flight:
            del self._flights[name]
        flight.land(answer)

    def _decide(self, name: str, grant: tuple[int, int, int] | None, first: bool) -> RateDecision:
        """What a script call's answer means; its grant is kept as the key's lease
        (``first``: less the one of the request that asked; a top-up's waiters, allowed,
        spend from the lease)."""
        if grant is None:
            return self._unavailable()
        granted, retry_us, remaining = grant
        if not granted:
            retry = max(retry_us, 1) / 1_000_000
            return RateDecision(False, self.limit, 0, retry_after_seconds=retry)
        kept = granted - 1 if first else granted
        if kept:
            self._keep(name, kept, remaining)
        return RateDecision(True, self.limit, remaining + kept)

    def _keep(self, name: str, granted: int, remaining: int) -> None:
        """Add ``granted`` requests to the key's lease (a new one, or the one still
        valid, whose end moves to LEASE_SECONDS from now)."""
        now = time.monotonic()
        lease = self._leases.get(name)
        if lease is not None and lease.left > 0 and now < lease.until:
            lease.left += granted
            lease.until = now + LEASE_SECONDS
            lease.remaining = remaining
            return
        if len(self._leases) >= MAX_LEASES:
            self._leases.clear()
        self._leases[name] = _Lease(granted, now + LEASE_SECONDS, remaining)

    async def _gcra(self, name: str, wanted: int) -> tuple[int, int, int] | None:
        """One script call: (granted, retry after µs, remaining), None when Redis could
        not be asked or answered something else (logged)."""
        key = (KEY_PREFIX + name).encode()
        tail = [b"1", key, self._interval, self._burst, str(wanted).encode()]
        try:
            reply = await self._redis.execute_own([b"EVALSHA", GCRA_SHA, *tail])
            if isinstance(reply, ReplyError) and reply.startswith("NOSCRIPT"):
                reply = await self._redis.execute_own([b"EVAL", GCRA_SCRIPT, *tail])
        except RedisUnavailable as exc:
            log.warning("ratelimit.redis_unavailable", error=str(exc), fail_open=self.fail_open)
            return None
        if (
            not isinstance(reply, list)
            or len(reply) != 3
            or not all(isinstance(v, int) for v in reply)
        ):
            log.warning(
                "ratelimit.bad_reply",
                error=str(reply) if isinstance(reply, ReplyError) else type(reply).__name__,
                fail_open=self.fail_open,
            )
            return None
        granted, retry_us, remaining = (int(v) for v in reply if isinstance(v, int))
        return granted, retry_us, max(0, remaining)

    def _unavailable(self) -> RateDecision:
        return RateDecision(allowed=self.fail_open, limit=self.limit, remaining=0, unavailable=True)

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
never late). ``lease_size = 1`` is exact: one call per request.

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
from dataclasses import dataclass

import structlog

from gateway_worker.config import Config
from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import Principal
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.values import ReplyError

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


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one rate-limit check.

    ``limit`` is ``burst_size`` (the most requests allowed at once) and ``remaining`` how
    many more could be made right now; ``retry_after_seconds`` is set when refused by the
    limit; ``unavailable`` means Redis could not be asked (see ``failure_mode``).
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: float | None = None
    unavailable: bool = False


class RateLimiter:
    """Per-principal GCRA limiter whose state lives in Redis."""

    def __init__(self, config: Config, redis: RedisExecutor) -> None:
        settings = config.auth.rate_limiting
        self.enabled = settings.enabled
        self.limit = settings.burst_size
        self.fail_open = settings.failure_mode == "open"
        self._redis = redis
        self._interval = str(60_000_000 / settings.requests_per_minute).encode()
        self._burst = str(settings.burst_size).encode()
        self._lease = settings.lease
        self._wanted = str(self._lease).encode()
        #: key → (requests left of its lease, when the lease ends, remaining then)
        self._leases: dict[bytes, tuple[int, float, int]] = {}
        #: key → the answer of the Redis call under way for it (None: it got none,
        #: its request was cancelled: a waiter asks in its place)
        self._asking: dict[bytes, asyncio.Future[RateDecision | None]] = {}

    async def check(self, principal: Principal) -> RateDecision:
        """Count one request for ``principal`` and say whether it may proceed."""
        if not self.enabled:
            return RateDecision(allowed=True, limit=self.limit, remaining=self.limit)
        key = (KEY_PREFIX + (principal.rate_key or principal.name)).encode()
        if self._lease == 1:
            return await self._ask_redis(key)  # exact: every request asks Redis
        while True:
            local = self._spend_lease(key)
            if local is not None:
                return local
            asking = self._asking.get(key)
            if asking is None:
                break
            # One call for a key at a time (with leases): wait for its answer, then
            # spend from the lease it brought; a refusal (or Redis unavailable) holds
            # for those who waited.
            answer = await asyncio.shield(asking)
            if answer is not None and (not answer.allowed or answer.unavailable):
                return answer
        asking = asyncio.get_running_loop().create_future()
        self._asking[key] = asking
        decision: RateDecision | None = None
        try:
            decision = await self._ask_redis(key)
        finally:
            del self._asking[key]
            asking.set_result(decision)
        return decision

    def _spend_lease(self, key: bytes) -> RateDecision | None:
        lease = self._leases.get(key)
        if lease is None:
            return None
        left, until, remaining = lease
        if left > 0 and time.monotonic() < until:
            self._leases[key] = (left - 1, until, remaining)
            return RateDecision(allowed=True, limit=self.limit, remaining=remaining + left - 1)
        del self._leases[key]
        return None

    async def _ask_redis(self, key: bytes) -> RateDecision:
        tail = [b"1", key, self._interval, self._burst, self._wanted]
        try:
            reply = await self._redis.execute([b"EVALSHA", GCRA_SHA, *tail])
            if isinstance(reply, ReplyError) and reply.startswith("NOSCRIPT"):
                reply = await self._redis.execute([b"EVAL", GCRA_SCRIPT, *tail])
        except RedisUnavailable as exc:
            log.warning("ratelimit.redis_unavailable", error=str(exc), fail_open=self.fail_open)
            return self._unavailable()
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
            return self._unavailable()
        granted, retry_us, remaining = (int(v) for v in reply if isinstance(v, int))
        if granted:
            remaining = max(0, remaining)
            if granted > 1:  # this request is one; the rest are spent locally
                if len(self._leases) >= MAX_LEASES:
                    self._leases.clear()
                until = time.monotonic() + LEASE_SECONDS
                self._leases[key] = (granted - 1, until, remaining)
            return RateDecision(allowed=True, limit=self.limit, remaining=remaining + granted - 1)
        return RateDecision(
            allowed=False,
            limit=self.limit,
            remaining=0,
            retry_after_seconds=max(retry_us, 1) / 1_000_000,
        )

    def _unavailable(self) -> RateDecision:
        return RateDecision(allowed=self.fail_open, limit=self.limit, remaining=0, unavailable=True)

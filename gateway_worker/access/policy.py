"""Command policy: which commands a principal may run, and on which keys.

Interface used by the app (``gateway_worker.app``)::

    policy = CommandPolicy(config)             # once per worker / per config generation
    guard = policy.guard_for(principal)        # once per request (cached per policy+prefix)
    reason = guard([b"SET", b"k", b"v"])       # None when allowed, else why it is refused

The caller answers 403 with the reason. The guard is purely about the principal and
the configuration; protocol-specific refusals (MULTI on a stateless HTTP request,
SUBSCRIBE outside a stream, ...) belong to the protocol handlers.

Rules, applied in this order (the first refusal wins):

1. ``policy.denied_commands`` (default ``config.DANGEROUS_COMMANDS``) are refused unless
   the principal's policy is ``all``.
2. ``features.raw_commands = false`` limits *everyone* to ``SAFE_COMMANDS`` plus
   ``policy.allowed_commands``.
3. The principal's policy: ``read_only`` → ``READ_ONLY_COMMANDS``; ``safe`` →
   ``SAFE_COMMANDS`` plus ``policy.allowed_commands``; ``all_but_dangerous`` → anything
   not denied by rule 1; ``all`` → anything. Under ``read_only`` and ``safe``,
   ``XREAD``/``XREADGROUP`` with ``BLOCK`` are refused (see ``SAFE_COMMANDS``).
4. Under every policy but ``all``, a SCAN-family ``COUNT`` is at most
   ``scan_count.MAX_SCAN_COUNT`` (a larger one blocks Redis for everyone, as ``KEYS``).
5. ``key_prefix`` confinement: every key argument must start with the prefix (located
   with ``gateway_worker.access.key_confinement``); a command whose keys cannot be
   located is refused, and so are scripts; the command must run in the gateway's own
   database (``redis.db``): a Webdis ``/DB/CMD`` naming another one is refused.
"""

from __future__ import annotations

from gateway_worker.access.key_confinement import check_key_prefix
from gateway_worker.access.scan_count import SCAN_COMMANDS, scan_count_refusal
from gateway_worker.config import Config
from gateway_worker.exchange import CommandGuard, PolicyName, Principal

READ_ONLY_COMMANDS: frozenset[str] = frozenset(
    {
        # strings
        "GET",
        "MGET",
        "GETRANGE",
        "SUBSTR",
        "STRLEN",
        "LCS",
        # generic key inspection
        "EXISTS",
        "TYPE",
        "TTL",
        "PTTL",
        "EXPIRETIME",
        "PEXPIRETIME",
        "TOUCH",
        "SCAN",
        # hashes
        "HGET",
        "HMGET",
        "HGETALL",
        "HKEYS",
        "HVALS",
        "HLEN",
        "HEXISTS",
        "HSTRLEN",
        "HRANDFIELD",
        "HSCAN",
        # lists
        "LRANGE",
        "LINDEX",
        "LLEN",
        "LPOS",
        # sets
        "SMEMBERS",
        "SISMEMBER",
        "SMISMEMBER",
        "SCARD",
        "SRANDMEMBER",
        "SINTER",
        "SUNION",
        "SDIFF",
        "SINTERCARD",
        "SSCAN",
        # sorted sets
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZRANGEBYLEX",
        "ZREVRANGE",
        "ZREVRANGEBYSCORE",
        "ZREVRANGEBYLEX",
        "ZSCORE",
        "ZMSCORE",
        "ZRANK",
        "ZREVRANK",
        "ZCARD",
        "ZCOUNT",
        "ZLEXCOUNT",
        "ZSCAN",
        "ZRANDMEMBER",
        "ZUNION",
        "ZINTER",
        "ZDIFF",
        "ZINTERCARD",
        # bitmaps, hyperloglog, geo
        "GETBIT",
        "BITCOUNT",
        "BITPOS",
        "BITFIELD_RO",
        "PFCOUNT",
        "GEOPOS",
        "GEODIST",
        "GEOHASH",
        "GEOSEARCH",
        "GEORADIUS_RO",
        "GEORADIUSBYMEMBER_RO",
        # streams (reading)
        "XRANGE",
        "XREVRANGE",
        "XLEN",
        "XREAD",
        # connection-neutral
        "PING",
        "ECHO",
        "TIME",
    }
)
"""Commands that never modify data.

Every entry is flagged ``readonly`` (or touches no key at all) in Redis's own command
table. Deliberately absent although Redis calls them read-only:

* ``KEYS`` (walks the whole keyspace in one blocking call; ``SCAN`` is the safe form),
  ``DBSIZE``/``RANDOMKEY``/``OBJECT``/``MEMORY``/``DUMP`` (server internals and whole
  serialized values, not needed by applications),
* ``EVAL_RO``/``EVALSHA_RO``/``FCALL_RO`` (scripts: unbounded CPU time on the server),
* ``SUBSCRIBE``/``PSUBSCRIBE`` and the blocking reads (each holds a dedicated Redis
  connection for as long as the client wants; see ``SAFE_COMMANDS``),
* ``XREAD`` is present, but its ``BLOCK`` option is refused under ``read_only``/``safe``.
"""

SAFE_COMMANDS: frozenset[str] = READ_ONLY_COMMANDS | frozenset(
    {
        # strings and counters
        "SET",
        "SETNX",
        "SETEX",
        "PSETEX",
        "GETSET",
        "GETDEL",
        "GETEX",
        "MSET",
        "MSETNX",
        "APPEND",
        "SETRANGE",
        "INCR",
        "INCRBY",
        "INCRBYFLOAT",
        "DECR",
        "DECRBY",
        # generic key writes and expiry
        "DEL",
        "UNLINK",
        "EXPIRE",
        "PEXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "PERSIST",
        "RENAME",
        "RENAMENX",
        "COPY",
        # hashes
        "HSET",
        "HSETNX",
        "HMSET",
        "HDEL",
        "HINCRBY",
        "HINCRBYFLOAT",
        # lists (non-blocking)
        "LPUSH",
        "RPUSH",
        "LPUSHX",
        "RPUSHX",
        "LPOP",
        "RPOP",
        "LSET",
        "LINSERT",
        "LREM",
        "LTRIM",
        "LMOVE",
        "RPOPLPUSH",
        "LMPOP",
        # sets
        "SADD",
        "SREM",
        "SPOP",
        "SMOVE",
        "SINTERSTORE",
        "SUNIONSTORE",
        "SDIFFSTORE",
        # sorted sets (non-blocking)
        "ZADD",
        "ZINCRBY",
        "ZREM",
        "ZREMRANGEBYSCORE",
        "ZREMRANGEBYRANK",
        "ZREMRANGEBYLEX",
        "ZPOPMIN",
        "ZPOPMAX",
        "ZMPOP",
        "ZUNIONSTORE",
        "ZINTERSTORE",
        "ZDIFFSTORE",
        "ZRANGESTORE",
        # bitmaps, hyperloglog, geo
        "SETBIT",
        "BITOP",
        "BITFIELD",
        "PFADD",
        "PFMERGE",
        "GEOADD",
        "GEOSEARCHSTORE",
        # streams (non-blocking)
        "XADD",
        "XDEL",
        "XTRIM",
        "XACK",
        "XREADGROUP",
        "XCLAIM",
        "XAUTOCLAIM",
        # pub/sub: publishing only
        "PUBLISH",
        # transactions (the Upstash /multi-exec endpoint runs MULTI/EXEC itself)
        "MULTI",
        "EXEC",
        "DISCARD",
        "WATCH",
        "UNWATCH",
    }
)
"""The documented safe set: data commands an application needs, nothing else.

Rationale: a client holding a ``safe`` credential (or any client when
``features.raw_commands = false``) can read and write *data* (strings, hashes, lists,
sets, sorted sets, bitmaps, HyperLogLog, geo, streams, expiry, the SCAN family,
PUBLISH, MULTI/EXEC) but cannot

* administer or inspect the server (CONFIG, INFO, CLIENT, DEBUG, ACL, MODULE, SLOWLOG,
  LATENCY, MEMORY, OBJECT, COMMAND, SAVE/BGSAVE, SHUTDOWN, REPLICAOF, FAILOVER, ...),
* wipe or walk the whole keyspace (FLUSHALL, FLUSHDB, KEYS, SWAPDB, RANDOMKEY),
* run code on the server (EVAL, EVALSHA, SCRIPT, FUNCTION, FCALL: unbounded CPU time,
  and scripts may touch keys they did not declare, defeating ``key_prefix``),
* move data in or out of the server wholesale (DUMP, RESTORE, MIGRATE, SYNC, PSYNC),
* pin server resources: blocking commands (BLPOP, BRPOP, BLMOVE, BLMPOP, BZPOPMIN,
  BZPOPMAX, BZMPOP, BRPOPLPUSH, WAIT, XREAD/XREADGROUP with BLOCK) and SUBSCRIBE each
  hold a dedicated Redis connection from a small pool for as long as the client likes,
* change connection state shared with other requests (SELECT, AUTH, HELLO, RESET,
  CLIENT, READONLY, MONITOR).

Operators add individual commands with ``policy.allowed_commands``.
"""

_BLOCK_OPTION_COMMANDS = frozenset({"XREAD", "XREADGROUP"})


def command_name(args: list[bytes]) -> str:
    """Upper-case command name of ``args`` (``""`` when there is none)."""
    if not args:
        return ""
    return args[0].decode("utf-8", "replace").upper()


class CommandPolicy:
    """Builds per-principal guards from the configuration."""

    def __init__(self, config: Config) -> None:
        self.denied: frozenset[str] = frozenset(config.policy.denied_commands)
        self.extra_allowed: frozenset[str] = frozenset(config.policy.allowed_commands)
        self.raw_commands: bool = config.features.raw_commands
        self.safe: frozenset[str] = SAFE_COMMANDS | self.extra_allowed
        self.home_db: int = config.redis.selected_db
        self._cache: dict[tuple[PolicyName, str | None], CommandGuard] = {}

    def guard_for(self, principal: Principal) -> CommandGuard:
        """The guard for ``principal`` (cached per policy name and key prefix)."""
        cache_key = (principal.policy, principal.key_prefix)
        guard = self._cache.get(cache_key)
        if guard is None:
            guard = self._build(principal.policy, principal.key_prefix)
            if len(self._cache) < 4096:  # bounded: JWTs may carry arbitrary prefixes
                self._cache[cache_key] = guard
        return guard

    def check(
        self,
        policy: PolicyName,
        key_prefix: str | None,
        args: list[bytes],
        db: int | None = None,
    ) -> str | None:
        """None when ``args`` may run under ``policy``/``key_prefix`` in ``db`` (None:
        the gateway's own database), else the reason."""
        name = command_name(args)
        if not name:
            return "empty command"
        if name in self.denied and policy != "all":
            return (
                f"command {name} is refused by policy.denied_commands "
                f"(only a credential with policy 'all' may run it)"
            )
        if not self.raw_commands and name not in self.safe:
            return (
                f"command {name} is not in the safe command set "
                f"(features.raw_commands is false; see policy.allowed_commands)"
            )
        if policy == "read_only" and name not in READ_ONLY_COMMANDS:
            return f"command {name} is not a read-only command (credential policy 'read_only')"
        if policy == "safe" and name not in self.safe:
            return f"command {name} is not in the safe command set (credential policy 'safe')"
        if (
            (policy in ("read_only", "safe") or not self.raw_commands)
            and name in _BLOCK_OPTION_COMMANDS
            and name not in self.extra_allowed
            and _has_block_option(args)
        ):
            return f"{name} with BLOCK is a blocking command, not in the safe command set"
        if policy != "all" and name in SCAN_COMMANDS:
            refusal = scan_count_refusal(name, args)
            if refusal is not None:
                return refusal
        if key_prefix is not None:
            if db is not None and db != self.home_db:
                return (
                    f"database {db}: a credential confined to a key prefix may only use "
                    f"the gateway's database (redis.db = {self.home_db})"
                )
            return check_key_prefix(name, args, key_prefix.encode(), self.home_db)
        return None

    def _build(self, policy: PolicyName, key_prefix: str | None) -> CommandGuard:
        def guard(args: list[bytes], db: int | None = None) -> str | None:
            return self.check(policy, key_prefix, args, db)

        return guard


def _has_block_option(args: list[bytes]) -> bool:
    for arg in args[1:]:
        upper = arg.upper()
        if upper == b"STREAMS":
            return False
        if upper == b"BLOCK":
            return True
    return False

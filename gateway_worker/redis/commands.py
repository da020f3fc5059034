"""Which commands need special handling on a shared (multiplexed) connection.

Names are upper-case ``bytes`` so a lookup costs one ``.upper()`` on ``args[0]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway_worker.redis.values import ReplyError

#: Block the connection until data arrives: they get a dedicated connection, and
#: no command timeout (their own timeout argument bounds them).
BLOCKING: frozenset[bytes] = frozenset(
    {
        b"BLPOP",
        b"BRPOP",
        b"BRPOPLPUSH",
        b"BLMOVE",
        b"BLMPOP",
        b"BZPOPMIN",
        b"BZPOPMAX",
        b"BZMPOP",
        b"WAIT",
        b"WAITAOF",
    }
)

#: Blocking only with a BLOCK argument.
BLOCKING_WITH_OPTION: frozenset[bytes] = frozenset({b"XREAD", b"XREADGROUP"})

#: Change the state of the connection they run on; on a connection shared by every
#: request of the worker they would leak into other requests (or desynchronise the
#: reply order), so they are refused there with an explanation.
CONNECTION_STATE: dict[bytes, str] = {
    b"SELECT": "use the database prefix (/DB/CMD) instead",
    b"HELLO": "the gateway speaks RESP2 to Redis",
    b"AUTH": "the gateway authenticates to Redis itself",
    b"QUIT": "connections are managed by the gateway",
    b"RESET": "connections are managed by the gateway",
    b"MULTI": "use /multi-exec for transactions",
    b"EXEC": "use /multi-exec for transactions",
    b"DISCARD": "use /multi-exec for transactions",
    b"WATCH": "use /multi-exec for transactions",
    b"UNWATCH": "use /multi-exec for transactions",
    b"SUBSCRIBE": "subscriptions need a streaming endpoint",
    b"PSUBSCRIBE": "subscriptions need a streaming endpoint",
    b"SSUBSCRIBE": "subscriptions need a streaming endpoint",
    b"UNSUBSCRIBE": "subscriptions need a streaming endpoint",
    b"PUNSUBSCRIBE": "subscriptions need a streaming endpoint",
    b"SUNSUBSCRIBE": "subscriptions need a streaming endpoint",
    b"MONITOR": "not available through the gateway",
    b"SYNC": "not available through the gateway",
    b"PSYNC": "not available through the gateway",
    b"CLIENT": "not available through the gateway",
}

#: Commands that never change data: safe to retry after a lost connection, and they
#: do not move the Upstash sync token. Anything not listed counts as a write.
READ_ONLY: frozenset[bytes] = frozenset(
    {
        b"GET",
        b"MGET",
        b"GETRANGE",
        b"SUBSTR",
        b"STRLEN",
        b"EXISTS",
        b"TTL",
        b"PTTL",
        b"EXPIRETIME",
        b"PEXPIRETIME",
        b"TYPE",
        b"KEYS",
        b"SCAN",
        b"RANDOMKEY",
        b"DBSIZE",
        b"HGET",
        b"HMGET",
        b"HGETALL",
        b"HKEYS",
        b"HVALS",
        b"HLEN",
        b"HEXISTS",
        b"HSTRLEN",
        b"HSCAN",
        b"HRANDFIELD",
        b"LRANGE",
        b"LLEN",
        b"LINDEX",
        b"LPOS",
        b"SMEMBERS",
        b"SISMEMBER",
        b"SMISMEMBER",
        b"SCARD",
        b"SRANDMEMBER",
        b"SSCAN",
        b"SINTER",
        b"SINTERCARD",
        b"SUNION",
        b"SDIFF",
        b"ZRANGE",
        b"ZRANGEBYSCORE",
        b"ZREVRANGE",
        b"ZREVRANGEBYSCORE",
        b"ZRANGEBYLEX",
        b"ZREVRANGEBYLEX",
        b"ZSCORE",
        b"ZMSCORE",
        b"ZRANK",
        b"ZREVRANK",
        b"ZCARD",
        b"ZCOUNT",
        b"ZLEXCOUNT",
        b"ZSCAN",
        b"ZRANDMEMBER",
        b"ZINTER",
        b"ZUNION",
        b"ZDIFF",
        b"ZINTERCARD",
        b"XRANGE",
        b"XREVRANGE",
        b"XLEN",
        b"XINFO",
        b"XPENDING",
        b"GETBIT",
        b"BITCOUNT",
        b"BITPOS",
        b"BITFIELD_RO",
        b"PFCOUNT",
        b"GEOPOS",
        b"GEODIST",
        b"GEOHASH",
        b"GEOSEARCH",
        b"GEORADIUS_RO",
        b"GEORADIUSBYMEMBER_RO",
        b"PING",
        b"ECHO",
        b"TIME",
        b"INFO",
        b"LASTSAVE",
        b"OBJECT",
        b"MEMORY",
        b"DUMP",
        b"TOUCH",
        b"LCS",
        b"EVAL_RO",
        b"EVALSHA_RO",
        b"FCALL_RO",
        b"COMMAND",
        b"JSON.GET",
        b"JSON.MGET",
        b"JSON.TYPE",
        b"JSON.STRLEN",
        b"JSON.ARRLEN",
        b"JSON.OBJKEYS",
        b"JSON.OBJLEN",
        b"SORT_RO",
        b"LOLWUT",
    }
)

#: Everything else a client commonly sends; with the sets above, the bounded set of
#: names metrics may use as a label (anything else is counted as "other").
_WRITES: frozenset[bytes] = frozenset(
    {
        b"SET",
        b"SETNX",
        b"SETEX",
        b"PSETEX",
        b"MSET",
        b"MSETNX",
        b"GETSET",
        b"GETDEL",
        b"GETEX",
        b"APPEND",
        b"SETRANGE",
        b"INCR",
        b"INCRBY",
        b"INCRBYFLOAT",
        b"DECR",
        b"DECRBY",
        b"DEL",
        b"UNLINK",
        b"EXPIRE",
        b"PEXPIRE",
        b"EXPIREAT",
        b"PEXPIREAT",
        b"PERSIST",
        b"RENAME",
        b"RENAMENX",
        b"COPY",
        b"MOVE",
        b"HSET",
        b"HSETNX",
        b"HMSET",
        b"HDEL",
        b"HINCRBY",
        b"HINCRBYFLOAT",
        b"LPUSH",
        b"RPUSH",
        b"LPUSHX",
        b"RPUSHX",
        b"LPOP",
        b"RPOP",
        b"LSET",
        b"LREM",
        b"LTRIM",
        b"LINSERT",
        b"LMOVE",
        b"RPOPLPUSH",
        b"LMPOP",
        b"SADD",
        b"SREM",
        b"SPOP",
        b"SMOVE",
        b"SINTERSTORE",
        b"SUNIONSTORE",
        b"SDIFFSTORE",
        b"ZADD",
        b"ZREM",
        b"ZINCRBY",
        b"ZPOPMIN",
        b"ZPOPMAX",
        b"ZMPOP",
        b"ZREMRANGEBYRANK",
        b"ZREMRANGEBYSCORE",
        b"ZREMRANGEBYLEX",
        b"ZRANGESTORE",
        b"ZINTERSTORE",
        b"ZUNIONSTORE",
        b"ZDIFFSTORE",
        b"XADD",
        b"XDEL",
        b"XTRIM",
        b"XGROUP",
        b"XACK",
        b"XCLAIM",
        b"XAUTOCLAIM",
        b"SETBIT",
        b"BITOP",
        b"BITFIELD",
        b"PFADD",
        b"PFMERGE",
        b"GEOADD",
        b"GEOSEARCHSTORE",
        b"EVAL",
        b"EVALSHA",
        b"FCALL",
        b"FUNCTION",
        b"SCRIPT",
        b"PUBLISH",
        b"SPUBLISH",
        b"PUBSUB",
        b"SORT",
        b"RESTORE",
        b"FLUSHDB",
        b"FLUSHALL",
        b"CONFIG",
        b"DEBUG",
        b"SHUTDOWN",
        b"ACL",
        b"SAVE",
        b"BGSAVE",
        b"BGREWRITEAOF",
        b"SWAPDB",
        b"MIGRATE",
        b"MODULE",
        b"SLOWLOG",
        b"LATENCY",
        b"REPLICAOF",
        b"SLAVEOF",
        b"FAILOVER",
        b"CLUSTER",
        b"JSON.SET",
        b"JSON.DEL",
        b"JSON.ARRAPPEND",
        b"JSON.NUMINCRBY",
    }
)

KNOWN: frozenset[str] = frozenset(
    n.decode()
    for n in READ_ONLY | _WRITES | BLOCKING | BLOCKING_WITH_OPTION | CONNECTION_STATE.keys()
)


def command_name(args: Sequence[bytes]) -> bytes:
    """The upper-cased command name (``b""`` for an empty command)."""
    return args[0].upper() if args else b""


def is_blocking(name: bytes, args: Sequence[bytes]) -> bool:
    """True when the command may block its connection waiting for data."""
    if name in BLOCKING:
        return True
    if name in BLOCKING_WITH_OPTION:
        return any(a.upper() == b"BLOCK" for a in args[1:])
    return False


def is_read_only(name: bytes) -> bool:
    """True for commands that never change data (retry-safe, sync token unchanged)."""
    return name in READ_ONLY


def refusal(name: bytes, reason: str) -> ReplyError:
    """The error reply for a command the gateway does not run, saying why."""
    return ReplyError(
        f"ERR {name.decode('ascii', 'replace')} is not allowed through the gateway: {reason}"
    )

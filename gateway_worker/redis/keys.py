"""Where the keys are in a command's arguments: the one table, read by key-prefix
confinement (``gateway_worker.access.key_confinement``) and by cluster routing
(``gateway_worker.redis.cluster.routing``).

``locate_keys(name, args)`` returns the positions (``Located``) or why they cannot be
told (a malformed command). Commands absent from ``KEY_SPECS`` have keys we cannot
locate: confinement refuses them, cluster mode too unless its own table says where
they go. Options are read the way Redis reads them (``command_syntax``): a repeated
option is located in *every* occurrence, so the one Redis uses (usually the last) is
among them.

Spec kinds (``args[0]`` is the command name):

* ``first``        ``args[1]``                      GET, SET, HSET, LPUSH, EXPIRE, HSCAN, ...
* ``all``          ``args[1:]``                     DEL, EXISTS, MGET, UNLINK, SUBSCRIBE, ...
* ``all_but_last`` ``args[1:-1]``                   BLPOP k1 k2 timeout
* ``alternate``    ``args[1::2]``                   MSET k1 v1 k2 v2
* ``first_two``    ``args[1:3]``                    RENAME, SMOVE, LMOVE, LCS, ZRANGESTORE, ...
* ``second``       ``args[2]``                      OBJECT ENCODING k, XINFO STREAM k
* ``after_first``  ``args[2:]``                     BITOP op dest k1 k2
* ``numkeys@i``    count at ``args[i]``, keys after it (ZUNION, LMPOP, BLMPOP, EVAL, ...)
* ``dest+numkeys@i`` ``args[1]`` plus the above     ZUNIONSTORE dest n k1 k2
* ``copy``         ``args[1:3]``, and every ``DB n`` in ``databases``
* ``streams``      first half after ``STREAMS``, options parsed as Redis does
                   (a group or consumer named ``STREAMS`` is not the keyword)
* ``georadius``    ``args[1]`` plus every ``STORE``/``STOREDIST`` target
* ``sort``         ``args[1]``, every ``STORE`` target, and every ``BY``/``GET``
                   pattern in ``sort_patterns`` (they read keys built from it)
* ``scan``         no key; every ``MATCH`` pattern in ``globs``
* ``pattern_all``  every argument is a glob pattern (PSUBSCRIBE)
* ``keys``         exactly one glob pattern (KEYS)
* ``none``         no keys (PING, TIME, MULTI, ...)

Pub/sub channels count as keys (confinement treats them so, and a cluster routes
``SSUBSCRIBE``/``SPUBLISH`` by their slot).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway_worker.redis.command_syntax import Grammar, grammar, parse_options, redis_int


@dataclass
class Located:
    """Positions in ``args`` of what a command reaches."""

    keys: list[int] = field(default_factory=list)
    globs: list[int] = field(default_factory=list)  # SCAN MATCH, KEYS, PSUBSCRIBE
    sort_patterns: list[int] = field(default_factory=list)  # SORT BY/GET
    databases: list[int] = field(default_factory=list)  # COPY ... DB n

    @classmethod
    def of_keys(cls, start: int, stop: int | None = None, step: int = 1) -> Located:
        return cls(keys=list(range(start, stop if stop is not None else start + 1, step)))


KEY_SPECS: dict[str, str] = {}


def _spec(kind: str, names: str) -> None:
    for name in names.split():
        KEY_SPECS[name] = kind


_spec(
    "first",
    """GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX APPEND SETRANGE GETRANGE SUBSTR
    STRLEN INCR INCRBY INCRBYFLOAT DECR DECRBY TYPE TTL PTTL EXPIRE PEXPIRE EXPIREAT
    PEXPIREAT EXPIRETIME PEXPIRETIME PERSIST DUMP RESTORE
    HGET HSET HSETNX HMSET HMGET HDEL HGETALL HKEYS HVALS HLEN HEXISTS HSTRLEN HINCRBY
    HINCRBYFLOAT HRANDFIELD HSCAN
    LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LINDEX LLEN LSET LINSERT LREM LTRIM LPOS
    SADD SREM SPOP SMEMBERS SISMEMBER SMISMEMBER SCARD SRANDMEMBER SSCAN
    ZADD ZINCRBY ZREM ZRANGE ZRANGEBYSCORE ZRANGEBYLEX ZREVRANGE ZREVRANGEBYSCORE
    ZREVRANGEBYLEX ZSCORE ZMSCORE ZRANK ZREVRANK ZCARD ZCOUNT ZLEXCOUNT ZSCAN
    ZRANDMEMBER ZREMRANGEBYSCORE ZREMRANGEBYRANK ZREMRANGEBYLEX ZPOPMIN ZPOPMAX
    SETBIT GETBIT BITCOUNT BITPOS BITFIELD BITFIELD_RO PFADD
    GEOADD GEOPOS GEODIST GEOHASH GEOSEARCH
    XADD XDEL XTRIM XLEN XRANGE XREVRANGE XACK XPENDING XCLAIM XAUTOCLAIM XSETID
    PUBLISH SPUBLISH MOVE""",
)
_spec(
    "all",
    """DEL UNLINK EXISTS TOUCH MGET WATCH SINTER SUNION SDIFF SINTERSTORE SUNIONSTORE
    SDIFFSTORE PFCOUNT PFMERGE SUBSCRIBE SSUBSCRIBE""",
)
_spec("all_but_last", "BLPOP BRPOP BZPOPMIN BZPOPMAX")
_spec("alternate", "MSET MSETNX")
_spec(
    "first_two",
    "RENAME RENAMENX SMOVE RPOPLPUSH LMOVE BLMOVE BRPOPLPUSH LCS ZRANGESTORE GEOSEARCHSTORE",
)
_spec("copy", "COPY")
_spec("second", "OBJECT XINFO XGROUP")
_spec("after_first", "BITOP")
_spec("numkeys@2", "BLMPOP BZMPOP EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO")
_spec("numkeys@1", "ZUNION ZINTER ZDIFF ZINTERCARD SINTERCARD LMPOP ZMPOP")
_spec("dest+numkeys@2", "ZUNIONSTORE ZINTERSTORE ZDIFFSTORE")
_spec("streams", "XREAD XREADGROUP")
_spec("georadius", "GEORADIUS GEORADIUSBYMEMBER GEORADIUS_RO GEORADIUSBYMEMBER_RO")
_spec("sort", "SORT SORT_RO")
_spec("scan", "SCAN")
_spec("pattern_all", "PSUBSCRIBE")
_spec("keys", "KEYS")
_spec(
    "none",
    "PING ECHO TIME MULTI EXEC DISCARD UNWATCH UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE QUIT",
)

# Subcommands of "second" commands that take no key (XINFO HELP, OBJECT HELP, ...).
_KEYLESS_SUBCOMMANDS = frozenset({b"HELP"})

# The option loops of Redis's own parsers (see command_syntax).
_GRAMMARS: dict[str, Grammar] = {
    "SCAN": grammar(2, "MATCH:1 COUNT:1 TYPE:1"),
    "SORT": grammar(2, "ASC DESC ALPHA LIMIT:2 BY:1 GET:1 STORE:1"),
    "COPY": grammar(3, "DB:1 REPLACE"),
    "XREAD": grammar(1, "COUNT:1 BLOCK:1", terminal="STREAMS"),
    "XREADGROUP": grammar(1, "GROUP:2 COUNT:1 BLOCK:1 NOACK", terminal="STREAMS"),
    "GEORADIUS": grammar(6, "WITHDIST WITHHASH WITHCOORD ANY ASC DESC COUNT:1 STORE:1 STOREDIST:1"),
}
_GRAMMARS["SORT_RO"] = _GRAMMARS["SORT"]
_GRAMMARS["GEORADIUS_RO"] = _GRAMMARS["GEORADIUS"]
# GEORADIUSBYMEMBER key member radius unit: one argument fewer before the options.
_GRAMMARS["GEORADIUSBYMEMBER"] = Grammar(5, _GRAMMARS["GEORADIUS"].arity)
_GRAMMARS["GEORADIUSBYMEMBER_RO"] = _GRAMMARS["GEORADIUSBYMEMBER"]


def _numkeys(args: list[bytes], pos: int, dest: bool) -> Located | str:
    if len(args) <= pos:
        return f"missing numkeys argument at position {pos}"
    count = redis_int(args[pos])
    if count is None:
        return f"numkeys argument at position {pos} is not an integer"
    if count < 0 or pos + 1 + count > len(args):
        return f"numkeys argument at position {pos} does not match the argument count"
    keys = list(range(pos + 1, pos + 1 + count))
    return Located(keys=[1, *keys] if dest else keys)


def _options(name: str, args: list[bytes]) -> Located | str:
    """The ``copy``, ``streams``, ``georadius``, ``sort`` and ``scan`` kinds."""
    parsed = parse_options(name, args, _GRAMMARS[name])
    if isinstance(parsed, str):
        return parsed
    kind = KEY_SPECS[name]
    if kind == "scan":
        return Located(globs=parsed.values(b"MATCH"))
    if kind == "streams":
        assert parsed.terminal_at is not None
        after = len(args) - parsed.terminal_at - 1
        if after % 2:
            return f"{name}: STREAMS needs as many IDs as keys"
        first = parsed.terminal_at + 1
        return Located.of_keys(first, first + after // 2)
    if kind == "copy":
        return Located(keys=[1, 2], databases=parsed.values(b"DB"))
    stores = parsed.values(b"STORE") + parsed.values(b"STOREDIST")
    if kind == "georadius":
        return Located(keys=[1, *stores])
    return Located(keys=[1, *stores], sort_patterns=parsed.values(b"BY") + parsed.values(b"GET"))


def locate_keys(name: str, args: list[bytes]) -> Located | str:
    """What command ``name`` (in ``KEY_SPECS``) reaches in ``args``, or why it cannot
    be told; a command without a spec is a ``str`` too."""
    kind = KEY_SPECS.get(name)
    if kind is None:
        return f"the gateway does not know where the keys of {name} are"
    n = len(args)
    if kind == "none":
        return Located()
    if kind == "first":
        return Located.of_keys(1) if n > 1 else Located()
    if kind in ("all", "after_first", "all_but_last"):
        start = 2 if kind == "after_first" else 1
        return Located.of_keys(start, n - 1 if kind == "all_but_last" else n)
    if kind == "alternate":
        return Located.of_keys(1, n, 2)
    if kind == "first_two":
        return Located.of_keys(1, min(n, 3))
    if kind == "second":
        if n >= 2 and args[1].upper() in _KEYLESS_SUBCOMMANDS:
            return Located()
        return Located.of_keys(2, min(n, 3))
    if kind.startswith(("numkeys@", "dest+numkeys@")):
        return _numkeys(args, int(kind.rsplit("@", 1)[1]), kind.startswith("dest+"))
    if kind in ("copy", "streams", "georadius", "sort", "scan"):
        return _options(name, args)
    if kind == "pattern_all":
        return Located(globs=list(range(1, n)))
    if kind == "keys":
        return Located(globs=[1]) if n == 2 else "KEYS takes exactly one pattern"
    raise AssertionError(f"unknown key spec kind {kind!r}")  # a table typo, caught by tests

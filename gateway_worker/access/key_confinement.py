"""Where the keys are in a command's arguments, for ``key_prefix`` confinement.

``check_key_prefix(name, args, prefix)`` returns None when every key (and channel,
and SCAN/KEYS/PSUBSCRIBE pattern) in ``args`` starts with ``prefix``, else the reason.
Commands absent from ``KEY_SPECS`` are refused for prefix-confined credentials: a
command whose keys we cannot locate could reach any key.

Spec kinds (``args[0]`` is the command name):

* ``first``        ``args[1]``                      GET, SET, HSET, LPUSH, EXPIRE, ...
* ``all``          ``args[1:]``                     DEL, EXISTS, MGET, UNLINK, TOUCH, WATCH, SINTER
* ``all_but_last`` ``args[1:-1]``                   BLPOP k1 k2 timeout
* ``alternate``    ``args[1::2]``                   MSET k1 v1 k2 v2
* ``first_two``    ``args[1:3]``                    RENAME, SMOVE, LMOVE, COPY, LCS
* ``second``       ``args[2]``                      OBJECT ENCODING k, XINFO STREAM k
* ``after_first``  ``args[2:]``                     BITOP op dest k1 k2
* ``numkeys@i``    count at ``args[i]``, keys after it (EVAL, ZUNION, LMPOP, ...)
* ``dest+numkeys@i`` ``args[1]`` plus the above     ZUNIONSTORE dest n k1 k2
* ``streams``      first half after ``STREAMS``     XREAD, XREADGROUP
* ``store``        ``args[1]`` plus STORE/STOREDIST targets (GEORADIUS*)
* ``sort``         ``args[1]`` plus STORE target; BY/GET refused (they read other keys)
* ``scan``         the MATCH pattern must start with the (glob-escaped) prefix
* ``pattern_all``  every argument is a glob pattern (PSUBSCRIBE)
* ``pattern_first`` ``args[1]`` is a glob pattern (KEYS)
* ``none``         no keys (PING, TIME, MULTI, ...)

Pub/sub channels are treated as keys: a confined credential publishes and subscribes
only under its prefix. Scripts (EVAL/FCALL) are checked on their *declared* keys only;
Lua can reach undeclared keys, which is why scripting is outside ``SAFE_COMMANDS``.
"""

from __future__ import annotations

import re

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
    GEOADD GEOPOS GEODIST GEOHASH GEOSEARCH GEORADIUS_RO GEORADIUSBYMEMBER_RO
    XADD XDEL XTRIM XLEN XRANGE XREVRANGE XACK XPENDING XCLAIM XAUTOCLAIM XSETID
    PUBLISH SPUBLISH""",
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
    "RENAME RENAMENX SMOVE RPOPLPUSH LMOVE BLMOVE BRPOPLPUSH COPY LCS ZRANGESTORE GEOSEARCHSTORE",
)
_spec("second", "OBJECT XINFO XGROUP")
_spec("after_first", "BITOP")
_spec("numkeys@2", "EVAL EVALSHA EVAL_RO EVALSHA_RO FCALL FCALL_RO BLMPOP BZMPOP")
_spec("numkeys@1", "ZUNION ZINTER ZDIFF ZINTERCARD SINTERCARD LMPOP ZMPOP")
_spec("dest+numkeys@2", "ZUNIONSTORE ZINTERSTORE ZDIFFSTORE")
_spec("streams", "XREAD XREADGROUP")
_spec("store", "GEORADIUS GEORADIUSBYMEMBER")
_spec("sort", "SORT SORT_RO")
_spec("scan", "SCAN")
_spec("pattern_all", "PSUBSCRIBE")
_spec("pattern_first", "KEYS")
_spec(
    "none",
    "PING ECHO TIME MULTI EXEC DISCARD UNWATCH UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE QUIT",
)

# Subcommands of "second" commands that take no key (XINFO HELP, OBJECT HELP, ...).
_KEYLESS_SUBCOMMANDS = frozenset({b"HELP"})

_GLOB_SPECIALS = re.compile(rb"([*?\[\]\\])")


def glob_escape(prefix: bytes) -> bytes:
    """``prefix`` with Redis glob metacharacters escaped, for pattern comparisons."""
    return _GLOB_SPECIALS.sub(rb"\\\1", prefix)


def _numkeys(args: list[bytes], pos: int) -> list[bytes] | str:
    if len(args) <= pos:
        return f"missing numkeys argument at position {pos}"
    try:
        count = int(args[pos])
    except ValueError:
        return f"numkeys argument at position {pos} is not an integer"
    if count < 0 or pos + 1 + count > len(args):
        return f"numkeys argument at position {pos} does not match the argument count"
    return args[pos + 1 : pos + 1 + count]


def locate_keys(name: str, args: list[bytes]) -> tuple[list[bytes], list[bytes]] | str:
    """``(keys, patterns)`` in ``args`` for command ``name``, or why they cannot be found."""
    kind = KEY_SPECS.get(name)
    if kind is None:
        return f"command {name} is not supported for credentials confined to a key prefix"
    rest = args[1:]
    if kind == "none":
        return [], []
    if kind == "first":
        return (rest[:1] if rest else []), []
    if kind == "all":
        return rest, []
    if kind == "all_but_last":
        return rest[:-1], []
    if kind == "alternate":
        return rest[::2], []
    if kind == "first_two":
        return rest[:2], []
    if kind == "second":
        if len(args) >= 2 and args[1].upper() in _KEYLESS_SUBCOMMANDS:
            return [], []
        return args[2:3], []
    if kind == "after_first":
        return args[2:], []
    if kind.startswith(("numkeys@", "dest+numkeys@")):
        pos = int(kind.rsplit("@", 1)[1])
        found = _numkeys(args, pos)
        if isinstance(found, str):
            return found
        return (args[1:2] + found if kind.startswith("dest+") else found), []
    if kind == "streams":
        # XREADGROUP GROUP <group> <consumer> ...: a group or consumer may be named
        # "STREAMS", so the keyword is looked for after them.
        start = 4 if name == "XREADGROUP" else 1
        upper = [a.upper() for a in args]
        if b"STREAMS" not in upper[start:]:
            return f"{name} without STREAMS"
        after = args[upper.index(b"STREAMS", start) + 1 :]
        return after[: len(after) // 2], []
    if kind in ("store", "sort"):
        keys = rest[:1]
        upper = [a.upper() for a in args]
        for i, token in enumerate(upper[2:], start=2):
            if kind == "sort" and token in (b"BY", b"GET"):
                return f"{name} with BY or GET reads other keys; refused under a key prefix"
            if token in (b"STORE", b"STOREDIST") and i + 1 < len(args):
                keys.append(args[i + 1])
        return keys, []
    if kind == "scan":
        upper = [a.upper() for a in args]
        if b"MATCH" not in upper[2:]:
            return "SCAN needs MATCH <key prefix>* for a credential confined to a key prefix"
        index = upper.index(b"MATCH", 2)
        return [], args[index + 1 : index + 2] or [b""]
    if kind == "pattern_all":
        return [], rest
    if kind == "pattern_first":
        return [], rest[:1]
    raise AssertionError(f"unknown key spec kind {kind!r}")  # a table typo, caught by tests


def check_key_prefix(name: str, args: list[bytes], prefix: bytes) -> str | None:
    """None when every key and pattern in ``args`` stays under ``prefix``, else why not.

    The reason names the argument position, never the key itself (reasons may be logged).
    """
    found = locate_keys(name, args)
    if isinstance(found, str):
        return found
    keys, patterns = found
    shown = prefix.decode("utf-8", "replace")
    for key in keys:
        if not key.startswith(prefix):
            position = _position(args, key)
            return f"{name}: key argument {position} is outside the key prefix {shown!r}"
    escaped = glob_escape(prefix)
    for pattern in patterns:
        if not pattern.startswith(escaped):
            position = _position(args, pattern)
            return f"{name}: pattern argument {position} must start with the key prefix {shown!r}"
    return None


def _position(args: list[bytes], value: bytes) -> int:
    for i, arg in enumerate(args):
        if arg is value:
            return i
    return args.index(value) if value in args else -1

"""Key-prefix confinement: every command family, with the hostile forms Redis accepts.

Redis reads options left to right and takes the *last* of a repeated one, so each
family is tried with a repeated option, an option's value that looks like a keyword,
and unknown or truncated options; the check must judge what Redis will do.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway_worker.access.key_confinement import REFUSED, check_key_prefix, glob_escape
from gateway_worker.access.policy import CommandPolicy
from gateway_worker.config import Config
from gateway_worker.exchange import PolicyName, Principal
from gateway_worker.redis.command_syntax import redis_int
from gateway_worker.redis.keys import KEY_SPECS, Located, locate_keys


def confined(*args: str, prefix: str = "app:", home_db: int = 0) -> str | None:
    return check_key_prefix(args[0].upper(), [a.encode() for a in args], prefix.encode(), home_db)


ALLOWED = [
    ("GET", "app:k"),
    ("DEL", "app:a", "app:b"),
    ("MSET", "app:a", "1", "app:b", "other"),
    ("ZUNIONSTORE", "app:d", "2", "app:a", "app:b", "WEIGHTS", "1", "2"),
    ("ZUNION", "1", "app:a", "WITHSCORES"),
    ("BLMPOP", "0", "1", "app:l", "LEFT"),
    ("BITOP", "AND", "app:d", "app:a"),
    ("BLPOP", "app:a", "app:b", "0"),
    ("PING",),
    ("PUBLISH", "app:chan", "msg"),
    ("HSCAN", "app:h", "0", "MATCH", "*"),  # the pattern matches fields, not keys
    # SCAN: every MATCH judged; a keyword as another option's value is a value
    ("SCAN", "0", "MATCH", "app:*", "COUNT", "10"),
    ("scan", "0", "match", "app:*", "count", "5", "type", "string"),
    ("SCAN", "0", "TYPE", "MATCH", "MATCH", "app:*"),
    ("SCAN", "0", "MATCH", "app:*", "MATCH", "app:x*"),
    ("KEYS", "app:*"),
    ("PSUBSCRIBE", "app:*", "app:news.*"),
    ("SUBSCRIBE", "app:a", "app:b"),
    # SORT: BY/GET patterns whose key part stays under the prefix, # and no-star ones
    ("SORT", "app:l", "BY", "app:w_*", "GET", "#", "GET", "app:h_*->f"),
    ("SORT", "app:l", "BY", "nosort", "GET", "app:v_*", "LIMIT", "0", "10", "ALPHA", "DESC"),
    ("SORT", "app:l", "STORE", "app:d"),
    ("SORT", "app:l", "GET", "STORE", "STORE", "app:d"),  # GET's pattern is "STORE"
    ("SORT_RO", "app:l", "GET", "app:v_*"),
    # GEO: every STORE/STOREDIST target
    ("GEORADIUS", "app:g", "1", "2", "3", "km", "STORE", "app:d"),
    ("GEORADIUSBYMEMBER", "app:g", "m", "3", "km", "COUNT", "5", "ANY", "STOREDIST", "app:d"),
    ("GEORADIUS_RO", "app:g", "1", "2", "3", "km", "WITHDIST"),
    ("GEOSEARCHSTORE", "app:d", "app:s", "FROMMEMBER", "m", "BYRADIUS", "1", "km", "STOREDIST"),
    ("ZRANGESTORE", "app:d", "app:s", "0", "-1"),
    # streams: the keys after the STREAMS *option*, not after any "STREAMS" token
    ("XREAD", "COUNT", "2", "STREAMS", "app:s1", "app:s2", "0", "0"),
    ("XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "app:s", ">"),
    ("XREADGROUP", "GROUP", "STREAMS", "c", "STREAMS", "app:s", ">"),
    ("XREADGROUP", "COUNT", "1", "NOACK", "GROUP", "g", "STREAMS", "STREAMS", "app:s", ">"),
    # keys of their own, and the gateway's database
    ("OBJECT", "ENCODING", "app:k"),
    ("OBJECT", "HELP"),
    ("DUMP", "app:k"),
    ("RESTORE", "app:k", "0", "payload", "REPLACE", "IDLETIME", "5"),
    ("COPY", "app:a", "app:b"),
    ("COPY", "app:a", "app:b", "REPLACE", "DB", "0"),
]


@pytest.mark.parametrize("args", ALLOWED)
def test_allowed_under_the_prefix(args: tuple[str, ...]) -> None:
    assert confined(*args) is None


# A group named STREAMS: the keys start after the second STREAMS, the option.
_GROUP_NAMED_STREAMS = (
    *("XREADGROUP", "COUNT", "1", "GROUP", "STREAMS", "app:c"),
    *("STREAMS", "app:s", "zzout", ">", ">"),
)
REFUSALS = [
    (("GET", "zzout"), "key argument 1"),
    (("DEL", "app:a", "zzout"), "key argument 2"),
    (("MSET", "app:a", "1", "zzout", "2"), "key argument 3"),
    (("ZUNIONSTORE", "zzout", "1", "app:a"), "key argument 1"),
    (("ZUNION", "2", "app:a", "zzout"), "key argument 3"),
    (("ZUNION", "+1", "zzout"), "not an integer"),  # Python's int() reads "+1"; Redis not
    (("ZINTERCARD", " 1", "zzout"), "not an integer"),
    (("LMPOP", "5", "app:l", "LEFT"), "does not match"),
    (("BITOP", "AND", "zzout", "app:a"), "key argument 2"),
    (("SUBSCRIBE", "app:a", "zzout"), "key argument 2"),
    # SCAN: the last MATCH is the one Redis uses; every one is judged
    (("SCAN", "0", "MATCH", "app:*", "MATCH", "*"), "pattern argument 5"),
    (("SCAN", "0", "MATCH", "*", "MATCH", "app:*"), "pattern argument 3"),
    (("SCAN", "0", "COUNT", "MATCH", "MATCH", "*"), "pattern argument 5"),
    (("SCAN", "0", "MATCH", "app:*", "TYPE", "string", "match", "zz*"), "pattern argument 7"),
    (("SCAN", "0"), "needs MATCH"),
    (("SCAN", "0", "COUNT", "1000", "TYPE", "string"), "needs MATCH"),
    (("SCAN", "0", "MATCH", "app:*", "BOGUS", "x"), "argument 4 is not an option"),
    (("SCAN", "0", "MATCH", "app:*", "MATCH"), "lacks its value"),
    (("SCAN", "0", "MATCH", "ap*"), "pattern argument 3"),
    (("KEYS", "*"), "pattern argument 1"),
    (("KEYS", "app:*", "*"), "exactly one pattern"),
    (("PSUBSCRIBE", "app:*", "*"), "pattern argument 2"),
    (("PSUBSCRIBE", "app*"), "pattern argument 1"),
    # SORT: patterns reach other keys, STORE writes one; repeated ones all judged
    (("SORT", "app:l", "BY", "w_*"), "pattern argument 3"),
    (("SORT", "app:l", "BY", "app:w_*", "BY", "w_*"), "pattern argument 5"),
    (("SORT", "app:l", "GET", "#", "GET", "zz_*->f"), "pattern argument 5"),
    (("SORT", "app:l", "GET", "*"), "pattern argument 3"),
    (("SORT", "app:l", "STORE", "app:d", "STORE", "zzout"), "key argument 5"),
    (("SORT", "app:l", "GET", "STORE", "STORE", "zzout"), "key argument 5"),
    (("SORT", "app:l", "FROB"), "not an option"),
    (("SORT_RO", "app:l", "GET", "zz_*"), "pattern argument 3"),
    # GEO and the other *STORE commands
    (("GEORADIUS", "app:g", "1", "2", "3", "km", "STORE", "app:d", "STORE", "zzout"), "key arg"),
    (("GEORADIUS", "app:g", "1", "2", "3", "km", "STOREDIST", "zzout"), "key argument 7"),
    (("GEORADIUSBYMEMBER", "app:g", "m", "3", "km", "STORE", "zzout"), "key argument 6"),
    (("GEORADIUS_RO", "app:g", "1", "2", "3", "km", "STORE", "zzout"), "key argument 7"),
    (("GEOSEARCHSTORE", "zzout", "app:s", "FROMMEMBER", "m"), "key argument 1"),
    (("GEOSEARCHSTORE", "app:d", "zzout", "FROMMEMBER", "m"), "key argument 2"),
    (("ZRANGESTORE", "app:d", "zzout", "0", "-1"), "key argument 2"),
    # streams
    (("XREAD", "STREAMS", "app:s", "zzout", "0", "0"), "key argument 3"),
    (("XREADGROUP", "GROUP", "g", "STREAMS", "STREAMS", "zzout", ">"), "key argument 5"),
    (_GROUP_NAMED_STREAMS, "key argument 8"),
    (("XREAD", "STREAMS", "app:a", "app:b", "0"), "as many IDs as keys"),
    (("XREAD", "COUNT", "1"), "needs STREAMS"),
    (("XREAD", "STREAMS"), "not an option"),
    (("XREAD", "GROUP", "g", "c", "STREAMS", "app:s", ">"), "not an option"),
    # keys of their own, other databases, other servers
    (("OBJECT", "ENCODING", "zzout"), "key argument 2"),
    (("DUMP", "zzout"), "key argument 1"),
    (("RESTORE", "zzout", "0", "payload"), "key argument 1"),
    (("COPY", "app:a", "zzout"), "key argument 2"),
    (("COPY", "app:a", "app:b", "DB", "1"), "database argument 4"),
    (("COPY", "app:a", "app:b", "DB", "0", "DB", "1"), "database argument 6"),
    (("COPY", "app:a", "app:b", "DB", "00"), "database argument 4"),
    (("COPY", "app:a", "app:b", "DB"), "lacks its value"),
    (("MOVE", "app:k", "1"), "another database"),
    (("SWAPDB", "0", "1"), "another database"),
    (("SELECT", "1"), "another database"),
    (("MIGRATE", "h", "6379", "app:k", "0", "1000"), "another server"),
    (("RANDOMKEY",), "not supported"),
    (("DBSIZE",), "not supported"),
]


@pytest.mark.parametrize(("args", "fragment"), REFUSALS)
def test_refused_when_reaching_outside(args: tuple[str, ...], fragment: str) -> None:
    reason = confined(*args)
    assert reason is not None and fragment in reason, reason
    assert "zzout" not in reason  # the key itself is never echoed


@pytest.mark.parametrize("name", sorted(n for n, why in REFUSED.items() if "scripts" in why))
def test_scripts_are_refused_even_with_declared_keys_under_the_prefix(name: str) -> None:
    reason = confined(name, "return redis.call('GET', 'other')", "1", "app:k")
    assert reason is not None and "scripts can reach keys they do not declare" in reason


def test_sort_patterns_cannot_be_confined_under_a_prefix_holding_a_star() -> None:
    # Redis substitutes at the *first* '*': with prefix "t*:" the key part would be "t".
    reason = confined("SORT", "t*:l", "BY", "t*:w_*", prefix="t*:")
    assert reason is not None and "pattern argument 3" in reason
    assert confined("SORT", "t*:l", "BY", "nosort", "GET", "#", prefix="t*:") is None


def test_glob_specials_in_prefix_must_be_escaped_in_patterns() -> None:
    assert glob_escape(b"a*b[") == b"a\\*b\\["
    assert confined("SCAN", "0", "MATCH", "t*:x*", prefix="t*:") is not None
    assert confined("SCAN", "0", "MATCH", "t\\*:x*", prefix="t*:") is None
    assert confined("PSUBSCRIBE", "t*:*", prefix="t*:") is not None


def test_copy_db_must_be_the_gateways_own_database() -> None:
    assert confined("COPY", "app:a", "app:b", "DB", "3", home_db=3) is None
    reason = confined("COPY", "app:a", "app:b", "DB", "0", home_db=3)
    assert reason is not None and "not the gateway's database 3" in reason


def test_redis_int_reads_integers_as_redis_does() -> None:
    assert [redis_int(v) for v in (b"0", b"12", b"-3")] == [0, 12, -3]
    assert [redis_int(v) for v in (b"+1", b" 1", b"1_0", b"01", b"", b"1.0")] == [None] * 6
    assert redis_int(b"9" * 19) is None  # beyond a signed 64-bit integer


def test_every_key_spec_kind_is_known_and_short_commands_do_not_crash() -> None:
    samples = [[], [b"a"], [b"a", b"1", b"b", b"c", b"d"], [b"HELP"], [b"0", b"STREAMS"]]
    for name in KEY_SPECS:
        for rest in samples:
            args = [name.encode(), *rest]
            assert isinstance(locate_keys(name, args), Located | str), (name, rest)
            reason = check_key_prefix(name, args, b"app:")
            assert reason is None or isinstance(reason, str)


# -- through the policy: the database a request names ----------------------------------


def guard_check(
    args: tuple[str, ...],
    db: int | None,
    prefix: str | None = "app:",
    who: PolicyName = "all",
    **sections: Any,
) -> str | None:
    policy = CommandPolicy(Config.model_validate(sections))
    guard = policy.guard_for(Principal("t", policy=who, key_prefix=prefix))
    return guard([a.encode() for a in args], db)


def test_a_confined_credential_may_not_name_another_database() -> None:
    reason = guard_check(("GET", "app:k"), 3)
    assert reason is not None and "database 3" in reason and "redis.db = 0" in reason
    assert guard_check(("GET", "app:k"), 0) is None
    assert guard_check(("GET", "app:k"), None) is None
    assert guard_check(("GET", "k"), 3, prefix=None) is None  # unconfined: any database


def test_the_gateways_database_is_read_as_connections_select_it() -> None:
    from_url: dict[str, Any] = {"redis": {"url": "redis://127.0.0.1:6379/2"}}
    assert guard_check(("GET", "app:k"), 2, **from_url) is None
    assert guard_check(("GET", "app:k"), 0, **from_url) is not None
    assert guard_check(("GET", "app:k"), 5, redis={"db": 5}) is None
    reason = guard_check(("COPY", "app:a", "app:b", "DB", "0"), None, redis={"db": 5})
    assert reason is not None and "database 5" in reason


def test_scripts_are_refused_to_confined_credentials_whatever_their_policy() -> None:
    reason = guard_check(("EVAL", "return 1", "1", "app:k"), None, who="all")
    assert reason is not None and "do not declare" in reason
    assert guard_check(("EVAL", "return 1", "0"), None, prefix=None, who="all") is None

"""Webdis reply formats, compared byte for byte with what Webdis writes.

Expected bodies and ETags were read from a real Webdis (Debian's 0.1.9 against Valkey
8.1) for the same reply, or derived from Webdis's src/formats/*.c where 0.1.9 lacks the
format (MessagePack is not compiled into Debian's build; stream/geo objects are newer).
"""

from __future__ import annotations

import json

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_worker.protocols.webdis.etag import etag_of
from gateway_worker.protocols.webdis.formats import FORMATS, parse_info, render_custom, render_raw
from gateway_worker.protocols.webdis.json_format import _MISSING, json_value, render_json
from gateway_worker.protocols.webdis.msgpack_format import render_msgpack
from gateway_worker.redis.values import NIL_ARRAY, ReplyError, RespValue, Status


@pytest.mark.parametrize(
    ("verb", "reply", "body", "etag"),
    [
        ("SET", Status(b"OK"), b'{"SET":[true,"OK"]}', '"0db1124cf79ffeb80aff6d199d5822f8"'),
        ("GET", b"world", b'{"GET":"world"}', None),
        ("GET", None, b'{"GET":null}', '"dd88a02e07f3470502ef0a558558ee65"'),
        ("INCR", 1, b'{"INCR":1}', '"500e9bcdcbb1e98f25c1fbb880a96c99"'),
        ("TYPE", Status(b"none"), b'{"TYPE":[true,"none"]}', '"c3570f2969f90148f8ff7acd1d06b581"'),
        ("MGET", [b"1", None, b"2"], b'{"MGET":["1",null,"2"]}', None),
        ("ZRANGE", [b"a", b"1", b"b", b"2.5"], b'{"ZRANGE":["a","1","b","2.5"]}', None),
        ("HGETALL", [], b'{"HGETALL":{}}', '"1bcf29e0ce57a546847e6708bce63417"'),
        ("hgetall", [b"f1", b"v1", b"f2", b"2"], b'{"hgetall":{"f1":"v1","f2":"2"}}', None),
        ("GET", b'a\nb\x01"', b'{"GET":"a\\nb\\u0001\\""}', None),
        ("GET", "été".encode(), '{"GET":"été"}'.encode(), None),
        (
            "MAKE-ME-COFFEE",
            ReplyError("ERR unknown command 'MAKE-ME-COFFEE', with args beginning with: "),
            b'{"MAKE-ME-COFFEE":[false,"ERR unknown command \'MAKE-ME-COFFEE\', '
            b'with args beginning with: "]}',
            '"0905ac62381b5a799e632abd2b59aca3"',
        ),
    ],
)
def test_json_matches_webdis(verb: str, reply: object, body: bytes, etag: str | None) -> None:
    out = render_json(verb, reply)  # type: ignore[arg-type]
    assert out == body
    if etag is not None:
        assert etag_of(out) == etag


def test_jsonp_wraps_with_semicolon_and_newline() -> None:
    out = render_json("GET", b"world", "cb")
    assert out == b'cb({"GET":"world"});\n'
    assert etag_of(out) == '"11d907cdec83c9d34a222669124fd480"'  # Webdis 0.1.9


def test_nested_arrays_statuses_and_errors_in_arrays() -> None:
    # json_expand_array: status → string, nested array → array, error/nil → null
    reply: list[RespValue] = [Status(b"QUEUED"), [1, b"x", None], ReplyError("ERR x"), 7]
    assert render_json("EXEC", reply) == b'{"EXEC":["QUEUED",[1,"x",null],null,7]}'


def test_invalid_utf8_and_nul_are_kept_visible() -> None:
    assert render_json("GET", b"\xff\x00x") == '{"GET":"\ufffd\\u0000x"}'.encode()


def test_hgetall_with_a_non_string_value_is_omitted_like_webdis() -> None:
    assert render_json("HGETALL", [b"k", Status(b"OK")]) == b"{}"
    assert render_json("HGETALL", [b"odd"]) == b"{}"


def test_info_becomes_an_object_of_its_fields() -> None:
    info = (
        b"# Server\r\nredis_version:7.2.4\r\nos:Linux x:y\r\n\r\n"
        b"# Clients\r\nconnected_clients:1\r\n"
    )
    assert parse_info(info) == {
        "redis_version": "7.2.4",
        "os": "Linux x:y",
        "connected_clients": "1",
    }
    assert render_json("info", info) == (
        b'{"info":{"redis_version":"7.2.4","os":"Linux x:y","connected_clients":"1"}}'
    )


def test_stream_replies_become_webdis_objects() -> None:
    entries: list[RespValue] = [[b"1-1", [b"f", b"v", b"g", b"w"]]]
    assert json_value("XRANGE", entries) == [{"id": "1-1", "msg": {"f": "v", "g": "w"}}]
    assert json_value("XREAD", [[b"s", entries]]) == {
        "s": [{"id": "1-1", "msg": {"f": "v", "g": "w"}}]
    }
    summary: list[RespValue] = [1, b"1-1", b"1-1", [[b"c", b"1"]]]
    assert json_value("XPENDING", summary) == {
        "msgs": 1,
        "idmin": "1-1",
        "idmax": "1-1",
        "msgsperconsumer": {"c": "1"},
    }
    detail: list[RespValue] = [[b"1-1", b"c", 15, 1]]
    assert json_value("XPENDING", detail) == [
        {"id": "1-1", "owner": "c", "elapsedtime": 15, "deliveries": 1}
    ]
    assert render_json("XREAD", []) == b"{}"  # Webdis omits an empty XREAD object


def test_georadius_with_options_becomes_objects() -> None:
    reply: list[RespValue] = [[b"Palermo", b"190.4424", [b"13.36", b"38.11"]]]
    assert render_json("GEORADIUS", reply) == (
        b'{"GEORADIUS":[{"name":"Palermo","dist":"190.4424","coords":["13.36","38.11"]}]}'
    )
    assert render_json("GEORADIUS", [b"Palermo"]) == b'{"GEORADIUS":["Palermo"]}'


@pytest.mark.parametrize(
    ("reply", "raw"),
    [
        (b"world", b"$5\r\nworld\r\n"),
        (3, b":3\r\n"),
        (Status(b"hash"), b"+hash\r\n"),
        (ReplyError("ERR unknown command"), b"-ERR unknown command\r\n"),
        (None, b"$-1\r\n"),
        ([b"a", b"1"], b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"),
        ([5, b"x"], b"*2\r\n$1\r\n5\r\n$1\r\nx\r\n"),  # Webdis: integers in arrays as bulk
        ([b"1", None], b"*2\r\n$1\r\n1\r\n$-1\r\n"),  # Webdis drops the nil (unparseable)
        ([[b"a"], Status(b"OK")], b"*2\r\n*1\r\n$1\r\na\r\n+OK\r\n"),
    ],
)
def test_raw_is_resp(reply: object, raw: bytes) -> None:
    assert render_raw(reply) == raw  # type: ignore[arg-type]


def test_raw_etag_matches_webdis() -> None:
    assert etag_of(render_raw(3)) == '"bb179990de978339f3a40b05460a743c"'


@pytest.mark.parametrize(
    ("reply", "out"),
    [
        (b"world", b"world"),
        (6, b"6"),
        (Status(b"PONG"), b"+PONG"),
        (ReplyError("ERR x"), b"-ERR x"),
        ([b"a", b"b", b"c"], b"abc"),
        (None, None),
    ],
)
def test_custom_type_is_the_bare_value(reply: object, out: bytes | None) -> None:
    assert render_custom(reply) == out  # type: ignore[arg-type]


def test_custom_separator_counts_skipped_elements_like_webdis() -> None:
    assert render_custom([b"1", None, b"2"], b";") == b"1;2"
    assert render_custom([None, b"a"], b",") == b",a"  # index-based, as custom_array


def test_msgpack_uses_old_spec_raw_strings() -> None:
    assert render_msgpack(b"GET", b"hi") == b"\x81\xa3GET\xa2hi"
    long = b"x" * 40
    packed = render_msgpack(b"GET", long)
    assert packed[5:8] == b"\xda\x00\x28"  # raw16, not str8 (absent from the v4 spec)
    assert msgpack.unpackb(render_msgpack(b"SET", Status(b"OK")), raw=True) == {
        b"SET": [True, b"OK"]
    }
    assert msgpack.unpackb(render_msgpack(b"X", ReplyError("ERR e")), raw=True) == {
        b"X": [False, b"ERR e"]
    }
    assert msgpack.unpackb(render_msgpack(b"HGETALL", [b"a", b"1"]), raw=True) == {
        b"HGETALL": {b"a": b"1"}
    }
    # array elements: strings and integers, everything else nil (statuses included)
    assert msgpack.unpackb(render_msgpack(b"M", [b"a", 2, None, Status(b"OK")]), raw=True) == {
        b"M": [b"a", 2, None, None]
    }


def test_format_table_is_webdis_table() -> None:
    assert FORMATS["raw"] == ("raw", "binary/octet-stream")
    assert FORMATS["msg"] == ("msgpack", "application/x-msgpack")
    assert FORMATS["js"] == ("json", "application/javascript")
    assert FORMATS["jpg"] == FORMATS["jpeg"] == ("custom", "image/jpeg")
    assert {k for k, v in FORMATS.items() if v[0] == "custom"} == {
        "bin",
        "txt",
        "html",
        "xhtml",
        "xml",
        "png",
        "jpg",
        "jpeg",
        "css",
    }


_SCALARS = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.binary(max_size=12),
    st.binary(max_size=12).map(Status),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=12).map(ReplyError),
)
_REPLIES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4), max_leaves=12)


@given(st.sampled_from(["GET", "hgetall", "INFO", "XRANGE", "é"]), _REPLIES)
def test_fast_json_paths_equal_the_generic_encoder(verb: str, reply: RespValue) -> None:
    value = json_value(verb, reply)
    expected = (
        "{}"
        if value is _MISSING
        else json.dumps({verb: value}, ensure_ascii=False, separators=(",", ":"))
    )
    assert render_json(verb, reply) == expected.encode()


@pytest.mark.parametrize(
    ("reply", "plain"),
    [
        (NIL_ARRAY, None),
        ([b"1", NIL_ARRAY], [b"1", None]),
        ([b"f", NIL_ARRAY], [b"f", None]),  # HGETALL-shaped
    ],
)
def test_nil_array_renders_as_nil_like_webdis(reply: RespValue, plain: RespValue) -> None:
    # hiredis gives Webdis one NIL type for `*-1` and `$-1`: every format shows a nil.
    for verb in ("BLPOP", "HGETALL"):
        assert render_json(verb, reply) == render_json(verb, plain)
        assert render_msgpack(verb.encode(), reply) == render_msgpack(verb.encode(), plain)
    assert render_raw(reply) == render_raw(plain)
    assert render_custom(reply, b",") == render_custom(plain, b",")

"""RESP encoding and the reply parser that keeps simple strings (Status) apart."""

from __future__ import annotations

import pytest

from gateway_worker.redis.values import NIL_ARRAY, ReplyError, RespValue, Status
from gateway_worker.redis.wire import (
    ProtocolViolation,
    ReplyParser,
    encode_command,
    encode_reply,
)

STREAM = (
    b"+OK\r\n"
    b"$2\r\nOK\r\n"
    b":-42\r\n"
    b"$-1\r\n"
    b"-ERR unknown command\r\n"
    b"*3\r\n+QUEUED\r\n$4\r\na\r\nb\r\n*2\r\n:1\r\n-WRONGTYPE x\r\n"
    b"*-1\r\n"
    b"*0\r\n"
    b"$0\r\n\r\n"
    b"*2\r\n*-1\r\n$-1\r\n"
)


def _check(replies: list[RespValue]) -> None:
    assert len(replies) == 10
    ok_status, ok_bulk, number, nil, error, nested, nil_array, empty, empty_bulk, nils = replies
    assert type(ok_status) is Status and ok_status == b"OK"
    assert type(ok_bulk) is bytes and ok_bulk == b"OK"
    assert number == -42
    assert nil is None
    assert type(error) is ReplyError and error == "ERR unknown command"
    assert isinstance(nested, list)
    assert type(nested[0]) is Status
    assert type(nested[1]) is bytes and nested[1] == b"a\r\nb"
    inner = nested[2]
    assert isinstance(inner, list)
    assert inner[0] == 1 and type(inner[1]) is ReplyError
    assert nil_array is NIL_ARRAY and not nil_array
    assert empty == []
    assert empty_bulk == b""
    # A nil array nested in an array (a BLPOP inside MULTI) keeps its kind too.
    assert isinstance(nils, list) and nils[0] is NIL_ARRAY and nils[1] is None


def test_parser_whole_stream_at_once() -> None:
    _check(ReplyParser().feed(STREAM))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_parser_any_chunking(chunk: int) -> None:
    parser = ReplyParser()
    replies: list[RespValue] = []
    for i in range(0, len(STREAM), chunk):
        replies.extend(parser.feed(STREAM[i : i + chunk]))
    _check(replies)


def test_parser_large_bulk_split_across_feeds() -> None:
    payload = b"x" * 100_000
    wire = b"$%d\r\n%s\r\n+PONG\r\n" % (len(payload), payload)
    parser = ReplyParser()
    assert parser.feed(wire[:70_000]) == []
    out = parser.feed(wire[70_000:])
    assert out == [payload, b"PONG"]
    assert type(out[1]) is Status


def test_parser_rejects_garbage() -> None:
    with pytest.raises(ProtocolViolation):
        ReplyParser().feed(b"?what\r\n")


def test_encode_command_is_binary_safe() -> None:
    assert encode_command([b"SET", b"k", b"a\r\nb"]) == (
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"
    )


def test_encode_reply_round_trip() -> None:
    replies = ReplyParser().feed(STREAM)
    # Byte for byte, nil arrays (``*-1``) and nil bulks (``$-1``) included.
    assert b"".join(encode_reply(r) for r in replies) == STREAM


def test_nil_array_is_one_falsy_singleton() -> None:
    import copy
    import pickle

    from gateway_worker.redis.values import NilArray

    assert NilArray() is NIL_ARRAY
    assert copy.deepcopy([NIL_ARRAY])[0] is NIL_ARRAY
    assert pickle.loads(pickle.dumps(NIL_ARRAY)) is NIL_ARRAY

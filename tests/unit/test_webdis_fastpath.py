"""The Webdis handler's fast path (plain GET, no query) answers exactly like the generic one.

The generic path is forced with a query parameter Webdis ignores (``?x=y``), so both
answers come from the same request otherwise. The executor is a fake on purpose.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import Request, Response
from gateway_worker.protocols.webdis import handle
from gateway_worker.protocols.webdis.fast_path import simple_args
from gateway_worker.protocols.webdis.json_format import render_json, render_json_scalar
from gateway_worker.protocols.webdis.requests import parse_command
from gateway_worker.redis.values import NilArray, ReplyError, RespValue, Status
from tests.fakes import SingleCommandRedis


class OneReply(SingleCommandRedis):
    """Answers every command with ``reply`` (or fails when ``reply`` is an exception)."""

    def __init__(self, reply: RespValue | Exception) -> None:
        self.reply = reply
        self.calls: list[tuple[list[bytes], int | None]] = []

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        self.calls.append((list(args), db))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def answer(
    path: str,
    reply: RespValue | Exception,
    *,
    generic: bool,
    headers: dict[str, str] | None = None,
    refuse: str | None = None,
    max_arguments: int | None = None,
) -> tuple[tuple[object, ...], list[tuple[list[bytes], int | None]], list[list[bytes]]]:
    redis = OneReply(reply)
    guarded: list[list[bytes]] = []

    def guard(args: Sequence[bytes], db: int | None = None) -> str | None:
        guarded.append(list(args))
        return refuse

    req = Request(
        method="GET",
        path=path,
        query=[("x", "y")] if generic else [],
        headers=headers or {},
        body=b"",
        client_ip="127.0.0.1",
    )
    response: Response = asyncio.run(handle(req, redis, guard, max_arguments=max_arguments))
    seen = (
        response.status,
        response.body,
        response.content_type,
        response.headers,
        response.command,
        response.stream is None,
    )
    return seen, redis.calls, guarded


REPLIES: list[RespValue | Exception] = [
    b"value",
    b"",
    b'caf\xc3\xa9 "quoted" \\ \n\x00',
    b"\xff\xfe bad utf-8",
    Status(b"OK"),
    Status(b"QUEUED"),
    0,
    42,
    -7,
    None,
    NilArray(),
    ReplyError("ERR unknown command"),
    [b"a", 1, None, [b"b"]],
    [],
    b"# Server\r\nredis_version:7.2.0\r\n",
    RedisUnavailable("refused"),
]
PATHS = [
    "/GET/bench:key",
    "/SET/bench:set/" + "x" * 32,
    "/INFO",
    "/info",
    "/GET",
    "/GET/",
    "/HGETALL/h",
    "/get/k",
    "/GET/a.b",
    "/GET/k.txt",
    "/GET/a%20b",
    "/GET/a+b",
    "/3/GET/k",
    "/3",
    "/",
    "//GET",
    "/GET//x",
    "/XRANGE/s/-/+",
    "/SUBSCRIBE/c",
    "/GET/k\u00e9",
    "/G-T/k",
    "/MSET/a/1/b/2/c/3",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("reply", REPLIES, ids=repr)
def test_fast_path_answers_like_the_generic_path(path: str, reply: RespValue | Exception) -> None:
    assert answer(path, reply, generic=False) == answer(path, reply, generic=True)


@pytest.mark.parametrize("path", ["/GET/k", "/SET/k/v", "/INFO"])
def test_fast_path_etag_304_refusal_and_argument_limit_match(path: str) -> None:
    fresh, _, _ = answer(path, b"v", generic=True)
    etag = dict(fresh[3])["ETag"]  # type: ignore[call-overload]
    for headers in (
        {"if-none-match": etag},
        {"if-none-match": f'"x", W/{etag}'},
        {"if-none-match": "*"},
        {"if-none-match": '"other"'},
        {},
    ):
        fast = answer(path, b"v", generic=False, headers=headers)
        assert fast == answer(path, b"v", generic=True, headers=headers)
    assert answer(path, b"v", generic=False, headers={"if-none-match": etag})[0][0] == 304
    refused = answer(path, b"v", generic=False, refuse="command refused")
    assert refused == answer(path, b"v", generic=True, refuse="command refused")
    assert refused[0][0] == 403 and refused[1] == []
    for limit in (0, 1, 5):
        fast = answer(path, b"v", generic=False, max_arguments=limit)
        assert fast == answer(path, b"v", generic=True, max_arguments=limit)


_SEGMENT = st.text(st.sampled_from('abcXYZ019:_-.%+?/é"~ '), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SEGMENT, min_size=1, max_size=4))
def test_simple_args_is_what_parse_command_gives_when_it_applies(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    args = simple_args(path)
    if args is not None:
        assert args == parse_command(path[1:].encode()).args
    else:
        assert any(c in path for c in "%+.?é") or not segments[0].isalnum() or segments[0].isdigit()


_SCALARS = st.one_of(
    st.binary(max_size=12),
    st.binary(max_size=12).map(Status),
    st.integers(),
    st.none(),
    st.text(max_size=8).map(ReplyError),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["GET", "SET", "INFO", "info", "HGETALL", "XRANGE", 'x"y']), _SCALARS)
def test_render_json_scalar_equals_render_json(verb: str, reply: RespValue) -> None:
    fast = render_json_scalar(verb, verb.upper() == "INFO", reply)
    if fast is not None:
        assert fast == render_json(verb, reply)
    else:  # only what the fast renderer leaves to the generic one
        assert isinstance(reply, ReplyError) or (
            verb.upper() == "INFO" and isinstance(reply, bytes)
        )

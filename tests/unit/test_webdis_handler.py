"""Webdis request parsing and the handler's HTTP answers, with a scripted executor.

The executor here is a fake on purpose (unit tests); the same paths run against a
real Redis in tests/integration/test_webdis.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway_worker.config import Config
from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import Request, Response
from gateway_worker.protocols.webdis import handle
from gateway_worker.protocols.webdis.json_format import render_json
from gateway_worker.protocols.webdis.requests import (
    WebdisRequestError,
    decode_arg,
    parse_command,
    parse_options,
)
from gateway_worker.redis.connection import ConnectOptions
from gateway_worker.redis.values import ReplyError, RespValue, Status
from gateway_worker.streams.services import StreamServices
from tests.fakes import FakeMetrics, SingleCommandRedis
from tests.helpers import make_request as request


class ScriptedRedis(SingleCommandRedis):
    """Records commands; answers from a dict keyed by the command name."""

    def __init__(self, replies: dict[bytes, RespValue] | None = None, down: bool = False):
        self.replies = replies or {}
        self.down = down
        self.calls: list[tuple[list[bytes], int | None]] = []

    async def execute(self, args: Sequence[bytes], db: int | None = None) -> RespValue:
        if self.down:
            raise RedisUnavailable("connection to Redis at redis://127.0.0.1:1 refused")
        self.calls.append((list(args), db))
        return self.replies.get(args[0].upper(), Status(b"OK"))

    async def ping(self) -> bool:
        return not self.down


def run(
    req: Request,
    redis: ScriptedRedis | None = None,
    refuse: str | None = None,
    max_arguments: int | None = None,
) -> tuple[Response, ScriptedRedis]:
    redis = redis or ScriptedRedis()
    response = asyncio.run(
        handle(req, redis, lambda args, db=None: refuse, max_arguments=max_arguments)
    )
    return response, redis


def test_path_parsing_db_extension_and_percent_decoding() -> None:
    cmd = parse_command(b"7/SET/a%2fb/c+d%2e.txt")
    assert cmd.args == [b"SET", b"a/b", b"c d."]
    assert cmd.db == 7
    assert (cmd.format, cmd.content_type) == ("custom", "text/plain")


def test_unknown_extension_stays_in_the_argument() -> None:
    cmd = parse_command(b"GET/file.tar.gz")
    assert cmd.args == [b"GET", b"file.tar.gz"]
    assert cmd.content_type == "application/json"


def test_extension_only_in_last_segment() -> None:
    assert parse_command(b"SET/a.json/b").args == [b"SET", b"a.json", b"b"]


def test_command_name_is_not_decoded_and_trailing_slash_is_an_empty_arg() -> None:
    assert parse_command(b"G%45T/k").args == [b"G%45T", b"k"]
    assert parse_command(b"SET/k/").args == [b"SET", b"k", b""]


def test_put_body_is_the_last_argument_only_when_present() -> None:
    assert parse_command(b"SET/k", b"a/b.c").args == [b"SET", b"k", b"a/b.c"]
    assert parse_command(b"SET/k", b"").args == [b"SET", b"k"]


def test_type_query_forces_bare_value_with_that_mime() -> None:
    cmd = parse_command(b"GET/k.json", forced_type="application/pdf")
    assert (cmd.format, cmd.content_type, cmd.args) == ("custom", "application/pdf", [b"GET", b"k"])


def test_decode_arg_keeps_invalid_escapes_and_decodes_plus() -> None:
    assert decode_arg(b"a+b%2Bc%zz%4") == b"a b+c%zz%4"
    assert decode_arg(b"%ff%00") == b"\xff\x00"


def test_bad_db_and_empty_command() -> None:
    with pytest.raises(WebdisRequestError) as exc:
        parse_command(b"99/GET/k")
    assert exc.value.status == 400
    with pytest.raises(WebdisRequestError) as exc:
        parse_command(b"")
    assert exc.value.status == 403


def test_options_last_wins_and_jsonp_name_is_checked() -> None:
    opts = parse_options([("jsonp", "a"), ("callback", "ns.cb"), ("sep", ","), ("type", "x/y")])
    assert (opts.jsonp, opts.separator, opts.mime_type) == ("ns.cb", b",", "x/y")
    with pytest.raises(WebdisRequestError):
        parse_options([("jsonp", "alert(1)//")])


def test_get_json_with_etag() -> None:
    response, redis = run(request("GET", "/SET/hello/world"))
    assert response.status == 200
    assert response.body == b'{"SET":[true,"OK"]}'
    assert response.content_type == "application/json"
    assert ("ETag", '"0db1124cf79ffeb80aff6d199d5822f8"') in response.headers
    assert redis.calls == [([b"SET", b"hello", b"world"], None)]
    assert response.command == "SET"  # for metrics and the access log


def test_matching_if_none_match_gives_304() -> None:
    headers = {"if-none-match": '"0db1124cf79ffeb80aff6d199d5822f8"'}
    response, _ = run(request("GET", "/SET/hello/world", headers=headers))
    assert response.status == 304
    assert response.body == b""
    other, _ = run(request("GET", "/SET/hello/world", headers={"if-none-match": '"x"'}))
    assert other.status == 200


def test_db_prefix_is_passed_to_the_executor() -> None:
    _, redis = run(request("GET", "/3/GET/k"))
    assert redis.calls == [([b"GET", b"k"], 3)]


def test_post_body_and_put_body() -> None:
    _, redis = run(request("POST", "/", body=b"SET/k/hello%20world"))
    assert redis.calls[0][0] == [b"SET", b"k", b"hello world"]
    _, redis = run(request("PUT", "/SET/k", body=b"raw/body.png"))
    assert redis.calls[0][0] == [b"SET", b"k", b"raw/body.png"]


def test_nil_in_bare_format_is_404() -> None:
    response, _ = run(request("GET", "/GET/k.txt"), ScriptedRedis({b"GET": None}))
    assert response.status == 404
    assert response.body == b""


def test_bare_format_content_type_and_disposition() -> None:
    response, _ = run(
        request("GET", "/GET/k.png", [("filename", 'a"b.png')]), ScriptedRedis({b"GET": b"\x89PNG"})
    )
    assert (response.status, response.content_type, response.body) == (200, "image/png", b"\x89PNG")
    assert ("Content-Disposition", 'attachment; filename="ab.png"') in response.headers


def test_jsonp_keeps_json_content_type_unless_js_extension() -> None:
    response, _ = run(request("GET", "/GET/k", [("jsonp", "cb")]), ScriptedRedis({b"GET": b"v"}))
    assert response.body == b'cb({"GET":"v"});\n'
    assert response.content_type == "application/json"  # as Webdis: only .js changes it
    response, _ = run(
        request("GET", "/GET/k.js", [("callback", "cb")]), ScriptedRedis({b"GET": b"v"})
    )
    assert response.content_type == "application/javascript"


def test_redis_error_is_200_false() -> None:
    response, _ = run(request("GET", "/NOPE"), ScriptedRedis({b"NOPE": ReplyError("ERR unknown")}))
    assert (response.status, response.body) == (200, b'{"NOPE":[false,"ERR unknown"]}')


def test_refused_command_is_403_with_reason_and_never_runs() -> None:
    response, redis = run(request("GET", "/FLUSHALL"), refuse="command FLUSHALL is refused")
    assert response.status == 403
    assert json.loads(response.body) == {"error": "command FLUSHALL is refused"}
    assert redis.calls == []


def test_redis_down_is_503_json() -> None:
    response, _ = run(request("GET", "/GET/k"), ScriptedRedis(down=True))
    assert response.status == 503
    assert "Redis unavailable" in json.loads(response.body)["error"]


def test_subscribe_without_redis_is_503() -> None:
    config = Config.model_validate(
        {"redis": {"url": "redis://127.0.0.1:1", "connection_timeout_seconds": 0.5}}
    )

    async def main() -> tuple[Response, int]:
        options = ConnectOptions.from_config(config.redis)
        streams = StreamServices(config, lambda: options, FakeMetrics())
        try:
            guard = lambda args, db=None: None  # noqa: E731 - everything allowed
            response = await handle(
                request("GET", "/SUBSCRIBE/ch"), ScriptedRedis(), guard, streams=streams
            )
            return response, len(streams.registry)
        finally:
            await streams.close()

    response, still_open = asyncio.run(main())
    assert response.status == 503
    assert response.stream is None and still_open == 0


def test_subscribe_without_stream_services_is_501() -> None:
    response, _ = run(request("GET", "/SUBSCRIBE/ch"))
    assert response.status == 501 and response.stream is None


def test_methods() -> None:
    response, _ = run(request("DELETE", "/GET/k"))
    assert response.status == 405
    assert ("Allow", "GET,POST,PUT,OPTIONS") in response.headers
    response, _ = run(request("OPTIONS", "/GET/k"))
    assert (response.status, response.body, response.content_type) == (200, b"", "text/html")


def test_empty_path_is_403_and_argument_limit_is_400() -> None:
    response, _ = run(request("GET", "/"))
    assert response.status == 403
    response, redis = run(request("GET", "/MSET/a/1/b/2"), max_arguments=3)
    assert response.status == 400
    assert "server.max_arguments" in json.loads(response.body)["error"]
    assert redis.calls == []


def test_an_empty_command_segment_before_more_path_is_a_malformed_path_400() -> None:
    for path in ("//GET/k", "/0//GET/k", "//"):
        response, redis = run(request("GET", path))
        assert response.status == 400, path
        assert "malformed path" in json.loads(response.body)["error"]
        assert redis.calls == []


def test_the_guard_is_asked_with_the_database_of_the_url() -> None:
    asked: list[tuple[list[bytes], int | None]] = []

    def guard(args: list[bytes], db: int | None = None) -> str | None:
        asked.append((args, db))
        return "database 3 is not yours" if db == 3 else None

    redis = ScriptedRedis()
    response = asyncio.run(handle(request("GET", "/3/GET/k"), redis, guard))
    assert response.status == 403 and redis.calls == []
    asyncio.run(handle(request("GET", "/GET/k"), redis, guard))
    assert asked == [([b"GET", b"k"], 3), ([b"GET", b"k"], None)]


_ARGS = st.lists(st.binary(max_size=24), max_size=6)


def _encode(arg: bytes) -> bytes:
    # quote() leaves "." alone; Webdis clients encode it (%2e) so it is not an extension.
    return quote_from_bytes(arg, safe="").replace(".", "%2E").encode()


@given(_ARGS, st.sampled_from(["", ".json", ".raw", ".txt", ".msg"]))
def test_any_percent_encoded_arguments_round_trip(args: list[bytes], ext: str) -> None:
    uri = b"/".join([b"SET", *(_encode(a) for a in args)]) + ext.encode()
    cmd = parse_command(uri)
    assert cmd.args == [b"SET", *args]


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_json_strings_round_trip(text: str) -> None:
    body = render_json("GET", text.encode())
    assert json.loads(body) == {"GET": text}

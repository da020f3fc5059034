"""The Webdis fast path: a ``GET`` without query whose path needs no Webdis rule.

No escape, ``+``, ``.``, database number (``simple_args``): the generic parsing and
options are skipped and scalar replies are rendered directly (``render_json_scalar``).
The answer is the same, byte for byte, as the generic path's
(tests/unit/test_webdis_fastpath.py compares both).
"""

from __future__ import annotations

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.protocols.json_bodies import error_response
from gateway_worker.protocols.webdis.etag import etag_matches, etag_of
from gateway_worker.protocols.webdis.json_format import render_json, render_json_scalar
from gateway_worker.protocols.webdis.requests import SUBSCRIBE
from gateway_worker.redis.executor import RedisExecutor


def simple_args(path: str) -> list[bytes] | None:
    """``/CMD/arg/...`` as arguments when no Webdis parsing rule applies, else None.

    None (the generic path decides) for anything with a percent-escape, ``+``, a ``.``
    (possible extension), a ``?``, non-ASCII, a leading database number, an empty or
    non-alphanumeric command name: for what remains, ``parse_command`` would only
    split on ``/``.
    """
    if (
        not path.startswith("/")
        or not path.isascii()
        or "%" in path
        or "+" in path
        or "." in path
        or "?" in path
    ):
        return None
    args = path[1:].encode("ascii").split(b"/")
    verb = args[0]
    if not verb.isalnum() or verb.isdigit():
        return None
    return args


async def handle_simple(
    request: Request,
    redis: RedisExecutor,
    guard: CommandGuard,
    max_arguments: int | None,
) -> Response | None:
    """The common GET without query, extension or escapes, answered like ``handler._run``.

    Returns None (nothing done: the guard is not asked, Redis not called) when the
    request needs the generic path. Must give the same answer as the generic path
    (tests/unit/test_webdis_fastpath.py compares them).
    """
    args = simple_args(request.path)
    if args is None:
        return None
    verb_bytes = args[0]
    upper = verb_bytes.upper()
    if (max_arguments is not None and len(args) - 1 > max_arguments) or (
        len(args) >= 2 and upper in SUBSCRIBE
    ):
        return None
    verb = verb_bytes.decode("ascii")
    response = await _run_simple(request, redis, guard, args, verb=verb, is_info=upper == b"INFO")
    response.command = verb.upper()
    return response


async def _run_simple(
    request: Request,
    redis: RedisExecutor,
    guard: CommandGuard,
    args: list[bytes],
    *,
    verb: str,
    is_info: bool,
) -> Response:
    reason = guard(args)
    if reason is not None:
        return error_response(403, reason)
    try:
        reply = await redis.execute(args, db=None)
    except RedisUnavailable as exc:
        return error_response(503, f"Redis unavailable: {exc}")
    out = render_json_scalar(verb, is_info, reply)
    if out is None:
        out = render_json(verb, reply, None)
    etag = etag_of(out)
    header = request.headers.get("if-none-match")
    if header and etag_matches(header, etag):
        return Response(304, b"", headers=[("ETag", etag)])
    return Response(200, out, headers=[("ETag", etag)])

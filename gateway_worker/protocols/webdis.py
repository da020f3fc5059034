"""The Webdis-compatible URL protocol (API.md §2), as Webdis parses and answers it.

Interface used by the app (mounted at ``api.webdis_prefix``)::

    response = await handle(request, redis, guard, max_arguments=config.server.max_arguments)

``request.path`` is percent-encoded and relative to the mount prefix. The app has
already done CORS preflights, authentication, rate limiting and body limits; this
module parses the command, asks ``guard`` (403 with its reason when refused), runs the
command with ``redis`` and formats the reply (``webdis_format``).

Requests (Webdis's ``cmd_run``):

* ``GET /[DB/]CMD/arg1/.../argN[.ext][?query]``; ``POST /`` with ``[DB/]CMD/arg/...`` as
  the body (parsed the same way, up to a ``?``); ``PUT /[DB/]CMD/a1/.../aN-1`` with the
  body as the last argument (when not empty); ``OPTIONS`` → 200 empty; others → 405.
* A first segment of digits selects the database (0-15, the range ``redis.db`` allows).
* Arguments (not the command name) are percent-decoded, and ``+`` is a space, as in
  Webdis: ``%2f`` is a ``/`` that does not split, ``%2e`` a ``.`` that is not an extension,
  ``%2b`` a ``+``.
* The extension is looked for in the last segment only, after its last ``.``; an
  unknown extension stays part of the argument.
* Query: ``type=mime/type`` (bare value with that Content-Type), ``jsonp=``/``callback=``
  (``cb(<json>);\\n``; the name must be a JavaScript identifier path, else 400),
  ``sep=`` (separator for arrays in bare-value formats), ``filename=``
  (``Content-Disposition: attachment; filename="..."``).

Replies: 200 with the formatted reply (Redis errors included, as ``[false,"ERR ..."]``)
and ``ETag: "<md5 hex of the body>"``; 304 (empty) when ``If-None-Match`` carries that
ETag; 404 for nil in a bare-value format; 403 ``{"error": ...}`` for an empty command or
a command refused by ``guard``; 400 for malformed requests; 503 ``{"error": ...}`` when
Redis cannot be reached.

Hot path: a ``GET`` without query whose path needs no Webdis rule (no escape, ``+``,
``.``, database number; ``simple_args``) skips the generic parsing and options and renders
scalar replies directly (``render_json_scalar``); the answer is the same, byte for byte
(tests/unit/test_webdis_fastpath.py compares both paths).

``SUBSCRIBE``/``PSUBSCRIBE`` with at least one channel answer a chunked stream
(``Response.stream``): one formatted message per chunk, starting with the subscription
confirmations, on a dedicated connection that is released (and, being subscribed,
closed by the executor) when the stream is closed; the app closes it
(``aclose()``) when the client goes away.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.protocols.resp_encode import error_response
from gateway_worker.protocols.webdis_format import (
    DEFAULT_FORMAT,
    FORMATS,
    render_custom,
    render_json,
    render_json_scalar,
    render_msgpack,
    render_raw,
)
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.values import ReplyError, RespValue

MAX_DB = 15
ALLOWED_METHODS = "GET,POST,PUT,OPTIONS"
_JSONP_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*")
_SUBSCRIBE = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE"})


class WebdisRequestError(Exception):
    """A request that cannot be turned into a command (status and message for the client)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Options:
    """Query-string options Webdis understands (the last occurrence wins)."""

    mime_type: str | None = None
    jsonp: str | None = None
    separator: bytes | None = None
    filename: str | None = None


@dataclass(slots=True)
class WebdisCommand:
    """A parsed request: the command, its database and the reply format."""

    args: list[bytes]
    db: int | None
    format: str  # json | raw | msgpack | custom
    content_type: str


def parse_options(query: list[tuple[str, str]]) -> Options:
    """Webdis's query options; raises ``WebdisRequestError`` for a bad JSONP name."""
    if not query:
        return Options()
    mime_type = jsonp = filename = None
    separator: bytes | None = None
    for name, value in query:
        if name == "type" and value:
            mime_type = value
        elif name in ("jsonp", "callback") and value:
            jsonp = value
        elif name == "sep":
            separator = value.encode()
        elif name == "filename" and value:
            filename = value
    if jsonp is not None and (len(jsonp) > 128 or not _JSONP_NAME.fullmatch(jsonp)):
        raise WebdisRequestError(
            400, "jsonp/callback must be a JavaScript name like cb or ns.cb (at most 128 chars)"
        )
    if mime_type is not None and not _is_header_safe(mime_type):
        raise WebdisRequestError(400, "type must be a MIME type without control characters")
    return Options(mime_type, jsonp, separator, filename)


def decode_arg(raw: bytes) -> bytes:
    """Percent-decode one argument; ``+`` is a space (Webdis's ``decode_uri``)."""
    if b"%" not in raw and b"+" not in raw:
        return raw
    return unquote_to_bytes(raw.replace(b"+", b" "))


def parse_command(
    uri: bytes, body: bytes | None = None, forced_type: str | None = None
) -> WebdisCommand:
    """Parse ``[DB/]CMD/arg/...[.ext]`` (no leading slash) plus an optional PUT body."""
    if b"?" in uri:
        uri = uri.split(b"?", 1)[0]
    fmt, content_type = DEFAULT_FORMAT
    dot = uri.rfind(b".")
    if dot > 0 and dot > uri.rfind(b"/"):
        found = FORMATS.get(uri[dot + 1 :].decode("latin-1"))
        if found is not None:
            fmt, content_type = found
            uri = uri[:dot]
    if forced_type is not None:
        fmt, content_type = "custom", forced_type
    segments = uri.split(b"/")
    db: int | None = None
    if len(segments) > 1 and segments[0].isdigit():
        db = int(segments[0])
        if db > MAX_DB:
            raise WebdisRequestError(400, f"database {db} is out of range (0-{MAX_DB})")
        segments = segments[1:]
    if not segments[0]:
        raise WebdisRequestError(403, "empty command: expected /CMD/arg1/.../argN")
    args = [segments[0], *[decode_arg(s) for s in segments[1:]]]
    if body:
        args.append(body)
    return WebdisCommand(args, db, fmt, content_type)


def _is_header_safe(value: str) -> bool:
    return all(32 <= ord(c) < 127 for c in value)


def _path_bytes(path: str) -> bytes:
    try:
        return path.encode("latin-1")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")


def etag_of(body: bytes) -> str:
    """Webdis's ETag: the MD5 of the body, hex, in double quotes."""
    return '"' + hashlib.md5(body).hexdigest() + '"'  # noqa: S324 - Webdis's ETag is MD5, not security


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return header.strip() == etag or any(
        tag.strip() in (etag, "*", "W/" + etag) for tag in header.split(",")
    )


def _renderer(cmd: WebdisCommand, options: Options) -> Callable[[RespValue], bytes | None]:
    verb_bytes = cmd.args[0]
    verb = verb_bytes.decode("utf-8", "replace")
    if cmd.format == "raw":
        return render_raw
    if cmd.format == "msgpack":
        return lambda reply: render_msgpack(verb_bytes, reply)
    if cmd.format == "custom":
        return lambda reply: render_custom(reply, options.separator)
    return lambda reply: render_json(verb, reply, options.jsonp)


def _disposition(filename: str) -> tuple[str, str]:
    safe = "".join(c for c in filename if 32 <= ord(c) < 127 and c not in '"\\')
    return ("Content-Disposition", f'attachment; filename="{safe}"')


async def handle(
    request: Request,
    redis: RedisExecutor,
    guard: CommandGuard,
    *,
    max_arguments: int | None = None,
) -> Response:
    """Answer one Webdis request (see the module docstring)."""
    method = request.method
    if method == "GET" and not request.query:
        fast = await _handle_simple(request, redis, guard, max_arguments)
        if fast is not None:
            return fast
    if method == "OPTIONS":
        return Response(200, b"", content_type="text/html")
    if method in ("GET", "PUT"):
        uri, body = _path_bytes(request.path).removeprefix(b"/"), None
        if method == "PUT":
            body = request.body
    elif method == "POST":
        uri, body = request.body, None
    else:
        return error_response(
            405, f"method {method} not allowed (GET, POST, PUT, OPTIONS)",
            headers=[("Allow", ALLOWED_METHODS)],
        )
    try:
        options = parse_options(request.query)
        cmd = parse_command(uri, body, options.mime_type)
    except WebdisRequestError as exc:
        return error_response(exc.status, exc.message)
    if max_arguments is not None and len(cmd.args) - 1 > max_arguments:
        return error_response(
            400, f"too many arguments: {len(cmd.args) - 1} > server.max_arguments "
            f"({max_arguments})"
        )
    response = await _run(request, redis, guard, cmd, options)
    response.command = cmd.args[0].decode("utf-8", "replace").upper()
    return response


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


async def _handle_simple(
    request: Request,
    redis: RedisExecutor,
    guard: CommandGuard,
    max_arguments: int | None,
) -> Response | None:
    """The common GET without query, extension or escapes, answered like ``_run``.

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
        len(args) >= 2 and upper in _SUBSCRIBE
    ):
        return None
    verb = verb_bytes.decode("ascii")
    response = await _run_simple(
        request, redis, guard, args, verb=verb, is_info=upper == b"INFO"
    )
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
    if header and _etag_matches(header, etag):
        return Response(304, b"", headers=[("ETag", etag)])
    return Response(200, out, headers=[("ETag", etag)])


async def _run(
    request: Request,
    redis: RedisExecutor,
    guard: CommandGuard,
    cmd: WebdisCommand,
    options: Options,
) -> Response:
    reason = guard(cmd.args)
    if reason is not None:
        return error_response(403, reason)
    render = _renderer(cmd, options)
    extra = [_disposition(options.filename)] if options.filename else []
    if len(cmd.args) >= 2 and cmd.args[0].upper() in _SUBSCRIBE:
        return await _subscribe(cmd, redis, render, extra)
    try:
        reply = await redis.execute(cmd.args, db=cmd.db)
    except RedisUnavailable as exc:
        return error_response(503, f"Redis unavailable: {exc}")
    out = render(reply)
    if out is None:
        return Response(404, b"", content_type=cmd.content_type)
    etag = etag_of(out)
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(304, b"", content_type=cmd.content_type, headers=[("ETag", etag)])
    return Response(200, out, content_type=cmd.content_type, headers=[*extra, ("ETag", etag)])


async def _subscribe(
    cmd: WebdisCommand,
    redis: RedisExecutor,
    render: Callable[[RespValue], bytes | None],
    extra: list[tuple[str, str]],
) -> Response:
    """Start a SUBSCRIBE/PSUBSCRIBE stream; 503 if Redis cannot be reached first."""
    stack = AsyncExitStack()
    try:
        conn = await stack.enter_async_context(redis.dedicated(cmd.db))
        first = await conn.execute(cmd.args, None)
    except RedisUnavailable as exc:
        await stack.aclose()
        return error_response(503, f"Redis unavailable: {exc}")
    except BaseException:
        await stack.aclose()
        raise
    if isinstance(first, ReplyError):
        await stack.aclose()
        out = render(first) or b""
        return Response(200, out, content_type=cmd.content_type,
                        headers=[*extra, ("ETag", etag_of(out))])

    async def messages() -> AsyncIterator[bytes]:
        try:
            reply: RespValue = first
            while True:
                chunk = render(reply)
                if chunk:
                    yield chunk
                try:
                    reply = await conn.read(None)
                except RedisUnavailable:
                    return  # Redis went away: end the stream; the client may resubscribe
        finally:
            await stack.aclose()

    return Response(200, content_type=cmd.content_type, headers=extra, stream=messages())

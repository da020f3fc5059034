"""The Webdis-compatible URL protocol (API.md §2), as Webdis parses and answers it.

Interface used by the app (mounted at ``api.webdis_prefix``)::

    response = await handle(request, redis, guard, max_arguments=config.server.max_arguments)

``request.path`` is percent-encoded and relative to the mount prefix. The app has
already done CORS preflights, authentication, rate limiting and body limits; this
module parses the command, asks ``guard`` (403 with its reason when refused), runs the
command with ``redis`` and formats the reply (``formats``, ``json_format``,
``msgpack_format``).

Requests (Webdis's ``cmd_run``; parsed in ``requests``):

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
a command refused by ``guard`` (asked with the request's database: a credential
confined to a key prefix may not use another one); 400 for malformed requests
(``//GET/k``: an empty command segment followed by more); 503 ``{"error": ...}`` when
Redis cannot be reached.

``GET /crossdomain.xml`` answers Webdis's cross-domain policy (``application/xml``).

Hot path: a ``GET`` without query whose path needs no Webdis rule (no escape, ``+``,
``.``, database number) skips the generic parsing and options and renders scalar
replies directly (``fast_path``); the answer is the same, byte for byte
(tests/unit/test_webdis_fastpath.py compares both paths).

``SUBSCRIBE``/``PSUBSCRIBE`` with at least one channel answer a chunked stream
(``webdis.streams``): one formatted message per chunk, starting with the subscription
confirmations, on the worker's pub/sub hub; given ``streams`` (the app's
``StreamServices``), else 501.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway_worker.errors import RedisUnavailable
from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.protocols.json_bodies import error_response
from gateway_worker.protocols.webdis.etag import etag_matches, etag_of
from gateway_worker.protocols.webdis.fast_path import handle_simple
from gateway_worker.protocols.webdis.formats import render_custom, render_raw
from gateway_worker.protocols.webdis.json_format import render_json
from gateway_worker.protocols.webdis.msgpack_format import render_msgpack
from gateway_worker.protocols.webdis.requests import (
    SUBSCRIBE,
    Options,
    WebdisCommand,
    WebdisRequestError,
    parse_command,
    parse_options,
    path_bytes,
)
from gateway_worker.protocols.webdis.streams import chunked_subscribe, sharded_subscribe
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.values import RespValue
from gateway_worker.streams.services import StreamServices

ALLOWED_METHODS = "GET,POST,PUT,OPTIONS"
#: Webdis's answer to ``GET /crossdomain.xml`` (the Flash cross-domain policy), byte for byte.
CROSSDOMAIN = (
    b'<?xml version="1.0"?>\n'
    b'<!DOCTYPE cross-domain-policy SYSTEM "http://www.macromedia.com/xml/dtds/'
    b'cross-domain-policy.dtd">\n'
    b"<cross-domain-policy>\n"
    b'<allow-access-from domain="*" />\n'
    b"</cross-domain-policy>\n"
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
    streams: StreamServices | None = None,
) -> Response:
    """Answer one Webdis request (see the module docstring)."""
    method = request.method
    if method == "GET" and not request.query:
        fast = await handle_simple(request, redis, guard, max_arguments)
        if fast is not None:
            return fast
    if method == "OPTIONS":
        return Response(200, b"", content_type="text/html")
    if request.path == "/crossdomain.xml" and method == "GET":  # (never the fast path's: a '.')
        return Response(200, CROSSDOMAIN, content_type="application/xml")
    if method in ("GET", "PUT"):
        uri, body = path_bytes(request.path).removeprefix(b"/"), None
        if method == "PUT":
            body = request.body
    elif method == "POST":
        uri, body = request.body, None
    else:
        return error_response(
            405,
            f"method {method} not allowed (GET, POST, PUT, OPTIONS)",
            headers=[("Allow", ALLOWED_METHODS)],
        )
    try:
        options = parse_options(request.query)
        cmd = parse_command(uri, body, options.mime_type)
    except WebdisRequestError as exc:
        return error_response(exc.status, exc.message)
    if max_arguments is not None and len(cmd.args) - 1 > max_arguments:
        return error_response(
            400, f"too many arguments: {len(cmd.args) - 1} > server.max_arguments ({max_arguments})"
        )
    response = await _run(request, redis, guard, cmd, options, streams=streams)
    response.command = cmd.args[0].decode("utf-8", "replace").upper()
    return response


async def _run(
    request: Request,
    redis: RedisExecutor,
    guard: CommandGuard,
    cmd: WebdisCommand,
    options: Options,
    *,
    streams: StreamServices | None,
) -> Response:
    reason = guard(cmd.args, cmd.db)
    if reason is not None:
        return error_response(403, reason)
    render = _renderer(cmd, options)
    extra = [_disposition(options.filename)] if options.filename else []
    if len(cmd.args) >= 2 and cmd.args[0].upper() in SUBSCRIBE:
        if cmd.args[0].upper() == b"SSUBSCRIBE":
            return await sharded_subscribe(
                cmd.args,
                cmd.db,
                redis,
                render=render,
                content_type=cmd.content_type,
                extra=extra,
                services=streams,
            )
        return await chunked_subscribe(cmd.args, render, cmd.content_type, extra, streams)
    try:
        reply = await redis.execute(cmd.args, db=cmd.db)
    except RedisUnavailable as exc:
        return error_response(503, f"Redis unavailable: {exc}")
    out = render(reply)
    if out is None:
        return Response(404, b"", content_type=cmd.content_type)
    etag = etag_of(out)
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(304, b"", content_type=cmd.content_type, headers=[("ETag", etag)])
    return Response(200, out, content_type=cmd.content_type, headers=[*extra, ("ETag", etag)])

"""The Upstash-compatible REST protocol (API.md §1).

Routes, relative to the mount prefix:

* ``POST|PUT /`` with a JSON array body: one command (``["SET","k","v","EX",100]``).
* ``POST /pipeline`` and ``POST /multi-exec``: a JSON array of commands.
* anything else: the path form ``/CMD/arg1/arg2`` (percent-decoded segments; one
  trailing empty segment from a trailing ``/`` is dropped), then a non-empty POST/PUT
  body as one more argument, then each query parameter ``k=v`` (except ``_token``) as
  the two arguments ``k``, ``v``.

JSON numbers keep their exact text (``1.50`` stays ``1.50``). Booleans, nulls and
nested values are refused with 400: their meaning as a Redis argument is unclear
(parsing: ``upstash.parsing``).

Replies: ``{"result": X}`` (200) or ``{"error": "..."}`` (400 for a Redis error);
pipelines and transactions answer a list of those. ``Upstash-Encoding: base64`` and
``Upstash-Response-Format: resp2`` change the encoding (``upstash.encodings``). A
refused command (policy) is 403 and refuses the whole request before anything runs.
Every response carries an ``Upstash-Sync-Token`` that changes after every request that
ran a write.

``SUBSCRIBE``, ``PSUBSCRIBE`` and ``MONITOR`` answer Server-Sent Events streams
(``upstash.streams``); ``PUBLISH`` is a plain command.
"""

from __future__ import annotations

import os

from gateway_worker.exchange import CommandGuard, Request, Response
from gateway_worker.protocols.json_bodies import error_response, json_bytes
from gateway_worker.protocols.upstash.encodings import result_json, to_base64, to_text
from gateway_worker.protocols.upstash.parsing import (
    BadRequest,
    command_from_json,
    command_from_path,
    parse_json,
)
from gateway_worker.protocols.upstash.streams import STREAM_COMMANDS, open_stream
from gateway_worker.redis.commands import READ_ONLY
from gateway_worker.redis.executor import RedisExecutor
from gateway_worker.redis.values import ReplyError, RespValue
from gateway_worker.redis.wire import encode_reply
from gateway_worker.streams.services import StreamServices

ALLOWED_METHODS = "HEAD, GET, POST, PUT"
_METHODS = frozenset({"HEAD", "GET", "POST", "PUT"})
_OCTET = "application/octet-stream"


class SyncTokens:
    """Per-worker ``Upstash-Sync-Token`` source: a random nonce and a write counter.

    With one Redis behind the gateway every read already sees earlier writes; the token
    only has to change after each write, as the clients check.
    """

    def __init__(self) -> None:
        self._nonce = os.urandom(6).hex()
        self._writes = 0
        self.current = f"{self._nonce}-0"

    def wrote(self) -> None:
        self._writes += 1
        self.current = f"{self._nonce}-{self._writes}"


class Upstash:
    """The protocol handler; one per worker (it owns the sync-token counter)."""

    def __init__(self, max_arguments: int, streams: StreamServices | None = None) -> None:
        self.max_arguments = max_arguments
        self.sync = SyncTokens()
        self.streams = streams

    async def handle(self, request: Request, redis: RedisExecutor, guard: CommandGuard) -> Response:
        response = await self._handle(request, redis, guard)
        response.headers.append(("upstash-sync-token", self.sync.current))
        return response

    async def _handle(
        self, request: Request, redis: RedisExecutor, guard: CommandGuard
    ) -> Response:
        method = request.method
        if method not in _METHODS:
            return error_response(
                405,
                f"method {method} not allowed; use one of {ALLOWED_METHODS}",
                [("allow", ALLOWED_METHODS)],
            )
        path = request.path
        try:
            if path in ("/pipeline", "/multi-exec"):
                if method != "POST":
                    return error_response(
                        405, f"{path} needs POST, not {method}", [("allow", "POST")]
                    )
                commands = self._batch(request.body)
                response = await self._run_batch(request, redis, guard, commands, path)
                response.batch_size = len(commands)
                return response
            if path == "/" and method in ("POST", "PUT"):
                args = command_from_json(parse_json(request.body), self.max_arguments)
            else:
                args = command_from_path(request, self.max_arguments)
        except BadRequest as exc:
            return self._reply(error_response(400, str(exc)))
        name = args[0].upper()
        if name in STREAM_COMMANDS:
            return self._reply(await self._stream(request, args, guard), name)
        refused = guard(args)
        if refused is not None:
            return self._reply(error_response(403, refused), name)
        reply = await redis.execute(args)
        if name not in READ_ONLY:
            self.sync.wrote()
        return self._reply(self._single(request, reply), name)

    async def _stream(self, request: Request, args: list[bytes], guard: CommandGuard) -> Response:
        if self.streams is None:
            return error_response(501, "streams are not available in this app")
        if request.path != "/" and request.body:
            # The path form's body is no argument of a stream (@upstash/redis POSTs "[]").
            args = command_from_path(request._replace(body=b""), self.max_arguments)
        return await open_stream(request, args, guard, self.streams)

    def _batch(self, body: bytes) -> list[list[bytes]]:
        value = parse_json(body)
        if not isinstance(value, list) or not value:
            raise BadRequest("ERR expected a non-empty JSON array of commands")
        return [
            command_from_json(cmd, self.max_arguments, f"command {i + 1}: ")
            for i, cmd in enumerate(value)
        ]

    async def _run_batch(
        self,
        request: Request,
        redis: RedisExecutor,
        guard: CommandGuard,
        commands: list[list[bytes]],
        path: str,
    ) -> Response:
        name = b"PIPELINE" if path == "/pipeline" else b"MULTI-EXEC"
        for i, args in enumerate(commands):
            refused = guard(args)
            if refused is not None:
                return self._reply(error_response(403, f"command {i + 1}: {refused}"), name)
        if path == "/pipeline":
            replies: list[RespValue] | ReplyError = await redis.pipeline(commands)
        else:
            replies = await redis.transaction(commands)
        if any(args[0].upper() not in READ_ONLY for args in commands):
            self.sync.wrote()
        if isinstance(replies, ReplyError):
            # The transaction was discarded as a whole: one error.
            if _wants_resp2(request):
                return self._reply(Response(400, encode_reply(replies), _OCTET), name)
            return self._reply(error_response(400, str(replies)), name)
        if _wants_resp2(request):
            body = b"".join(encode_reply(r) for r in replies)
            return self._reply(Response(200, body, _OCTET), name)
        encode = to_base64 if _wants_base64(request) else to_text
        items = [
            {"error": str(r)} if isinstance(r, ReplyError) else {"result": encode(r)}
            for r in replies
        ]
        return self._reply(Response(200, json_bytes(items)), name)

    def _single(self, request: Request, reply: RespValue) -> Response:
        headers = request.headers
        # The `in` tests keep the common case (neither header) to two dict lookups.
        if "upstash-response-format" in headers and _wants_resp2(request):
            status = 400 if isinstance(reply, ReplyError) else 200
            return Response(status, encode_reply(reply), _OCTET)
        if isinstance(reply, ReplyError):
            return error_response(400, str(reply))
        if "upstash-encoding" in headers and _wants_base64(request):
            return Response(200, json_bytes({"result": to_base64(reply)}))
        return Response(200, result_json(reply))

    def _reply(self, response: Response, name: bytes | None = None) -> Response:
        if name is not None:
            response.command = name.decode("ascii", "replace")
        return response


def _wants_base64(request: Request) -> bool:
    return request.headers.get("upstash-encoding", "").lower() == "base64"


def _wants_resp2(request: Request) -> bool:
    return request.headers.get("upstash-response-format", "").lower() == "resp2"

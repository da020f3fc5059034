"""Turning a Webdis request into a command, as Webdis parses it (its ``cmd_run``).

* ``parse_command``: ``[DB/]CMD/arg1/.../argN[.ext]``: a first segment of digits selects
  the database (0-15, the range ``redis.db`` allows); arguments (not the command name)
  are percent-decoded and ``+`` is a space (``decode_arg``); the extension is looked for
  in the last segment only, after its last ``.``, and an unknown one stays part of the
  argument.
* ``parse_options``: the query options Webdis understands (``type``, ``jsonp`` /
  ``callback``, ``sep``, ``filename``; the last occurrence wins).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

from gateway_worker.protocols.webdis.formats import DEFAULT_FORMAT, FORMATS

MAX_DB = 15
_JSONP_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(\.[A-Za-z_$][A-Za-z0-9_$]*)*")
#: The commands answered with a stream (with at least one channel). SSUBSCRIBE (sharded
#: pub/sub, Redis 7+) streams like SUBSCRIBE; in cluster mode on its channel's node.
SUBSCRIBE = frozenset({b"SUBSCRIBE", b"PSUBSCRIBE", b"SSUBSCRIBE"})


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
        if len(segments) > 1:  # "//GET/k": a path with an empty segment first
            raise WebdisRequestError(
                400,
                "malformed path: empty segment where the command name belongs "
                "(expected /[DB/]CMD/arg1/.../argN)",
            )
        raise WebdisRequestError(403, "empty command: expected /CMD/arg1/.../argN")
    args = [segments[0], *[decode_arg(s) for s in segments[1:]]]
    if body:
        args.append(body)
    return WebdisCommand(args, db, fmt, content_type)


def _is_header_safe(value: str) -> bool:
    return all(32 <= ord(c) < 127 for c in value)


def path_bytes(path: str) -> bytes:
    """The request path back to the bytes sent (the app decoded it as latin-1)."""
    try:
        return path.encode("latin-1")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")

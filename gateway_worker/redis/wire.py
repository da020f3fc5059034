"""RESP2 on the wire: command encoding and a reply parser that keeps simple strings apart.

hiredis parses replies in C, but its Python binding returns ``+OK`` (simple string)
and ``$2\\r\\nOK`` (bulk string) both as ``bytes``; the protocols need the difference
(Webdis renders a status as ``[true,"OK"]``, Upstash ``resp2`` must echo the exact
bytes). So ``ReplyParser`` keeps its own copy of the unconsumed bytes and, for every
reply hiredis returns, walks it against those bytes: the type byte at each position
says whether a string was ``+`` (wrapped as ``Status``) or ``$``, and whether a nil
was ``$-1`` (``None``) or ``*-1`` (``NIL_ARRAY``), and the reply's
length is found with C-speed ``index(b"\\r\\n")`` plus the known bulk lengths. For the
common top-level scalar replies this is O(1); arrays cost one cheap step per element.
Correctness over speed: the alternative (a table of which commands reply with a
status) is wrong for EVAL, FCALL, modules and nested EXEC replies.
"""

from __future__ import annotations

from collections.abc import Sequence

import hiredis

from gateway_worker.redis.values import NIL_ARRAY, NilArray, ReplyError, RespValue, Status

_CRLF = b"\r\n"
_PLUS = 0x2B  # '+'
_MINUS = 0x2D  # '-'
_COLON = 0x3A  # ':'
_DOLLAR = 0x24  # '$'
_STAR = 0x2A  # '*'


class ProtocolViolation(Exception):
    """Redis sent bytes that are not RESP2 (or the parser lost track): drop the connection."""


def encode_command(args: Sequence[bytes]) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def encode_reply(value: RespValue) -> bytes:
    """A reply value back to its exact RESP2 bytes (Upstash ``resp2`` format)."""
    if value is None:
        return b"$-1\r\n"
    if isinstance(value, NilArray):
        return b"*-1\r\n"
    if isinstance(value, Status):
        return b"+" + bytes(value) + _CRLF
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, ReplyError):
        return b"-" + value.encode("utf-8", "replace") + _CRLF
    if isinstance(value, int):
        return b":%d\r\n" % value
    return b"*%d\r\n" % len(value) + b"".join(encode_reply(v) for v in value)


def _walk(buf: bytes | bytearray, pos: int, value: RespValue) -> tuple[RespValue, int]:
    """Return (value with simple strings as Status, position after this reply)."""
    kind = buf[pos]
    if kind == _DOLLAR:
        if value is None:
            return None, buf.index(_CRLF, pos) + 2
        assert isinstance(value, bytes)
        return value, buf.index(_CRLF, pos) + 4 + len(value)
    if kind == _PLUS:
        assert isinstance(value, bytes)
        return Status(value), buf.index(_CRLF, pos) + 2
    if kind in (_COLON, _MINUS):
        return value, buf.index(_CRLF, pos) + 2
    if kind == _STAR:
        end = buf.index(_CRLF, pos) + 2
        if value is None:  # hiredis returns ``*-1`` as None, like ``$-1``
            return NIL_ARRAY, end
        assert isinstance(value, list)
        for i, item in enumerate(value):
            new, end = _walk(buf, end, item)
            if new is not item:
                value[i] = new
        return value, end
    raise ProtocolViolation(f"unexpected RESP type byte {bytes([kind])!r}")


class ReplyParser:
    """Feed it bytes as they arrive; ``replies()`` yields every complete reply."""

    __slots__ = ("_buf", "_reader")

    def __init__(self) -> None:
        # hiredis only calls replyError with the message, so a str subclass works
        # although its stubs ask for an Exception factory.
        self._reader = hiredis.Reader(replyError=ReplyError)  # type: ignore[arg-type]
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[RespValue]:
        """Consume ``data``; return the replies it completed, in order."""
        reader = self._reader
        try:
            reader.feed(data)
            reply = reader.gets()
        except hiredis.ProtocolError as exc:
            raise ProtocolViolation(str(exc)) from exc
        if reply is False:
            self._buf += data
            return []
        # Fast path: nothing left over from before, so index into ``data`` directly.
        view: bytes | bytearray
        if self._buf:
            self._buf += data
            view = self._buf
        else:
            view = data
        out: list[RespValue] = []
        pos = 0
        try:
            while reply is not False:
                value, pos = _walk(view, pos, reply)
                out.append(value)
                reply = reader.gets()
        except (ValueError, IndexError, AssertionError, hiredis.ProtocolError) as exc:
            raise ProtocolViolation(f"cannot follow the reply stream: {exc}") from exc
        if view is data:
            if pos < len(data):
                self._buf += data[pos:]
        else:
            del self._buf[:pos]
        return out

"""How a connection ends early, in both engines: after its client's EOF, and when the
connection layer refuses it (a malformed request: 400; a head too large: 431; too slow,
or beyond the pending cap: 408/503, see ``serving.pending``).

**Half-closed clients** (``keep_open_after_eof``, what each ``eof_received`` returns).
``printf 'GET /ping HTTP/1.1\\r\\n...' | nc -N``, and any client calling
``shutdown(SHUT_WR)`` after a whole request, send an EOF while the answer is being
computed; asyncio closes a transport whose ``eof_received`` returns a false value, so
uvicorn's (``pass``) lost that answer. TCP cannot tell a half-close from a full close
until something is written, so the transport stays open only when there is an answer to
write: the latest request is complete and its answer has not started. That answer is
then the last one (``keep_alive = False``: it carries ``Connection: close``, pipelined
requests before it are answered first). Otherwise the EOF closes the connection as
before: idle, an incomplete head or body (nothing can be answered), or an answer already
streaming (a stream must see its client leave).

**Answers that leave the request unread** (``request_left_unread``): an app that
answers before the whole body arrived (413, 504) would otherwise keep reading, and
discarding, whatever the client still sends, for as long as it sends: the connection is
closed after such an answer.

**Refusals** (``refuse``). A refusal that would overtake answers still owed (garbage or
an oversized head pipelined behind complete requests) does not write its error: the
requests before it are answered, the last answer carries ``Connection: close`` and
reading stops (stock uvicorn wrote the 400 at once and closed, losing those answers).
Otherwise the error response is written and the connection closed; a connection that
never asked anything is closed without a word.
"""

from __future__ import annotations

import asyncio
import http
from collections.abc import Callable
from typing import Protocol, cast


class Answerable(Protocol):
    """The latest request of a connection (uvicorn's ``RequestResponseCycle``, the
    native engine's ``Cycle``)."""

    more_body: bool
    response_started: bool
    response_complete: bool
    keep_alive: bool


def keep_open_after_eof(latest: Answerable | None) -> bool:
    """What ``eof_received`` returns, ``latest`` being the last request parsed."""
    if latest is None or latest.more_body or latest.response_started:
        return False
    latest.keep_alive = False
    return True


def request_left_unread(latest: Answerable | None) -> bool:
    """After a completed answer: whether the latest request's body is still arriving."""
    return latest is not None and latest.response_complete and latest.more_body


def answers_owed(latest: Answerable | None) -> bool:
    """Whether complete requests still wait for (the end of) their answers."""
    return latest is not None and not latest.more_body and not latest.response_complete


def refuse(
    transport: asyncio.BaseTransport,
    latest: Answerable | None,
    *,
    status: int,
    message: str,
    asked: bool,
    default_headers: list[tuple[bytes, bytes]],
    pause_reading: Callable[[], None],
) -> None:
    """End the connection with ``status`` (``asked``: part of a request arrived, so an
    answer is due), after the answers still owed to the requests before it."""
    if transport.is_closing():
        return
    if answers_owed(latest):
        assert latest is not None
        latest.keep_alive = False
        pause_reading()
    elif asked and (latest is None or latest.response_complete or not latest.response_started):
        cast(asyncio.WriteTransport, transport).write(
            error_response(status, message, default_headers)
        )
        transport.close()
    else:
        transport.close()  # nothing was asked, or an answer is already on the wire


def error_response(status: int, message: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A whole ``text/plain`` response with ``Connection: close`` (the answers the
    connection layer writes itself)."""
    body = message.encode("ascii", "replace")
    phrase = http.HTTPStatus(status).phrase.encode("ascii")
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, phrase)]
    for name, value in default_headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n" % len(body)
    )
    parts.append(body)
    return b"".join(parts)

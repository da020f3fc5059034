"""The supervisor's control socket protocol on one page: codec and clients.

A Unix stream socket (mode 0600, so only the service user may use it). A client
sends ONE newline-terminated JSON object and reads ONE JSON line back::

    {"cmd": "status"}  ->  {"ok": true, "status": {...}}
    {"cmd": "reload"}  ->  {"ok": true|false, "reload": {...ReloadOutcome...}}
                           sent once the reload finished (or was coalesced into one
                           that did)
    anything else      ->  {"ok": false, "error": "..."}

The server lives in the supervisor (``supervisor.triggers.control``); the clients are here, a
leaf module, so that the CLI, the workers' ``/admin/*`` endpoints and the tests share
one of each: ``request`` (blocking) and ``request_async`` (asyncio).
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from gateway_worker.errors import GatewayError

#: Largest request line the server reads (a `plan` carries a whole candidate config file,
#: itself at most 1 MiB, JSON-escaped).
MAX_REQUEST_BYTES = 4 * 2**20
#: Largest reply line a client reads (a status with many workers stays far below).
MAX_REPLY_BYTES = 16 * 2**20


#: A decoded JSON object (json.loads output has no static type: the edge of ``json``).
JSONObject = dict[str, Any]


class ControlError(GatewayError):
    """The control socket cannot be reached or answered garbage."""


def encode(message: JSONObject) -> bytes:
    """One message as its line on the wire."""
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def decode(line: bytes) -> JSONObject:
    """One line from the wire; ControlError when it is not a JSON object."""
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise ControlError(f"unreadable message: {bytes(line[:200])!r}") from exc
    if not isinstance(message, dict):
        raise ControlError(f"unexpected message (not a JSON object): {message!r}")
    return message


def _unreachable(path: str, exc: OSError) -> ControlError:
    return ControlError(
        f"cannot reach the supervisor at {path}: {exc.strerror or exc} "
        "(is `redis-gateway run` running with the same config/port?)"
    )


def request(path: str, payload: JSONObject, timeout: float) -> JSONObject:
    """Send one request, wait up to ``timeout`` for the one reply (blocking)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise _unreachable(path, exc) from exc
        sock.sendall(encode(payload))
        data = b""
        while not data.endswith(b"\n") and len(data) <= MAX_REPLY_BYTES:
            try:
                chunk = sock.recv(65536)
            except TimeoutError as exc:
                raise ControlError(f"no answer from the supervisor within {timeout}s") from exc
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    return decode(data)


async def request_async(path: str, payload: JSONObject, timeout: float) -> JSONObject:
    """``request`` for an event loop (the workers' ``/admin/*`` endpoints)."""
    try:
        async with asyncio.timeout(timeout):
            try:
                reader, writer = await asyncio.open_unix_connection(path, limit=MAX_REPLY_BYTES)
            except OSError as exc:
                raise _unreachable(path, exc) from exc
            try:
                writer.write(encode(payload))
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
    except TimeoutError as exc:
        raise ControlError(f"no answer from the supervisor within {timeout}s") from exc
    except (OSError, ValueError) as exc:  # reset, or a line over the limit
        raise ControlError(f"control socket {path}: {exc}") from exc
    return decode(line)

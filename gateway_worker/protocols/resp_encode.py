"""Reply encoders shared by the protocols: compact JSON and JSON error bodies.

JSON is written compact (``,`` and ``:`` separators) and as UTF-8 (``ensure_ascii``
off): smaller bodies, and the byte-exact shapes clients and ETags expect.
"""

from __future__ import annotations

import json
from base64 import b64encode
from collections.abc import Callable
from typing import Any

from gateway_worker.exchange import Response
from gateway_worker.redis.values import NilArray, ReplyError, RespValue, Status

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# The C string encoder the one above uses for str values (quotes included).
_string: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.py_encode_basestring
)


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return _encode(value).encode()


def error_response(status: int, message: str, headers: list[tuple[str, str]] | None = None
                   ) -> Response:
    """``{"error": message}`` with ``status``."""
    return Response(status, json_bytes({"error": message}), headers=headers or [])


def result_json(value: RespValue) -> bytes:
    """``{"result": value}`` as text JSON, with fast paths for the common scalars."""
    if isinstance(value, bytes):
        return b'{"result":' + _string(value.decode("utf-8", "replace")).encode() + b"}"
    if value is None or isinstance(value, NilArray):
        return b'{"result":null}'
    if type(value) is int:
        return b'{"result":%d}' % value
    return json_bytes({"result": to_text(value)})


def to_text(value: RespValue) -> Any:
    """A reply as JSON-able data: strings as text (invalid UTF-8 becomes U+FFFD)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [to_text(v) for v in value]
    if isinstance(value, NilArray):
        return None  # JSON has one null; only `resp2` keeps nil arrays apart
    # int, None, ReplyError (a str: nested errors are rendered as their message)
    return value


def to_base64(value: RespValue) -> Any:
    """A reply as JSON-able data with every string base64-encoded (Upstash-Encoding).

    Integers, nils and errors stay as they are. The status ``OK`` stays ``"OK"``: the
    Upstash clients decode every string except that one.
    """
    if isinstance(value, Status):
        return "OK" if value == b"OK" else b64encode(value).decode("ascii")
    if isinstance(value, bytes):
        return b64encode(value).decode("ascii")
    if isinstance(value, list):
        return [to_base64(v) for v in value]
    if isinstance(value, ReplyError):
        return str(value)
    if isinstance(value, NilArray):
        return None
    return value
